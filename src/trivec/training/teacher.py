"""Teacher scores for knowledge distillation: add `pos_scores` / `neg_scores` to FlagEmbedding rows.

M3's distillation format carries, for every positive and negative of a row, the score a teacher gave the
(query, passage) pair. The teacher is a cross-encoder reranker (`reranker`, the usual choice) or an M3-style
embedder: its weighted `colbert+sparse+dense` score (`all`, as BGE-M3's self-distillation uses), `colbert` or
`dense`.

The loss softmaxes the written scores as they are (no temperature, as FlagEmbedding), which suits a reranker's
logits; an embedder's scores are cosine-scale (a positive at 0.9 and hard negatives at 0.5 give the positive
only ≈ 0.35 of the softmax), so `temperature` divides them first: the teacher's own training temperature
(0.02 for m3-small) writes the distribution it was trained to give; the student's temperature writes the one
the student would give with the teacher's scores (as M3's self-distillation does with the ensemble's).

The run is resumable and its output atomic: rows are scored a chunk at a time and appended to
`OUTPUT.partial`, beside a small `OUTPUT.partial.json` naming the input (its SHA-256), the teacher and the mode;
a run that stops (crash, Ctrl-C, a lost machine) continues from the last complete row when started again with
the same input, teacher and mode. Only when every row is scored is the partial file synced and renamed to
`OUTPUT`, so `OUTPUT` is never half-written. Every row is checked before the first is scored.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trivec.errors import InputError
from trivec.io import check_output_path, iter_jsonl
from trivec.progress import LOG, Progress
from trivec.training.examples import parse_example

TEACHER_MODES = ("reranker", "all", "colbert", "dense")
CHUNK_ROWS = 256  # rows scored (and appended) per step: a stop loses at most this much work


@dataclass
class Teacher:
    """A loaded teacher: `model` is a `Reranker` (mode `reranker`) or an `Embedder` (the other modes)."""

    model: Any
    mode: str
    name: str
    max_length: int | None = None  # an embedder's query and passage truncation (a reranker keeps its own)
    temperature: float = 1.0  # scores are divided by this (see the module doc)

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Teacher scores of (query, passage) pairs divided by `temperature`, float32, in input order."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        raw = self._raw_scores(pairs)
        return raw if self.temperature == 1.0 else (raw / np.float32(self.temperature)).astype(np.float32)

    def _raw_scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if self.mode == "reranker":
            return np.asarray(self.model.score(pairs, show_progress=False), dtype=np.float32)
        modes = {"all": None, "colbert": ["colbert"], "dense": ["dense"]}[self.mode]
        scores = self.model.score_pairs(
            pairs, modes=modes, max_query_length=self.max_length, max_passage_length=self.max_length
        )
        for key in ("colbert+sparse+dense", "sparse+dense", self.mode, "dense"):
            if key in scores and (self.mode == "all" or key == self.mode):
                return np.asarray(scores[key], dtype=np.float32)
        raise InputError(f"teacher {self.name} gives no {self.mode} score")  # pragma: no cover


def load_teacher(
    name: str | os.PathLike[str],
    mode: str | None = None,
    *,
    device: str | None = None,
    max_length: int | None = None,
    batch_tokens: int | None = None,
    temperature: float = 1.0,
) -> Teacher:
    """Load `name` as a teacher. `mode` None: `reranker` when the checkpoint is a one-logit classifier, else
    `all`. A reranker mode with an embedder (or the reverse) is a one-line error. Scores are divided by
    `temperature` (module doc)."""
    from trivec.models.checkpoint import resolve_model_path

    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise InputError(
            f"teacher temperature must be a positive number, got {temperature!r}",
            cli=f"--temperature must be a positive number, got {temperature!r}",
        )
    if mode is not None and mode not in TEACHER_MODES:
        raise InputError(
            f"teacher mode must be one of {', '.join(TEACHER_MODES)}, got {mode!r}",
            cli=f"--teacher-mode must be one of {', '.join(TEACHER_MODES)}, got {mode!r}",
        )
    directory = resolve_model_path(name)
    is_classifier = _is_classifier(directory)
    if mode is None:
        mode = "reranker" if is_classifier else "all"
    if mode == "reranker":
        from trivec.inference.reranker import Reranker

        reranker = Reranker.from_pretrained(
            name, device=device, max_length=max_length, batch_tokens=batch_tokens
        )
        return Teacher(reranker, mode, str(name), temperature=float(temperature))
    if is_classifier:
        raise InputError(
            f"teacher {name} is a cross-encoder: it gives reranker scores, not {mode} ones",
            cli=f"--teacher {name} is a cross-encoder: use --teacher-mode reranker (or leave it out)",
        )
    from trivec.inference import Embedder

    embedder = Embedder.from_pretrained(name, device=device, batch_tokens=batch_tokens)
    embedder.require(sparse=False, colbert=mode == "colbert")
    if max_length is not None:
        embedder._check_max_length(max_length)
    return Teacher(embedder, mode, str(name), max_length, float(temperature))


def _is_classifier(directory: Path) -> bool:
    """Whether the checkpoint's config names a one-logit sequence classifier (a cross-encoder)."""
    from transformers import AutoConfig

    from trivec.models.checkpoint import quiet_loading
    from trivec.models.cross_encoder import classifier_problem

    try:
        with quiet_loading():
            config = AutoConfig.from_pretrained(directory)
    except Exception:
        return False  # the loader reports what is wrong with it
    return classifier_problem(config) is None


