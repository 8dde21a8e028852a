"""Crash safety: a writer process killed with SIGKILL at random moments never leaves a half-written index.

Each trial forks a writer that applies a random sequence of commits (adds, deletes, atomic updates, merges,
compactions) and logs each one after it returns; the test kills it after a random delay while reading the
index in a loop, then reopens it. The index must hold exactly the state after the logged commits (or after
one more, when the kill fell between a commit and its log line), every document readable and searchable.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.retrieval.conftest import MAX_LENGTH, subset
from trivec import Embedder, EncodeResult
from trivec.retrieval import Document, EmbeddedIndex, Index

Op = tuple[str, list[int]]
State = dict[str, str]  # doc id → title


def plan_ops(state: State, pool: list[Document], rng: random.Random, n: int) -> list[Op]:
    """A random sequence of operations valid from `state` (doc indices refer to `pool`)."""
    ids = {d.id: i for i, d in enumerate(pool)}
    current = dict(state)
    ops: list[Op] = []
    for _ in range(n):
        present = sorted(ids[d] for d in current)
        absent = sorted(set(range(len(pool))) - set(present))
        choice = rng.random()
        if choice < 0.45 and absent:
            picked = rng.sample(absent, min(len(absent), rng.randint(1, 6)))
            op: Op = ("add", picked)
        elif choice < 0.7 and present:
            op = ("delete", rng.sample(present, min(len(present), rng.randint(1, 3))))
        elif choice < 0.95 and present:
            op = ("update", rng.sample(present, min(len(present), rng.randint(1, 2))))
        else:
            op = ("compact", [])
        ops.append(op)
        current = apply(current, op, pool, len(ops))
    return ops


def titled(doc: Document, version: int) -> Document:
    return replace(doc, title=f"v{version}")


def apply(state: State, op: Op, pool: list[Document], version: int) -> State:
    kind, rows = op
    out = dict(state)
    if kind == "add":
        out.update({pool[i].id: pool[i].title or "" for i in rows})
    elif kind == "delete":
        for i in rows:
            del out[pool[i].id]
    elif kind == "update":
        out.update({pool[i].id: f"v{version}" for i in rows})
    return out


def writer(
    path: Path, ops: list[Op], pool: list[Document], encoded: EncodeResult, log: Path, first: int
) -> None:
    """The child: apply `ops`, logging each committed op (fsync'd) after it returns."""
    index = EmbeddedIndex.load(path)
    with log.open("a", encoding="utf-8") as handle:
        for number, (kind, rows) in enumerate(ops, start=first):
            if kind == "add":
                index.add_encoded([pool[i] for i in rows], subset(encoded, rows))
            elif kind == "delete":
                index.delete([pool[i].id for i in rows])
            elif kind == "update":
                with index.transaction():
                    index.delete([pool[i].id for i in rows])
                    index.add_encoded([titled(pool[i], number) for i in rows], subset(encoded, rows))
            else:
                index.compact()
            handle.write(f"{number}\n")
            handle.flush()
            os.fsync(handle.fileno())
    os._exit(0)


def read_state(index: Index) -> State:
    return {doc_id: index.get(doc_id)[0].title or "" for doc_id in index.doc_ids()}


def run_trials(
    tmp_path: Path, tiny: Embedder, pool: list[Document], encoded: EncodeResult, trials: int
) -> None:
    path = tmp_path / "ix"
    index = Index.create(path, tiny, max_length=MAX_LENGTH, max_segments=4, colbert_dtype="int8")
    index.add_encoded(pool[:20], subset(encoded, list(range(20))))
    index.close()
    state: State = {d.id: d.title or "" for d in pool[:20]}
    log = tmp_path / "log"
    rng = random.Random(1234)
    context = multiprocessing.get_context("fork")
    version = 1
    kills_before_done = 0
    for _trial in range(trials):
        ops = plan_ops(state, pool, rng, 25)
        prefixes = [state]
        for j, op in enumerate(ops):
            prefixes.append(apply(prefixes[-1], op, pool, version + j))
        log.write_text("", encoding="utf-8")
        child = context.Process(target=writer, args=(path, ops, pool, encoded, log, version))
        child.start()
        deadline = time.monotonic() + rng.uniform(0.0, 0.6)
        while time.monotonic() < deadline:  # readers keep working during commits
            reader = Index.open(path)
            seen = set(reader.doc_ids())
            assert any(seen == set(p) for p in prefixes), "a reader saw a state no commit produced"
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
            kills_before_done += 1
        child.join(10)
        done = len(log.read_text(encoding="utf-8").split())
        reopened = Index.open(path)
        found = read_state(reopened)
        allowed = prefixes[done : done + 2]
        assert found in allowed, f"after {done} logged commits the index holds a state no prefix has"
        assert len(reopened) == len(found)
        if found:
            probe = sorted(found)[0]
            row = next(i for i, d in enumerate(pool) if d.id == probe)
            hits = reopened.search_vectors(subset(encoded, [row]), top_k=3, mode="dense")[0]
            assert probe in [h.doc_id for h in hits]
        state = found
        version += len(ops)
    assert kills_before_done >= trials // 3  # most trials really killed a writer mid-sequence
    final = EmbeddedIndex.load(path)
    final.delete([next(iter(state))])  # a new writer clears what the killed ones left behind
    names = {seg.name for seg in final.segments}
    assert {p.name for p in (path / "segments").iterdir()} == names
    assert not [p for p in path.iterdir() if p.name.endswith(".tmp")]


def test_killed_writers_leave_the_last_commit(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    run_trials(tmp_path, tiny, small_docs, small_encoded, trials=30)


@pytest.mark.slow
def test_killed_writers_many_trials(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    run_trials(tmp_path, tiny, small_docs, small_encoded, trials=300)
