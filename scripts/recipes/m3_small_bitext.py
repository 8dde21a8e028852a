"""English ↔ Chinese translation pairs for m3-small's training, from the *train* split of stsb-multi-mt.

    python scripts/recipes/m3_small_bitext.py --out build/m3-small-data
    python scripts/recipes/m3_small_bitext.py --validation-en build/m3-small-val-en

The QA training sets are monolingual: nothing in them asks a sentence and its translation to meet. BGE-M3
trains on translation pairs for that; the one parallel training split among the shared data is STS-B's
train split in English and its Chinese translation (rows aligned by position within a split). Every
sentence of those rows becomes a training row in both directions (`en-zh`: English query → its Chinese
translation; `zh-en`: the reverse), without negatives (the config fills them with random sentences of the
same file, and in-batch negatives apply).

Decontamination is by sentence, not by pair: a translation pair is dropped when either side appears (after
lower-casing and collapsing spaces) anywhere in an evaluation set of the shared data — every non-train row
of the STS / pair-classification folders and every row of tatoeba-bitext — since STS-B train was drawn from
the same SemEval sources that semeval-sts evaluates on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from trivec.evaluation.data import write_retrieval_folder

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TRIVEC_SHARED", REPO.parent / "shared"))
EVALUATION_PAIRS = ("semeval-sts", "stsb-multi-mt", "sick", "mrpc", "stsb-zh-cnsd", "bustm", "ocnli")
BITEXT = "tatoeba-bitext"


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def key(text: str) -> str:
    return " ".join(text.lower().split())


def evaluation_sentences(data: Path, validation_split: str | None = None) -> set[str]:
    """Every sentence of an evaluation row: non-train rows of the pair folders, all of tatoeba — less
    stsb-multi-mt's `validation_split` rows, when a validation set is made of them."""
    seen: set[str] = set()
    for folder in (*EVALUATION_PAIRS, BITEXT):
        path = data / folder / "pairs.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: cannot decontaminate against it")
        for row in read_jsonl(path):
            if folder != BITEXT and row.get("split") == "train":
                continue
            if (
                folder == "stsb-multi-mt"
                and validation_split is not None
                and row.get("split") == validation_split
            ):
                continue
            seen.add(key(row["sentence1"]))
            seen.add(key(row["sentence2"]))
    return seen


def translation_pairs(data: Path, split: str = "train") -> list[tuple[str, str]]:
    """(English, Chinese) sentence pairs of stsb-multi-mt's `split`, aligned by position, deduplicated."""
    rows = [r for r in read_jsonl(data / "stsb-multi-mt" / "pairs.jsonl") if r.get("split") == split]
    english = [r for r in rows if r["lang"] == "en"]
    chinese = [r for r in rows if r["lang"] == "zh"]
    if len(english) != len(chinese):
        raise SystemExit(f"stsb-multi-mt {split}: {len(english)} English rows vs {len(chinese)} Chinese")
    pairs: dict[str, str] = {}
    for en, zh in zip(english, chinese, strict=True):
        if en["score"] != zh["score"]:
            raise SystemExit(f"stsb-multi-mt {split}: rows not aligned at {en['sentence1']!r}")
        for field in ("sentence1", "sentence2"):
            pairs.setdefault(en[field].strip(), zh[field].strip())
    return list(pairs.items())


def english_paraphrase_retrieval(data: Path, out: Path, min_score: float = 4.0) -> tuple[int, int]:
    """A small English validation set for shipping rules, from stsb-multi-mt's English *dev* pairs: each pair
    scored ≥ `min_score` is a query (sentence1) and its relevant document (sentence2); the corpus is every
    dev sentence2. No sentence of another evaluation row or of the train split is kept, and no corpus text
    equals a query. Written in the retrieval layout; returns (documents, queries)."""
    banned = evaluation_sentences(data, validation_split="dev")
    banned |= {
        key(r[f])
        for r in read_jsonl(data / "stsb-multi-mt" / "pairs.jsonl")
        if r.get("split") == "train"
        for f in ("sentence1", "sentence2")
    }
    rows = [
        r
        for r in read_jsonl(data / "stsb-multi-mt" / "pairs.jsonl")
        if r.get("split") == "dev"
        and r["lang"] == "en"
        and key(r["sentence1"]) not in banned
        and key(r["sentence2"]) not in banned
    ]
    queries = {key(r["sentence1"]): r["sentence1"].strip() for r in rows if r["score"] >= min_score}
    documents = {
        key(r["sentence2"]): r["sentence2"].strip() for r in rows if key(r["sentence2"]) not in queries
    }
    doc_ids = {k: f"d{i}" for i, k in enumerate(documents)}
    query_ids = {k: f"q{i}" for i, k in enumerate(queries)}
    qrels = sorted(
        {
            (query_ids[key(r["sentence1"])], doc_ids[key(r["sentence2"])])
            for r in rows
            if r["score"] >= min_score and key(r["sentence2"]) in doc_ids and key(r["sentence1"]) in query_ids
        }
    )
    judged = {q for q, _ in qrels}
    write_retrieval_folder(
        out,
        {doc_ids[k]: text for k, text in documents.items()},
        {query_ids[k]: text for k, text in queries.items() if query_ids[k] in judged},
        qrels,
    )
    return len(documents), len(judged)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "build" / "m3-small-data")
    parser.add_argument(
        "--validation-en",
        type=Path,
        default=None,
        help="write the English paraphrase-retrieval validation set here instead (no training rows)",
    )
    args = parser.parse_args()
    data = SHARED / "data"
    if args.validation_en is not None:
        documents, queries = english_paraphrase_retrieval(data, args.validation_en)
        print(
            f"stsb-multi-mt English dev: {documents} documents, {queries} queries → {args.validation_en}",
            file=sys.stderr,
        )
        return
    banned = evaluation_sentences(data)
    pairs = translation_pairs(data)
    kept = [(en, zh) for en, zh in pairs if key(en) not in banned and key(zh) not in banned]
    chinese = [zh for _, zh in kept]
    if len(set(chinese)) != len(chinese):  # two English sentences, one translation: keep the first
        first: dict[str, str] = {}
        for en, zh in kept:
            first.setdefault(zh, en)
        kept = [(en, zh) for zh, en in first.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("en-zh", kept), ("zh-en", [(zh, en) for en, zh in kept])):
        with (args.out / f"stsb-bitext-{name}.jsonl").open("w", encoding="utf-8") as handle:
            for query, positive in rows:
                handle.write(
                    json.dumps({"query": query, "pos": [positive], "neg": []}, ensure_ascii=False) + "\n"
                )
    print(
        f"stsb-multi-mt train: {len(pairs)} English sentences, {len(pairs) - len(kept)} dropped "
        f"(evaluation sentence or repeated translation), {len(kept)} pairs per direction written to {args.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