@dataclass
class ScoreStats:
    """What a scoring run did."""

    rows: int = 0
    resumed: int = 0
    pairs: int = 0

    def summary(self) -> str:
        again = f", {self.resumed} taken from an earlier run" if self.resumed else ""
        return f"{self.rows} rows, {self.pairs} pairs scored{again}"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def partial_paths(output: Path) -> tuple[Path, Path]:
    """Where an unfinished run keeps its rows and what they were scored with."""
    return output.with_name(output.name + ".partial"), output.with_name(output.name + ".partial.json")


def _resume_point(partial: Path, state: Path, expected: dict[str, Any], resume: bool) -> int:
    """Rows already scored by an earlier run with the same input, teacher and mode (0: start afresh)."""
    if not partial.exists() or not resume:
        partial.unlink(missing_ok=True)
        state.unlink(missing_ok=True)
        return 0
    try:
        recorded = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        recorded = None
    if recorded != expected:
        raise InputError(
            f"{partial} is an unfinished run with another input, teacher or mode; delete it or pass "
            "resume=False",
            cli=f"{partial} is an unfinished run with another input, teacher or mode; delete it or pass --no-resume",
        )
    data = partial.read_bytes()
    complete = data.rfind(b"\n") + 1  # a row cut short by the stop is scored again
    if complete < len(data):
        with partial.open("r+b") as handle:
            handle.truncate(complete)
    return data[:complete].count(b"\n")


def score_rows(
    teacher: Teacher,
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    resume: bool = True,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool | None = None,
) -> ScoreStats:
    """Write `data`'s rows to `output` with `pos_scores` / `neg_scores` from `teacher` (see the module doc);
    every other field is kept as it was."""
    source, target = Path(data), Path(output)
    if chunk_rows < 1:
        raise InputError(f"chunk_rows must be a positive integer, got {chunk_rows}")
    check_output_path(target, inputs=[source])
    rows = [(obj, parse_example(obj, source, line, need_scores=False)) for line, obj in iter_jsonl(source)]
    if not rows:
        raise InputError(f"{source}: no rows")
    partial, state = partial_paths(target)
    expected: dict[str, Any] = {
        "data_sha256": file_digest(source),
        "teacher": teacher.name,
        "mode": teacher.mode,
    }
    if teacher.temperature != 1.0:  # (a run without one records none, as before the option existed)
        expected["temperature"] = teacher.temperature
    done = _resume_point(partial, state, expected, resume)
    if done > len(rows):
        raise InputError(f"{partial} has more rows ({done}) than {source} ({len(rows)}); delete it")
    if done:
        LOG.info("resuming: %d of %d rows were scored by an earlier run", done, len(rows))
    state.write_text(json.dumps(expected), encoding="utf-8")
    stats = ScoreStats(rows=len(rows), resumed=done)
    with (
        partial.open("a", encoding="utf-8") as handle,
        Progress(len(rows), "teacher scores", "rows", enabled=progress) as bar,
    ):
        bar.update(done)
        for start in range(done, len(rows), chunk_rows):
            chunk = rows[start : start + chunk_rows]
            pairs = [(ex.query, p) for _, ex in chunk for p in (*ex.pos, *ex.neg)]
            scores = teacher.score(pairs).tolist()
            stats.pairs += len(pairs)
            at = 0
            lines = []
            for obj, ex in chunk:
                row = dict(obj)
                row["pos_scores"] = scores[at : at + len(ex.pos)]
                at += len(ex.pos)
                row["neg_scores"] = scores[at : at + len(ex.neg)]
                at += len(ex.neg)
                lines.append(json.dumps(row, ensure_ascii=False) + "\n")
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
            bar.update(len(chunk))
    _finish(partial, target)
    state.unlink(missing_ok=True)
    return stats


def _finish(partial: Path, target: Path) -> None:
    """Give the finished file the mode a plain write would and move it into place."""
    from trivec.io import _umask

    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    os.chmod(partial, mode)
    os.replace(partial, target)
