"""Hard-negative mining: replace each row's `neg` with passages a retriever ranks in a window.

As FlagEmbedding's `hn_mine.py`: search each query over the candidate corpus, keep ranks `[start, end)`
(0-based), drop the row's positives and the query itself, sample `negatives` of the rest. The retriever is
exact dense inner-product search (faiss `IndexFlatIP`, or numpy) or BM25 (the usual recipe's first stage,
tokenised for the rows' language). trivec's differences:
- `margin`: a candidate must score at most `min(positive scores) − margin`, so near-duplicates and unlabeled
  positives just below the positive are not taken as negatives (the main complaint about mining); BM25
  scores are divided by each query's best score first, so the margin reads on the same 0–1 scale;
- the corpus keeps its file order (first occurrence of each text), and every random choice is seeded per row,
  so a run is reproducible (unlike Q18's `set()` order);
- when the window yields too few negatives, the rest are random corpus texts from beyond the window that also
  respect the margin, without duplicates (`fill=False` keeps the short list);
- teacher scores of the old negatives no longer apply and are dropped; every other field is kept.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from trivec.errors import InputError
from trivec.io import atomic_writer, check_output_path, iter_jsonl
from trivec.training.examples import TrainExample, parse_example

logger = logging.getLogger(__name__)


@dataclass
class MiningStats:
    """What a mining run did, for the closing log line."""

    rows: int = 0
    corpus: int = 0
    negatives: int = 0
    filled: int = 0
    dropped_by_margin: int = 0
    short_rows: int = 0
    per_row: list[int] = field(default_factory=list)

    def summary(self) -> str:
        mean = self.negatives / max(1, self.rows)
        return (
            f"{self.rows} rows, corpus {self.corpus} texts, {mean:.1f} negatives per row "
            f"({self.filled} random fill-ins, {self.dropped_by_margin} candidates dropped by the margin, "
            f"{self.short_rows} rows with fewer than asked)"
        )


def parse_range(text: str) -> tuple[int, int]:
    """`"10-210"` → (10, 210): ranks start (inclusive) and end (exclusive), 0-based."""
    try:
        start_text, end_text = text.split("-")
        start, end = int(start_text), int(end_text)
    except ValueError:
        raise InputError(f"--range must look like START-END (e.g. 10-210), got {text!r}") from None
    if not 0 <= start < end:
        raise InputError(f"--range needs 0 ≤ START < END, got {text!r}")
    return start, end


def read_distinct_texts(path: str | os.PathLike[str], with_title: bool = False) -> list[str]:
    """Texts of a JSONL corpus (`{"text"}`, optional `"title"`), duplicates removed, file order kept."""
    path = Path(path)
    seen: dict[str, None] = {}
    for line, obj in iter_jsonl(path):
        text = obj.get("text")
        if not isinstance(text, str):
            raise InputError(
                f"{path}:{line}: field 'text' is {'missing' if text is None else 'not a string'}"
            )
        title = obj.get("title")
        if with_title and isinstance(title, str) and title.strip():
            text = f"{title.strip()} {text}".strip()
        if text.strip():
            seen.setdefault(text, None)
    if not seen:
        raise InputError(f"{path}: no texts")
    return list(seen)


def search(
    queries: np.ndarray, corpus: np.ndarray, k: int, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product: faiss `IndexFlatIP` when installed, else numpy (same ranking)."""
    k = min(k, corpus.shape[0])
    faiss: Any
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is a dependency; numpy keeps mining usable without it
        faiss = None
    if faiss is not None:
        index = faiss.IndexFlatIP(corpus.shape[1])
        index.add(np.ascontiguousarray(corpus, dtype=np.float32))
        found = [
            index.search(np.ascontiguousarray(queries[start : start + batch], dtype=np.float32), k)
            for start in range(0, len(queries), batch)
        ]
        return np.concatenate([s for s, _ in found]), np.concatenate([i for _, i in found])
    sims = queries @ corpus.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, top, axis=1), top


RETRIEVERS = ("dense", "bm25", "hybrid")
HYBRID_DENSE_WEIGHT = 0.5  # hybrid = w · dense + (1 − w) · BM25 / best BM25 of the query


