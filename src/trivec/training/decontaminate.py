"""Remove evaluation pairs from training data, so a fine-tuned model is never scored on what it saw.

Public sets overlap more than one expects: STS-B is drawn from the SemEval STS 2012–2017 sets, MRPC pairs
are SemEval 2012's MSRpar, SICK repeats pairs across its splits. A training positive `(query, pos)` is
dropped when the same two texts, in either order and ignoring surrounding spaces, form a pair of an
evaluation file (`sentence1`/`sentence2` rows of `pairs.jsonl`; rows whose `split` is `train` are not
evaluation rows and are kept). A row left without positives is dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from trivec.errors import InputError
from trivec.io import atomic_writer, check_output_path, iter_jsonl
from trivec.training.examples import parse_example


@dataclass
class DecontaminationStats:
    rows: int = 0
    kept_rows: int = 0
    removed_positives: int = 0
    removed_rows: int = 0
    evaluation_pairs: int = 0

    def summary(self) -> str:
        return (
            f"kept {self.kept_rows} of {self.rows} rows: {self.removed_positives} positives found in "
            f"{self.evaluation_pairs} evaluation pairs, {self.removed_rows} rows left without a positive"
        )


def evaluation_pairs(
    paths: Iterable[str | os.PathLike[str]], train_split: str = "train"
) -> set[frozenset[str]]:
    """Unordered text pairs of the non-train rows of pair files (`sentence1`, `sentence2`)."""
    pairs: set[frozenset[str]] = set()
    for path in paths:
        path = Path(path)
        for line, obj in iter_jsonl(path):
            if obj.get("split") == train_split:
                continue
            first, second = obj.get("sentence1"), obj.get("sentence2")
            if not isinstance(first, str) or not isinstance(second, str):
                raise InputError(f"{path}:{line}: fields 'sentence1' and 'sentence2' must be strings")
            pairs.add(frozenset((first.strip(), second.strip())))
    return pairs


def decontaminate(
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    against: Iterable[str | os.PathLike[str]],
) -> DecontaminationStats:
    """Write `data` without the positives that are evaluation pairs of `against` (atomically)."""
    data, against = Path(data), list(against)
    check_output_path(output, inputs=[data, *against])
    excluded = evaluation_pairs(against)
    stats = DecontaminationStats(evaluation_pairs=len(excluded))
    kept: list[str] = []
    for line, obj in iter_jsonl(data):
        example = parse_example(obj, data, line, need_scores=False)
        stats.rows += 1
        keep = [
            i
            for i, p in enumerate(example.pos)
            if frozenset((example.query.strip(), p.strip())) not in excluded
        ]
        stats.removed_positives += len(example.pos) - len(keep)
        if not keep:
            stats.removed_rows += 1
            continue
        if len(keep) < len(example.pos):
            obj = {**obj, "pos": [example.pos[i] for i in keep]}
            if isinstance(obj.get("pos_scores"), list):
                obj["pos_scores"] = [obj["pos_scores"][i] for i in keep]
        kept.append(json.dumps(obj, ensure_ascii=False))
    if not kept:
        raise InputError(f"{data}: every row is an evaluation pair; nothing to write")
    with atomic_writer(output) as handle:
        for row in kept:
            handle.write(row + "\n")
    stats.kept_rows = len(kept)
    return stats
