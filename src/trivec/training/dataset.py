"""`ContrastiveDataset`: training files → batches of (query, 1 positive + G−1 negatives) groups.

Each item of the dataset is one *local batch* (the slice of a global batch that one process trains on), so
batch composition — same-file batches, length buckets, per-file batch and group sizes — is decided here, not
by the DataLoader. A global batch of `B × world_size` rows is cut into `world_size` contiguous slices; item
`i` is slice `i % world_size` of global batch `i // world_size`, which is exactly what Accelerate's
`BatchSamplerShard` hands each rank from a sequential sampler. The plan of an epoch and every random choice
inside a group depend only on (seed, epoch, batch, row), so a resumed run sees the same batches as an
uninterrupted one, and one process with batch `2B` sees the same rows as two processes with batch `B`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from trivec.errors import InputError
from trivec.training.arguments import DataArguments
from trivec.training.examples import SYMMETRIC_TYPES, TrainExample, load_examples

logger = logging.getLogger(__name__)
NO_IN_BATCH_SUFFIX = "no_in_batch_neg"


@dataclass
class DataSource:
    """One training file and the settings that apply to its rows (None = the run-wide value)."""

    path: str
    batch_size: int | None = None
    train_group_size: int | None = None
    query_instruction: str | None = None
    passage_instruction: str | None = None
    in_batch_negatives: bool | None = None
    knowledge_distillation: bool | None = None
    max_examples: int | None = None
    fill_negatives: str | None = None

    @classmethod
    def parse(cls, item: Any, where: str = "train_data") -> DataSource:
        """A path, or a mapping `{path: ..., batch_size: ..., ...}` (unknown keys are an error)."""
        if isinstance(item, (str, Path)):
            return cls(path=str(item))
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected a path or a mapping with 'path', got {type(item).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(item) - names)
        if unknown:
            raise InputError(
                f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        if not isinstance(item.get("path"), str):
            raise InputError(f"{where}: 'path' (the JSONL file) is missing")
        source = cls(**item)
        for name in ("batch_size", "train_group_size", "max_examples"):
            value = getattr(source, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(f"{where} ({source.path}): {name} must be a positive integer, got {value!r}")
        return source


@dataclass
class Pool:
    """Rows that may share a batch: one file (same-dataset mode) or all files, within one length bucket."""

    name: str
    rows: list[tuple[int, int]]  # (file index, row index)
    batch_size: int
    group_size: int
    in_batch_negatives: bool
    distill: bool


T = TypeVar("T")


def subsample(rows: list[T], limit: int | None, seed: int) -> list[T]:
    """At most `limit` of `rows`, a seeded choice kept in file order (`max_examples_per_file`): the same rows
    for the same file length and seed, so a run's rows can be found again (scripts/recipes)."""
    if limit is None or len(rows) <= limit:
        return rows
    keep = np.sort(np.random.default_rng([seed, 7]).choice(len(rows), limit, replace=False))
    return [rows[i] for i in keep]


@dataclass
class TrainBatch:
    """What the collator receives: `passages` holds G consecutive texts per query, positive first."""

    queries: list[str]
    passages: list[str]
    group_size: int
    in_batch_negatives: bool = True
    teacher_scores: list[float] | None = None
    sources: list[str] = field(default_factory=list)


@dataclass
class _File:
    source: DataSource
    examples: list[TrainExample]
    group_size: int
    in_batch_negatives: bool
    distill: bool
    fill: str
    query_instruction: str | None
    passage_instruction: str | None
    texts: list[str] = field(default_factory=list)  # for random negatives, in first-seen order