class _DenseRanking:
    """Exact inner-product search of every query at once; scores of any (query, text) from the vectors."""

    def __init__(
        self, model: Any, texts: list[str], queries: list[str], limit: int, depth: int, **encode: Any
    ):
        self.corpus = model.encode(texts, dense=True, prompt_name="document", max_length=limit).dense
        self.queries = model.encode(
            queries, dense=True, prompt_name="query", max_length=limit, **encode
        ).dense
        self.model, self.limit, self.texts = model, limit, texts
        self.top_scores, self.top_ids = search(self.queries, self.corpus, depth)

    def ranked(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        return self.top_scores[row], self.top_ids[row]

    def scores(self, row: int, ids: np.ndarray) -> np.ndarray:
        return self.corpus[ids] @ self.queries[row]

    def positive_scores(self, rows: list[Any]) -> list[np.ndarray]:
        """Each row's positives scored against its query; positives in the corpus are not encoded again."""
        in_corpus = {text: i for i, text in enumerate(self.texts)}
        outside = sorted({p for ex in rows for p in ex.pos if p not in in_corpus})
        extra = (
            self.model.encode(outside, dense=True, prompt_name="document", max_length=self.limit).dense
            if outside
            else np.zeros((0, self.corpus.shape[1]), dtype=np.float32)
        )
        index = {text: len(self.texts) + i for i, text in enumerate(outside)} | in_corpus
        vectors = np.concatenate([self.corpus, extra])
        return [vectors[[index[p] for p in ex.pos]] @ self.queries[r] for r, ex in enumerate(rows)]


class _Bm25Ranking:
    """BM25 over the candidate texts in the rows' language; each query's scores divided by its best score."""

    def __init__(self, texts: list[str], queries: list[str], language: str, depth: int):
        from trivec.evaluation.bm25 import Bm25Index

        self.index = Bm25Index(texts, language)
        self.queries, self.depth = queries, depth
        self.text_ids = {text: i for i, text in enumerate(texts)}
        self._row: int = -1
        self._scores: np.ndarray = np.zeros(0, dtype=np.float32)

    def _all(self, row: int) -> np.ndarray:
        if row != self._row:
            values = self.index.scores(self.queries[row])
            best = float(values.max()) if values.size else 0.0
            self._row, self._scores = row, values / best if best > 0 else values
        return self._scores

    def ranked(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        values = self._all(row)
        top = np.argsort(-values, kind="stable")[: self.depth]  # ties in corpus order: a reproducible window
        return values[top], top

    def scores(self, row: int, ids: np.ndarray) -> np.ndarray:
        return self._all(row)[ids]

    def positive_scores(self, rows: list[Any]) -> list[np.ndarray]:
        out = []
        for r, ex in enumerate(rows):
            ids = [self.text_ids[p] for p in ex.pos if p in self.text_ids]
            # a positive outside the candidate corpus has no BM25 score here: no margin for that row
            out.append(
                self.scores(r, np.asarray(ids, dtype=np.int64)) if len(ids) == len(ex.pos) else np.array([])
            )
        return out


class _HybridRanking:
    """Dense and BM25 fused per query: `w · dense + (1 − w) · BM25 / the query's best BM25` — both on a 0–1
    scale for a normalising model (cosine) — so the margin reads as for either alone; the window is the fused
    top `depth`."""

    def __init__(self, dense: _DenseRanking, bm25: _Bm25Ranking, depth: int, weight: float) -> None:
        self.dense, self.bm25, self.depth, self.weight = dense, bm25, depth, weight
        self._row: int = -1
        self._scores: np.ndarray = np.zeros(0, dtype=np.float32)

    def _all(self, row: int) -> np.ndarray:
        if row != self._row:
            dense = self.dense.corpus @ self.dense.queries[row]
            self._row = row
            self._scores = self.weight * dense + (1.0 - self.weight) * self.bm25._all(row)
        return self._scores

    def ranked(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        values = self._all(row)
        top = np.argsort(-values, kind="stable")[: self.depth]
        return values[top], top

    def scores(self, row: int, ids: np.ndarray) -> np.ndarray:
        return self._all(row)[ids]

    def positive_scores(self, rows: list[Any]) -> list[np.ndarray]:
        dense = self.dense.positive_scores(rows)
        lexical = self.bm25.positive_scores(rows)
        # a positive outside the candidate corpus has no BM25 score: no margin for that row
        return [
            self.weight * d + (1.0 - self.weight) * b if b.size == d.size else np.array([])
            for d, b in zip(dense, lexical, strict=True)
        ]


def rows_language(rows: list[dict[str, Any]], path: Path) -> str:
    """The one `lang` of the rows (BM25 tokenises for it); `en` when no row says."""
    languages = {str(obj["lang"]) for obj in rows if obj.get("lang")}
    if len(languages) > 1:
        raise InputError(
            f"{path}: rows in several languages ({', '.join(sorted(languages))}); give --language"
        )
    return languages.pop() if languages else "en"


_Ranking = _DenseRanking | _Bm25Ranking | _HybridRanking


def mine_hard_negatives(
    model: Any,
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    corpus: str | os.PathLike[str] | None = None,
    rank_range: tuple[int, int] = (10, 210),
    negatives: int = 15,
    margin: float | None = None,
    seed: int = 42,
    max_length: int | None = 512,
    fill: bool = True,
    with_title: bool = False,
    retriever: str = "dense",
    language: str | None = None,
) -> MiningStats:
    """Mine negatives for every row of `data`, writing `output` atomically.

    retriever: `dense` searches with the `Embedder` `model`; `bm25` needs no model (pass None) and
    tokenises for `language` (default: the rows' `lang` field, else English); `hybrid` fuses both
    (`_HybridRanking`: half dense cosine, half BM25 scaled by the query's best), the usual first stage.
    """
    if negatives < 1:
        raise InputError(f"--negatives must be at least 1, got {negatives}")
    if retriever not in RETRIEVERS:
        raise InputError(f"retriever must be one of {', '.join(RETRIEVERS)}, got {retriever!r}")
    data = Path(data)
    check_output_path(output, inputs=[data, corpus])
    rows = [(line, obj, parse_example(obj, data, line, need_scores=False)) for line, obj in iter_jsonl(data)]
    if not rows:
        raise InputError(f"{data}: no rows")
    examples = [ex for _, _, ex in rows]
    texts = read_distinct_texts(corpus, with_title) if corpus is not None else _texts_of_rows(examples)
    ranking = _ranking(
        retriever,
        model,
        texts,
        [ex.query for ex in examples],
        bm25_language=lambda: language or rows_language([obj for _, obj, _ in rows], data),
        max_length=max_length,
        depth=rank_range[1],
    )
    own_scores = ranking.positive_scores(examples) if margin is not None else None
    stats = MiningStats(rows=len(rows), corpus=len(texts))
    with atomic_writer(output) as handle:
        for r, (_, obj, ex) in enumerate(rows):
            threshold = np.inf
            if own_scores is not None and margin is not None and own_scores[r].size:
                threshold = float(own_scores[r].min()) - margin
            rng = np.random.default_rng([seed, r])
            chosen = _row_negatives(ranking, r, ex, texts, threshold, rank_range, negatives, fill, rng, stats)
            if len(chosen) < negatives:
                stats.short_rows += 1
            stats.negatives += len(chosen)
            out = {k: v for k, v in obj.items() if k not in ("neg", "pos_scores", "neg_scores")}
            out["neg"] = [texts[c] for c in chosen]
            handle.write(json.dumps(out, ensure_ascii=False) + "\n")
    return stats


def _texts_of_rows(examples: list[TrainExample]) -> list[str]:
    """The candidate corpus when none is given: every positive and negative of the rows, first occurrence kept."""
    seen: dict[str, None] = {}
    for ex in examples:
        for text in (*ex.pos, *ex.neg):
            seen.setdefault(text, None)
    return list(seen)


def _ranking(
    retriever: str,
    model: Any,
    texts: list[str],
    queries: list[str],
    bm25_language: Callable[[], str],
    max_length: int | None,
    depth: int,
) -> _Ranking:
    """The retriever that ranks `texts` for every query, `depth` deep; `bm25_language` is called (it may
    raise) only by the retrievers that tokenise for BM25."""
    if retriever == "dense":
        limit = min(max_length or model.max_length, model.position_limit)
        return _DenseRanking(model, texts, queries, limit, depth)
    if retriever == "bm25":
        return _Bm25Ranking(texts, queries, bm25_language(), depth)
    if model is None:
        raise InputError("hybrid mining needs a dense model", cli="--retriever hybrid needs --model")
    limit = min(max_length or model.max_length, model.position_limit)
    return _HybridRanking(
        _DenseRanking(model, texts, queries, limit, 1),  # its own top-k is not used
        _Bm25Ranking(texts, queries, bm25_language(), depth),
        depth,
        HYBRID_DENSE_WEIGHT,
    )


def _row_negatives(
    ranking: _Ranking,
    r: int,
    ex: TrainExample,
    texts: list[str],
    threshold: float,
    rank_range: tuple[int, int],
    negatives: int,
    fill: bool,
    rng: np.random.Generator,
    stats: MiningStats,
) -> list[int]:
    """Corpus ids of row `r`'s negatives: a seeded sample of its window (ranks `rank_range`, positives, the
    query and candidates over `threshold` left out), topped up with random texts beyond it when `fill`."""
    start, end = rank_range
    banned = {*ex.pos, ex.query}
    top_scores, top_ids = ranking.ranked(r)
    window: list[int] = []
    for rank in range(start, min(end, top_ids.shape[0])):
        cid = int(top_ids[rank])
        if cid < 0 or texts[cid] in banned:
            continue
        if top_scores[rank] > threshold:
            stats.dropped_by_margin += 1
            continue
        window.append(cid)
    if len(window) > negatives:
        picked = sorted(rng.choice(len(window), negatives, replace=False).tolist())
        chosen = [window[i] for i in picked]
    else:
        chosen = list(window)
    if fill and len(chosen) < negatives:
        extra = _fill(
            rng,
            partial(ranking.scores, r),
            set(top_ids.tolist()) | set(chosen),
            texts,
            banned,
            threshold,
            negatives - len(chosen),
        )
        stats.filled += len(extra)
        chosen += extra
    return chosen


def _fill(
    rng: np.random.Generator,
    score: Callable[[np.ndarray], np.ndarray],
    excluded: set[int],
    texts: list[str],
    banned: set[str],
    threshold: float,
    count: int,
) -> list[int]:
    """Random corpus texts outside the searched window, not positives, under the margin threshold."""
    order = rng.permutation(len(texts))
    out: list[int] = []
    for cid in order.tolist():
        if len(out) == count:
            break
        if cid in excluded or texts[cid] in banned:
            continue
        if np.isfinite(threshold) and float(score(np.asarray([cid]))[0]) > threshold:
            continue
        out.append(cid)
    return out
