"""What lower-cased lexical keys (`"lowercase_sparse_keys": true`, `trivec.models.casing.LowercaseKeys`) cost.

    python benchmarks/lowercase_keys.py [--model m3-small] [--passages 500] [--repeats 3]

Cased paragraphs of the shared training folders (French PIAF and Indonesian TyDi QA, `--passages` of each)
encoded with the lexical mode (dense + sparse, as an index build asks) by the model as shipped (keys = the
pieces as written) and by the same weights with the flag on (a temporary model folder: the model's files
linked, its `trivec_config.json` with the flag added), interleaved over `--repeats` rounds; the table gives
the median tokens per second and the flag's share of the time. Then the re-keying alone: the same texts'
token ids through a fresh `LowercaseKeys` (first pass: every word's lower-case cut is computed; second: cached),
µs per token. The outputs are checked: dense identical, keys of text without capitals identical.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _side_common import cpu_model
from trivec import Embedder
from trivec.models.casing import LowercaseKeys
from trivec.models.m3_small import m3_small_path

SHARED = Path(os.environ.get("TRIVEC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FOLDERS = ("piaf-train", "tydiqa-id-train")


def paragraphs(count: int) -> list[str]:
    texts: list[str] = []
    for folder in FOLDERS:
        with (SHARED / "data" / folder / "train.jsonl").open(encoding="utf-8") as handle:
            seen = dict.fromkeys(p for line in handle for p in json.loads(line)["pos"])
        texts += list(seen)[:count]
    return texts


def flagged_copy(model_dir: Path, into: Path) -> Path:
    """`model_dir` with `lowercase_sparse_keys` on: every file linked, the settings file rewritten."""
    for item in model_dir.iterdir():
        if item.name != "trivec_config.json":
            (into / item.name).symlink_to(item.resolve())
    settings_file = model_dir / "trivec_config.json"
    settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
    settings["lowercase_sparse_keys"] = True
    (into / "trivec_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="m3-small", help="m3-small or a model directory (SentencePiece)")
    parser.add_argument("--passages", type=int, default=500, help="paragraphs of each folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    model_dir = m3_small_path() if args.model == "m3-small" else Path(args.model)
    texts = paragraphs(args.passages)
    with tempfile.TemporaryDirectory() as scratch:
        plain_side, lower_side = "pieces (as shipped)", "lower-case keys"
        sides = {
            plain_side: Embedder.from_pretrained(model_dir, dtype=args.dtype),
            lower_side: Embedder.from_pretrained(flagged_copy(model_dir, Path(scratch)), dtype=args.dtype),
        }
        shipped = sides[plain_side]
        # the token ids the encodes below read (document prompt included): counted, and re-keyed alone after
        ids = [np.asarray(row) for row in shipped.tokenize(shipped.with_prompt(texts, "document"))]
        tokens = sum(row.size for row in ids)
        for embedder in sides.values():  # warm-up
            embedder.encode(texts[:16], dense=True, sparse=True, prompt_name="document")
        times: dict[str, list[float]] = {name: [] for name in sides}
        outputs = {}
        for _ in range(args.repeats):
            for name, embedder in sides.items():
                start = time.perf_counter()
                outputs[name] = embedder.encode(texts, dense=True, sparse=True, prompt_name="document")
                times[name].append(time.perf_counter() - start)
        plain, lower = outputs[plain_side], outputs[lower_side]
        assert (
            plain.dense is not None and lower.dense is not None and np.array_equal(plain.dense, lower.dense)
        )
        uncased = [i for i, t in enumerate(texts) if t == t.lower()]
        assert plain.sparse is not None and lower.sparse is not None
        assert all(np.array_equal(plain.sparse[i].indices, lower.sparse[i].indices) for i in uncased)
        keys = LowercaseKeys(shipped.tokenizer, shipped.model.special_token_ids)
        passes = []
        for _ in range(2):
            start = time.perf_counter()
            for row in ids:
                keys.pairs(row)
            passes.append(time.perf_counter() - start)
    print(
        f"CPU: {cpu_model()}; model {args.model}; {len(texts)} cased paragraphs ({', '.join(FOLDERS)}), "
        f"{tokens:,} tokens; dense + sparse; median of {args.repeats} interleaved rounds"
    )
    print("| keys | tokens/s | time s | vs pieces |")
    print("|---|---:|---:|---:|")
    base = statistics.median(times[plain_side])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {tokens / median:,.0f} | {median:.2f} | {100 * (median / base - 1):+.1f} % |")
    print(
        f"re-keying alone: first pass {1e6 * passes[0] / tokens:.2f} µs/token, cached {1e6 * passes[1] / tokens:.2f} µs/token"
    )


if __name__ == "__main__":
    main()
