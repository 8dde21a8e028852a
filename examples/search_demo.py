"""Search demo: index a mixed-language corpus with trivec's offline default model, reopen it, search across
languages.

The corpus mixes real texts of `../shared/data`: Chinese, Arabic and Indonesian Wikipedia paragraphs (the
cmrc2018, ARCD and TyDi QA retrieval sets) and Tatoeba sentences in Chinese, Japanese, German, Spanish,
Russian and English. The default model (`m3-small`: multilingual-e5-small with trivec's M3 heads) indexes
them into an embedded index (a directory: no service); the index is reopened as a reader would, and queried
in one language for documents in another: English sentences whose Chinese / Japanese / German / Russian
translation is in the corpus, a Turkish sentence whose English translation is, and questions of the
retrieval sets in their own language. ✓ marks the document that answers (the translation, or the judged
paragraph). The same from the shell:

    trivec index build --corpus corpus.jsonl --index runs/mixed-index
    trivec search --index runs/mixed-index "Where is the train station?" --top-k 3

Usage: python examples/search_demo.py [--index DIR] [--per-language N] [--top-k K]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from trivec import Embedder
from trivec.retrieval import Index

DATA = Path(os.environ.get("TRIVEC_SHARED", Path(__file__).resolve().parents[1].parent / "shared")) / "data"
PARAGRAPH_SETS = {
    "zh": "cmrc2018-trial-retrieval",
    "ar": "arcd-test-retrieval",
    "id": "tydiqa-id-dev-retrieval",
}
SENTENCE_LANGUAGES = {"cmn": "zh", "jpn": "ja", "deu": "de", "spa": "es", "rus": "ru"}
CROSS_LINGUAL_QUERIES = 2  # English sentences asked per sentence language


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_corpus(per_language: int) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Documents `{id, text, metadata}` and questions `(language, text, id of the answering document)`."""
    docs: list[dict] = []
    questions: list[tuple[str, str, str]] = []
    for lang, folder in PARAGRAPH_SETS.items():
        corpus = read_jsonl(DATA / folder / "corpus.jsonl")[:per_language]
        docs += [{"id": f"{lang}:{d['id']}", "text": d["text"], "metadata": {"lang": lang}} for d in corpus]
        kept = {d["id"] for d in corpus}
        qrels = [line.split("\t")[:2] for line in (DATA / folder / "qrels.tsv").read_text().splitlines()[1:]]
        answer = {qid: did for qid, did in qrels if did in kept}
        query = next(q for q in read_jsonl(DATA / folder / "queries.jsonl") if q["id"] in answer)
        questions.append((lang, query["text"], f"{lang}:{answer[query['id']]}"))
    pairs = read_jsonl(DATA / "tatoeba-bitext" / "pairs.jsonl")
    for code, lang in SENTENCE_LANGUAGES.items():
        rows = [p for p in pairs if p["lang"] == code][:per_language]
        docs += [
            {"id": f"{lang}:{p['id']}", "text": p["sentence1"], "metadata": {"lang": lang}} for p in rows
        ]
        questions += [("en", p["sentence2"], f"{lang}:{p['id']}") for p in rows[:CROSS_LINGUAL_QUERIES]]
    english = [p for p in pairs if p["lang"] == "tur"][:per_language]  # English side in, Turkish side asks
    docs += [{"id": f"en:{p['id']}", "text": p["sentence2"], "metadata": {"lang": "en"}} for p in english]
    questions.append(("tr", english[0]["sentence1"], f"en:{english[0]['id']}"))
    return docs, questions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--index", type=Path, default=None, help="Keep the index here (default: a temporary directory)."
    )
    parser.add_argument("--per-language", type=int, default=150, help="Documents taken from each source.")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()
    if not (DATA / "tatoeba-bitext").is_dir():
        sys.exit(
            f"search_demo: {DATA} has no tatoeba-bitext folder (set TRIVEC_SHARED to the shared/ folder)"
        )
    docs, questions = build_corpus(args.per_language)

    with tempfile.TemporaryDirectory(prefix="trivec-demo-") as tmp:
        path = args.index or Path(tmp) / "mixed-index"
        embedder = Embedder.from_pretrained("default")
        print(f"model: default = m3-small (modes {', '.join(embedder.available_modes())})")
        languages = sorted({d["metadata"]["lang"] for d in docs})
        started = time.perf_counter()
        index = Index.create(path, embedder, overwrite=True)
        index.add(docs)
        index.close()
        print(
            f"indexed {len(docs)} documents in {len(languages)} languages ({', '.join(languages)}) "
            f"in {time.perf_counter() - started:.1f} s → {path}"
        )

        started = time.perf_counter()
        index = Index.open(path, embedder)  # the model is checked against the one that built the index
        info = index.info()
        print(
            f"reopened in {(time.perf_counter() - started) * 1000:.1f} ms: {info['documents']} documents, "
            f"{info['bytes']['total'] / 1e6:.1f} MB on disk\n"
        )

        started = time.perf_counter()
        results = index.search([text for _, text, _ in questions], top_k=args.top_k)  # hybrid, one batch
        elapsed = (time.perf_counter() - started) * 1000
        found = 0
        for (lang, text, answer), hits in zip(questions, results, strict=True):
            fused = f"  (fused by {hits[0].fused_by})" if hits and hits[0].fused_by else ""  # auto's choice
            print(f"Q [{lang}]: {text[:100]}{fused}")
            for rank, hit in enumerate(hits, start=1):  # type: ignore[arg-type]
                mark = "✓" if hit.doc_id == answer else " "
                found += rank == 1 and hit.doc_id == answer
                print(f"  {rank}. {mark} [{hit.doc_id.split(':')[0]}] {hit.score:.3f}  {hit.text[:90]}")
            print()
        print(
            f"{len(questions)} queries in {elapsed:.0f} ms (query encoding included); "
            f"{found} of {len(questions)} answered at rank 1; ✓ = the translation or the judged paragraph; "
            "scores are the weighted mean of the three modes, or z-scores where a query's score spreads leave the "
            "range the model's weights were chosen in (auto fusion)"
        )
        index.close()


if __name__ == "__main__":
    main()
