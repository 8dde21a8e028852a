"""How rows are divided between segments: where ingestion begins a new segment under `max_segment_rows`,
which segments a merge combines, and the copying of a merged segment's live rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trivec.retrieval.corpus import Chunk
from trivec.retrieval.residual import sample_rows
from trivec.retrieval.segment import Segment
from trivec.retrieval.segment_writer import SegmentWriter

COPY_ROWS = 4096  # rows read from a merged segment per append
COPY_TOKENS = 8192  # staged token vectors read per block for a codebook's sample


def segment_cuts(chunks: Sequence[Chunk], filled: int, cap: int, previous_doc: str | None) -> list[int]:
    """Positions in a batch of `chunks` where a new segment begins, for a segment holding `filled` rows
    before it and at most `cap` rows: at the start of each document that would take it past `cap` (a
    document continued from the previous batch, `previous_doc`, stays where it began)."""
    cuts: list[int] = []
    start = 0
    while start < len(chunks):
        end = start + 1
        while end < len(chunks) and chunks[end].doc_id == chunks[start].doc_id:
            end += 1
        continued = start == 0 and chunks[0].doc_id == previous_doc
        if filled and not continued and filled + end - start > cap:
            cuts.append(start)
            filled = 0
        filled += end - start
        start = end
    return cuts


def merge_groups(live: Sequence[int], cap: int | None) -> list[list[int]]:
    """Neighbouring segments (positions) packed into groups of at most `cap` live rows (None: one group)."""
    if cap is None:
        return [list(range(len(live)))]
    groups: list[list[int]] = []
    total = 0
    for i, rows in enumerate(live):
        if groups and total + rows <= cap:
            groups[-1].append(i)
            total += rows
        else:
            groups.append([i])
            total = rows
    return groups


def smallest_to_merge(live: Sequence[int], max_segments: int, cap: int | None) -> list[int]:
    """Positions of the smallest segments (by live rows) to merge so that `max_segments` remain; with a
    `cap` on rows per segment, only as many of them as fit under it together (none if not two)."""
    order = np.argsort(live, kind="stable")[: len(live) - max_segments + 1].tolist()
    if cap is not None:
        fitting = int((np.cumsum([live[i] for i in order]) <= cap).sum())
        order = order[:fitting] if fitting >= 2 else []
    return sorted(order)


def copy_live_rows(segment: Segment, live: np.ndarray | None, writer: SegmentWriter) -> None:
    """Append the rows of `segment` not deleted (`live`: its mask, None when none is) to `writer`, codes as
    stored (staged float16 ColBERT rows coded by a writer whose residual codebook is fitted: `append`);
    the segment's checksums are checked first, so a damaged segment never gets fresh ones."""
    segment.check_all()
    rows = np.flatnonzero(live) if live is not None else np.arange(segment.rows)
    sparse_all = segment.sparse_vectors(rows) if segment.has_sparse else None
    for start in range(0, rows.shape[0], COPY_ROWS):
        part = rows[start : start + COPY_ROWS]
        chunks = [segment.chunk(int(r)) for r in part]
        dense = np.asarray(segment.dense[part]) if segment.dense is not None else None
        sparse = sparse_all[start : start + COPY_ROWS] if sparse_all is not None else None
        codes = [segment.colbert_codes(int(r)) for r in part] if segment.has_colbert else None
        writer.append(chunks, dense, sparse, None, colbert_codes=codes)


def staged_sample(segments: Sequence[Segment], live: Sequence[np.ndarray | None]) -> np.ndarray:
    """The float16 token vectors a residual codebook is fitted on (`sample_rows` of the live rows of segments
    staged while it waited), read from the files a block at a time with plain reads: neither the whole rows
    nor their mapped pages are held beside the sample."""
    parts: list[tuple[Segment, np.ndarray]] = []
    for segment, mask in zip(segments, live, strict=True):
        if segment.colbert_staged:
            off = np.asarray(segment.arrays["colbert.off"])
            rows = range(segment.rows) if mask is None else np.flatnonzero(mask)
            spans = [np.arange(off[r], off[r + 1]) for r in rows]
            parts.append((segment, np.concatenate(spans) if spans else np.zeros(0, np.int64)))
    total = sum(tokens.shape[0] for _, tokens in parts)
    pick = sample_rows(total)
    dim = int(parts[0][0].arrays["colbert.codes"].shape[1]) if parts else 1
    out = np.empty((pick.shape[0], dim), dtype=np.float16)
    start, filled = 0, 0
    for segment, tokens in parts:
        mine = tokens[pick[(pick >= start) & (pick < start + tokens.shape[0])] - start]
        lo = 0
        while lo < mine.shape[0]:  # blocks of at most COPY_TOKENS stored rows, however sparse the picks
            hi = int(np.searchsorted(mine, mine[lo] + COPY_TOKENS))
            wanted, lo = mine[lo:hi], hi
            first, last = int(wanted[0]), int(wanted[-1]) + 1
            block = np.fromfile(
                segment.directory / "colbert.codes", np.float16, (last - first) * dim, offset=first * dim * 2
            ).reshape(-1, dim)
            out[filled : filled + wanted.shape[0]] = block[wanted - first]
            filled += wanted.shape[0]
        start += tokens.shape[0]
    return out


def staged_tokens(segments: Sequence[Segment], live: Sequence[np.ndarray | None]) -> int:
    """How many token vectors the live rows of staged segments hold (what `staged_sample` chooses from)."""
    total = 0
    for segment, mask in zip(segments, live, strict=True):
        if segment.colbert_staged:
            lengths = np.diff(np.asarray(segment.arrays["colbert.off"]))
            total += int(lengths.sum() if mask is None else lengths[mask].sum())
    return total
