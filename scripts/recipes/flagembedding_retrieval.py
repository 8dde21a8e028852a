"""An English retrieval folder from the question → passage rows of the shared data's flagembedding-examples.

    python scripts/recipes/flagembedding_retrieval.py [--out build/flagembedding-en-retrieval]

flagembedding-examples is a training folder (FlagEmbedding's example fine-tuning rows) that no trivec model
trains on; its MS MARCO and NQ rows (`type: normal`: a query, one positive passage, hard negatives) are the
only English question → passage rows of the shared data outside the evaluation sets. This writes them in the
retrieval layout — every query over the union of all the rows' positives and negatives, its own positive
relevant — so `trivec eval --task-dir OUT --task-type retrieval --language en` reads them. 20 queries: a
check that a fusion does not break English web / Wikipedia questions, too small to choose anything by.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from trivec.evaluation.data import write_retrieval_folder
from trivec.io import iter_jsonl

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TRIVEC_SHARED", REPO.parent / "shared"))
SOURCES = ("msmarco.jsonl", "nq.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "build" / "flagembedding-en-retrieval")
    args = parser.parse_args()
    source = SHARED / "data" / "flagembedding-examples" / "train.jsonl"
    rows = [row for _, row in iter_jsonl(source)]
    rows = [row for row in rows if row.get("source", "").rsplit("/", 1)[-1] in SOURCES]
    if not rows:
        raise SystemExit(f"{source}: no row from {', '.join(SOURCES)}")
    passages = list(dict.fromkeys(p for row in rows for p in [*row["pos"], *row.get("neg", [])]))
    doc_id = {text: f"d{i}" for i, text in enumerate(passages)}
    write_retrieval_folder(
        args.out,
        {ident: text for text, ident in doc_id.items()},
        {f"q{k}": row["query"] for k, row in enumerate(rows)},
        [(f"q{k}", doc_id[positive]) for k, row in enumerate(rows) for positive in row["pos"]],
    )
    print(f"{len(rows)} queries over {len(passages)} passages → {args.out}")


if __name__ == "__main__":
    main()