class ContrastiveDataset(Dataset):
    """Local batches for `world_size` processes; call `set_epoch` before iterating an epoch."""

    def __init__(
        self,
        data: DataArguments,
        batch_size: int,
        in_batch_negatives: bool = True,
        world_size: int = 1,
        seed: int = 42,
        drop_last: bool = False,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        self.data = data
        self.world_size = max(1, int(world_size))
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        self._plans: dict[int, list[tuple[int, list[tuple[int, int]]]]] = {}
        self.files = [
            self._load_file(DataSource.parse(item, f"train_data[{i}]"), batch_size, in_batch_negatives)
            for i, item in enumerate(data.train_data)
        ]
        self.pools = self._make_pools(batch_size, tokenizer)
        self.num_batches = len(self.plan(0))
        if self.num_batches == 0:
            sizes = ", ".join(f"{p.name}: {len(p.rows)} rows, batch {p.batch_size}" for p in self.pools)
            raise InputError(
                f"no complete batch of batch_size x {self.world_size} processes can be formed ({sizes}); "
                "use a smaller batch size or more data"
            )

    # ------------------------------------------------------------------ files
    def _load_file(self, source: DataSource, batch_size: int, in_batch_default: bool) -> _File:
        data = self.data
        distill = (
            data.knowledge_distillation
            if source.knowledge_distillation is None
            else source.knowledge_distillation
        )
        examples = load_examples(source.path, need_scores=distill)
        limit = source.max_examples or data.max_examples_per_file
        examples = subsample(examples, limit, self.seed)
        group = source.train_group_size or data.train_group_size
        kind = examples[0].type
        if kind == "only_1neg":
            group = 2
        elif kind == "symmetric_class":
            group = min(len(examples[0].neg) + 1, group)
        in_batch = source.in_batch_negatives
        if in_batch is None:
            in_batch = in_batch_default and not Path(source.path).stem.endswith(NO_IN_BATCH_SUFFIX)
        fill = source.fill_negatives or data.fill_negatives
        if fill not in ("error", "random"):
            raise InputError(f"{source.path}: fill_negatives must be 'error' or 'random', got {fill!r}")
        item = _File(
            source=source,
            examples=examples,
            group_size=group,
            in_batch_negatives=bool(in_batch),
            distill=bool(distill),
            fill=fill,
            query_instruction=source.query_instruction
            if source.query_instruction is not None
            else data.query_instruction,
            passage_instruction=source.passage_instruction
            if source.passage_instruction is not None
            else data.passage_instruction,
        )
        if group > 1:
            self._check_negatives(item)
        return item

    def _check_negatives(self, item: _File) -> None:
        """Rows without negatives: an error naming the row, or (fill 'random') texts of other rows."""
        empty = [ex for ex in item.examples if not ex.neg]
        if not empty:
            return
        first = empty[0]
        if item.fill == "error" or item.distill:
            why = (
                "knowledge distillation has no teacher score for a filled-in negative"
                if item.fill == "random"
                else "mine hard negatives (`trivec mine`), train with train_group_size 1 (in-batch negatives "
                "only), or set fill_negatives: random"
            )
            raise InputError(
                f"{first.source}:{first.line}: field 'neg' is empty but train_group_size is {item.group_size} "
                f"({len(empty)} such rows in this file); {why}"
            )
        seen: dict[str, None] = {}
        for ex in item.examples:
            for text in (*ex.pos, *ex.neg):
                seen.setdefault(text, None)
        item.texts = list(seen)
        if len(item.texts) < 2:
            raise InputError(f"{first.source}: too few distinct texts to draw random negatives from")

    # ------------------------------------------------------------------ pools and plans
    def _make_pools(self, batch_size: int, tokenizer: PreTrainedTokenizerBase | None) -> list[Pool]:
        data = self.data
        buckets = self._buckets(tokenizer) if data.length_buckets else None
        n_buckets = len(data.length_buckets) + 1 if data.length_buckets else 1
        groups: list[tuple[str, list[int]]] = []  # (name, file indices) that may share batches
        if data.same_dataset_within_batch or len(self.files) == 1:
            groups = [(f.source.path, [i]) for i, f in enumerate(self.files)]
        else:
            self._check_mixable()
            groups = [("all files", list(range(len(self.files))))]
        pools = []
        for name, members in groups:
            first = self.files[members[0]]
            size = first.source.batch_size or batch_size
            for b in range(n_buckets):
                rows = [
                    (fi, ri)
                    for fi in members
                    for ri in range(len(self.files[fi].examples))
                    if buckets is None or buckets[fi][ri] == b
                ]
                if not rows:
                    continue
                bucket_size = data.bucket_batch_sizes[b] if data.bucket_batch_sizes else size
                label = name if buckets is None else f"{name} [bucket {self._bucket_label(b)}]"
                pools.append(
                    Pool(label, rows, bucket_size, first.group_size, first.in_batch_negatives, first.distill)
                )
        return pools

    def _check_mixable(self) -> None:
        """Rows of different files share a batch only when their batch-shaping settings agree."""
        first = self.files[0]
        for other in self.files[1:]:
            for name in ("group_size", "in_batch_negatives", "distill"):
                if getattr(first, name) != getattr(other, name):
                    raise InputError(
                        f"{first.source.path} and {other.source.path} differ in {name} "
                        f"({getattr(first, name)} vs {getattr(other, name)}); batches mixing files need the same "
                        "value: set same_dataset_within_batch: true"
                    )
            if (first.source.batch_size or 0) != (other.source.batch_size or 0):
                raise InputError(
                    f"{first.source.path} and {other.source.path} have different batch sizes; "
                    "set same_dataset_within_batch: true"
                )

    def _bucket_label(self, b: int) -> str:
        bounds = [0, *(self.data.length_buckets or []), None]
        return f"{bounds[b]}-{bounds[b + 1] if bounds[b + 1] is not None else 'inf'}"

    def _buckets(self, tokenizer: PreTrainedTokenizerBase | None) -> list[list[int]]:
        """Bucket of each row: by its longest text in tokens (after truncation), as split_data_by_length."""
        if tokenizer is None:
            raise InputError("length_buckets need the model's tokenizer")
        bounds = np.asarray(self.data.length_buckets)
        result = []
        for item in self.files:
            queries = [ex.query for ex in item.examples]
            q_len = np.minimum([len(x) for x in tokenizer(queries)["input_ids"]], self.data.query_max_len)
            longest = []
            for ex in item.examples:
                lengths = [len(x) for x in tokenizer([*ex.pos, *ex.neg])["input_ids"]]
                longest.append(min(max(lengths), self.data.passage_max_len))
            length = np.maximum(q_len, np.asarray(longest))
            result.append(np.searchsorted(bounds, length, side="right").tolist())
        return result

    def plan(self, epoch: int) -> list[tuple[int, list[tuple[int, int]]]]:
        """Global batches of an epoch as (pool index, rows), in training order."""
        if epoch in self._plans:
            return self._plans[epoch]
        rng = np.random.default_rng([self.seed, epoch])
        batches: list[tuple[int, list[tuple[int, int]]]] = []
        for p, pool in enumerate(self.pools):
            order = rng.permutation(len(pool.rows))
            size = pool.batch_size * self.world_size
            full = len(order) // size
            for b in range(full):
                batches.append((p, [pool.rows[i] for i in order[b * size : (b + 1) * size]]))
            rest = len(order) - full * size
            if rest and self.world_size == 1 and not self.drop_last:
                batches.append((p, [pool.rows[i] for i in order[full * size :]]))
        shuffled = [batches[i] for i in rng.permutation(len(batches))]
        self._plans = {epoch: shuffled}  # keep only the current epoch
        return shuffled

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches * self.world_size

    # ------------------------------------------------------------------ items
    def __getitem__(self, index: Any) -> TrainBatch:
        index = int(index)
        g, rank = divmod(index, self.world_size)
        plan = self.plan(self.epoch)
        if not 0 <= g < len(plan):
            raise IndexError(index)
        p, rows = plan[g]
        pool = self.pools[p]
        local = len(rows) // self.world_size
        start = rank * local
        batch = TrainBatch([], [], pool.group_size, pool.in_batch_negatives, [] if pool.distill else None)
        for offset, (fi, ri) in enumerate(rows[start : start + local]):
            rng = np.random.default_rng([self.seed, self.epoch, g, start + offset])
            self._add_group(batch, self.files[fi], self.files[fi].examples[ri], rng, pool.group_size)
        return batch

    def _add_group(
        self, batch: TrainBatch, item: _File, ex: TrainExample, rng: np.random.Generator, group: int
    ) -> None:
        query, p_instruction = self._instructions(item, ex)
        pos_index = int(rng.integers(len(ex.pos)))
        neg_index = self._sample_negatives(ex, group - 1, rng)
        passages = [ex.pos[pos_index]]
        for i in neg_index:
            passages.append(ex.neg[i] if i >= 0 else self._random_text(item, ex, rng))
        passages = [self._with_instruction(p_instruction, p) for p in passages]
        batch.queries.append(query)
        batch.passages.extend(passages)
        batch.sources.append(f"{ex.source}:{ex.line}")
        if batch.teacher_scores is not None:
            assert ex.pos_scores is not None and ex.neg_scores is not None
            batch.teacher_scores.append(ex.pos_scores[pos_index])
            batch.teacher_scores.extend(ex.neg_scores[i] for i in neg_index)

    def _instructions(self, item: _File, ex: TrainExample) -> tuple[str, str | None]:
        """A row's query as the model reads it (its instruction put first) and its passages' instruction."""
        data = self.data
        instruction = ex.prompt if (data.use_row_prompts and ex.prompt) else item.query_instruction
        query = self._with_instruction(instruction, ex.query)
        return query, instruction if ex.type in SYMMETRIC_TYPES else item.passage_instruction

    def _with_instruction(self, instruction: str | None, text: str) -> str:
        return self.data.query_instruction_format.format(instruction, text) if instruction else text

    def file_texts(self, index: int) -> dict[str, list[str]]:
        """Every distinct text file `index` can put in a batch, as the collator receives it, by role (query,
        passage), in first-seen order: what the token cache tokenises once."""
        item = self.files[index]
        queries: dict[str, None] = {}
        passages: dict[str, None] = {}
        instructions: dict[str | None, None] = {}
        for ex in item.examples:
            query, p_instruction = self._instructions(item, ex)
            queries.setdefault(query, None)
            instructions.setdefault(p_instruction, None)
            for text in (*ex.pos, *ex.neg):
                passages.setdefault(self._with_instruction(p_instruction, text), None)
        for p_instruction in instructions:  # random negatives (fill 'random') take the row's instruction
            for text in item.texts:
                passages.setdefault(self._with_instruction(p_instruction, text), None)
        return {"query": list(queries), "passage": list(passages)}

    @staticmethod
    def _sample_negatives(ex: TrainExample, count: int, rng: np.random.Generator) -> list[int]:
        """`count` negative indices without replacement; a short list is repeated first (duplicates possible);
        −1 marks a slot to fill with a random text (rows without negatives, fill 'random')."""
        if count <= 0:
            return []
        if not ex.neg:
            return [-1] * count
        pool = list(range(len(ex.neg)))
        if len(pool) < count:
            pool = pool * math.ceil(count / len(pool))
        return [pool[i] for i in rng.choice(len(pool), count, replace=False)]

    @staticmethod
    def _random_text(item: _File, ex: TrainExample, rng: np.random.Generator) -> str:
        banned = {*ex.pos, ex.query}
        for _ in range(100):
            text = item.texts[int(rng.integers(len(item.texts)))]
            if text not in banned:
                return text
        raise InputError(f"{ex.source}:{ex.line}: cannot draw a random negative that is not a positive")

    @property
    def num_examples(self) -> int:
        return sum(len(f.examples) for f in self.files)

    def describe(self) -> str:
        """One line per pool, for the log."""
        return "; ".join(
            f"{p.name}: {len(p.rows)} rows, batch {p.batch_size}, group {p.group_size}"
            f"{'' if p.in_batch_negatives else ', no in-batch negatives'}{', teacher scores' if p.distill else ''}"
            for p in self.pools
        )
