"""Metric functions of the seven task types, as MTEB / C-MTEB define them.

Retrieval metrics come from pytrec_eval (trec_eval's definitions), correlations from scipy, everything else
from scikit-learn; the few protocol steps MTEB writes itself (threshold sweeps, undersampling, bootstrapped
clustering) are reproduced step for step so the same embeddings give the same numbers (see
benchmarks/mteb_parity.py).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytrec_eval
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (
    accuracy_score,
    adjusted_mutual_info_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    v_measure_score,
)
from sklearn.metrics.pairwise import (
    paired_cosine_distances,
    paired_euclidean_distances,
    paired_manhattan_distances,
)

from trivec.vectors import unit_rows

K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 100, 1000)

RunScores = Mapping[str, Mapping[str, float]]  # query id → document id → score (a TREC run)
Qrels = Mapping[str, Mapping[str, int]]


# ----------------------------------------------------------------------------------------------- ranking
def ranked(doc_scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """Documents by score, highest first; ties by document id, descending (trec_eval's order)."""
    return sorted(doc_scores.items(), key=lambda item: (item[1], item[0]), reverse=True)


def retrieval_scores(qrels: Qrels, run: RunScores, k_values: Sequence[int] = K_VALUES) -> dict[str, float]:
    """nDCG@k, MAP@k, Recall@k, P@k, MRR@k and MAP over the judged queries (pytrec_eval).

    Every query in `qrels` counts; a judged query missing from `run` scores 0 (pytrec_eval would drop it).
    MRR@k is trec_eval's `recip_rank` on each query's top k.
    """
    return table_means(retrieval_table(qrels, run, k_values))


def retrieval_scores_per_query(
    qrels: Qrels, run: RunScores, k_values: Sequence[int] = K_VALUES, measure: str = "ndcg_at_10"
) -> tuple[dict[str, float], dict[str, float]]:
    """`retrieval_scores` and one of its measures per judged query (`measure`, named as in the means),
    the values that mean is taken over: what a paired comparison of two runs needs
    (`trivec.evaluation.significance`)."""
    table = retrieval_table(qrels, run, k_values)
    if measure not in table:
        raise ValueError(f"per-query measure {measure!r} is not one of {', '.join(table)}")
    return table_means(table), table[measure]


def table_means(table: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each measure's mean over the queries of a per-query table (`retrieval_table`)."""
    return {name: sum(values.values()) / len(values) for name, values in table.items()}


def retrieval_table(
    qrels: Qrels, run: RunScores, k_values: Sequence[int] = K_VALUES
) -> dict[str, dict[str, float]]:
    """Every measure of `retrieval_scores` for every judged query (0 for one missing from `run`)."""
    if not qrels:
        raise ValueError("no judged queries")
    ks = ",".join(str(k) for k in k_values)
    measures = {f"ndcg_cut.{ks}", f"map_cut.{ks}", f"recall.{ks}", f"P.{ks}", "map"}
    clean_run = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels}
    clean_qrels = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    evaluated = pytrec_eval.RelevanceEvaluator(clean_qrels, measures).evaluate(clean_run)
    names = {"ndcg_at": "ndcg_cut", "map_at": "map_cut", "recall_at": "recall", "precision_at": "P"}
    table: dict[str, dict[str, float]] = {}
    for k in k_values:
        for name, trec in names.items():
            table[f"{name}_{k}"] = {
                q: evaluated[q][f"{trec}_{k}"] if q in evaluated else 0.0 for q in clean_qrels
            }
    table["map"] = {q: evaluated[q]["map"] if q in evaluated else 0.0 for q in clean_qrels}
    rr = pytrec_eval.RelevanceEvaluator(clean_qrels, {"recip_rank"})
    for k in k_values:
        top = rr.evaluate({q: dict(ranked(docs)[:k]) for q, docs in clean_run.items()})
        table[f"mrr_at_{k}"] = {q: top[q]["recip_rank"] if q in top else 0.0 for q in clean_qrels}
    return table


def reranking_scores(
    positives: Mapping[str, set[str]],
    candidates: Mapping[str, Sequence[str]],
    scores: Mapping[str, np.ndarray],
    mrr_k: int = 10,
) -> dict[str, float]:
    """MAP (scikit-learn average precision per query, averaged) and MRR@k over each query's candidates.

    As MTEB's reranking evaluator: queries with no positive or no negative candidate are skipped. Ties in
    MRR keep the candidate-list order.
    """
    return reranking_scores_per_query(positives, candidates, scores, mrr_k)[0]


def reranking_scores_per_query(
    positives: Mapping[str, set[str]],
    candidates: Mapping[str, Sequence[str]],
    scores: Mapping[str, np.ndarray],
    mrr_k: int = 10,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """`reranking_scores` and, per evaluated query, the values its means are taken over: `{"map": {query:
    average precision}, "mrr_at_k": {query: reciprocal rank}}`."""
    aps: dict[str, float] = {}
    rrs: dict[str, float] = {}
    for query_id, docs in candidates.items():
        relevant = np.array([d in positives.get(query_id, set()) for d in docs], dtype=bool)
        if relevant.all() or not relevant.any():
            continue
        values = np.asarray(scores[query_id], dtype=np.float64)
        aps[query_id] = float(average_precision_score(relevant, values))
        order = np.argsort(-values, kind="stable")[:mrr_k]
        hits = np.flatnonzero(relevant[order])
        rrs[query_id] = 1.0 / (hits[0] + 1) if hits.size else 0.0
    if not aps:
        raise ValueError("no query has both a positive and a negative candidate")
    per_query = {"map": aps, f"mrr_at_{mrr_k}": rrs}
    return {**table_means(per_query), "evaluated_queries": len(aps)}, per_query


# ----------------------------------------------------------------------------------------------- STS
def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (1 − scikit-learn's paired cosine distance)."""
    return 1.0 - paired_cosine_distances(a, b)


def sts_scores(emb1: np.ndarray, emb2: np.ndarray, gold: Sequence[float]) -> dict[str, float]:
    """Pearson / Spearman of cosine, −Manhattan and −Euclidean similarity with the gold scores (scipy)."""
    gold_arr = np.asarray(gold, dtype=np.float64)
    sims = {
        "cosine": cosine_similarities(emb1, emb2),
        "manhattan": -paired_manhattan_distances(emb1, emb2),
        "euclidean": -paired_euclidean_distances(emb1, emb2),
    }
    out: dict[str, float] = {}
    for name, values in sims.items():
        out[f"{name}_pearson"] = float(pearsonr(gold_arr, values)[0])
        out[f"{name}_spearman"] = float(spearmanr(gold_arr, values)[0])
    out["pearson"], out["spearman"] = out["cosine_pearson"], out["cosine_spearman"]
    return out


# ----------------------------------------------------------------------------------------------- pairs
def best_accuracy(
    scores: np.ndarray, labels: np.ndarray, higher_is_similar: bool = True
) -> tuple[float, float]:
    """Best accuracy of `score ≥ t → 1` over thresholds between consecutive distinct scores, and that threshold.

    MTEB's sweep: thresholds lie strictly between two neighbouring distinct scores (never above the highest
    or below the lowest), the first best one wins. Distances (`higher_is_similar=False`) sweep the other way.
    """
    order, s, y = _sorted(scores, labels, higher_is_similar)
    n = len(y)
    if n < 2:
        return 0.0, -1.0
    positives = np.cumsum(y)[:-1]
    negatives_left = (y == 0).sum() - np.cumsum(y == 0)[:-1]
    accuracy = (positives + negatives_left) / n
    valid = s[:-1] != s[1:]
    if not valid.any():
        return 0.0, -1.0
    accuracy = np.where(valid, accuracy, -1.0)
    i = int(np.argmax(accuracy))
    return float(accuracy[i]), float((scores[order[i]] + scores[order[i + 1]]) / 2)


def best_f1(
    scores: np.ndarray, labels: np.ndarray, higher_is_similar: bool = True
) -> tuple[float, float, float, float]:
    """Best F1 (with its precision, recall and threshold) over the same thresholds as `best_accuracy`."""
    order, s, y = _sorted(scores, labels, higher_is_similar)
    total = int(y.sum())
    if len(y) < 2 or total == 0:
        return 0.0, 0.0, 0.0, 0.0
    correct = np.cumsum(y)[:-1].astype(np.float64)
    extracted = np.arange(1, len(y), dtype=np.float64)
    valid = (s[:-1] != s[1:]) & (correct > 0)
    if not valid.any():
        return 0.0, 0.0, 0.0, 0.0
    precision = np.divide(correct, extracted)
    recall = correct / total
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(valid, 2 * precision * recall / (precision + recall), -1.0)
    i = int(np.argmax(f1))
    threshold = float((scores[order[i]] + scores[order[i + 1]]) / 2)
    return float(f1[i]), float(precision[i]), float(recall[i]), threshold


def _sorted(scores: np.ndarray, labels: np.ndarray, higher_is_similar: bool) -> tuple[np.ndarray, Any, Any]:
    values = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if values.shape != y.shape:
        raise ValueError(f"{values.shape[0]} scores for {y.shape[0]} labels")
    key = -values if higher_is_similar else values
    order = np.argsort(key, kind="stable")
    return order, values[order], y[order]


def pair_classification_scores(
    emb1: np.ndarray, emb2: np.ndarray, labels: Sequence[float]
) -> dict[str, float]:
    """Accuracy / F1 / AP at the best threshold for cosine, dot, Euclidean and Manhattan; `max_*` over them."""
    y = np.asarray(labels).astype(np.int64)
    a = np.asarray(emb1, dtype=np.float32)
    b = np.asarray(emb2, dtype=np.float32)
    similarities = [
        ("cosine", cosine_similarities(a, b), True),
        ("dot", np.asarray([np.dot(a[i], b[i]) for i in range(a.shape[0])]), True),
        ("euclidean", paired_euclidean_distances(a, b), False),
        ("manhattan", paired_manhattan_distances(a, b), False),
    ]
    out: dict[str, float] = {}
    best: dict[str, list[float]] = defaultdict(list)
    for name, values, higher in similarities:
        values = np.asarray(values, dtype=np.float64)
        accuracy, accuracy_threshold = best_accuracy(values, y, higher)
        f1, precision, recall, f1_threshold = best_f1(values, y, higher)
        ap = float(average_precision_score(y, values if higher else -values))
        row = {"accuracy": accuracy, "f1": f1, "precision": precision, "recall": recall, "ap": ap}
        for metric, value in row.items():
            out[f"{name}_{metric}"] = value
            best[metric].append(value)
        out[f"{name}_accuracy_threshold"] = accuracy_threshold
        out[f"{name}_f1_threshold"] = f1_threshold
    for metric, values_ in best.items():
        out[f"max_{metric}"] = max(values_)
    return out


# ----------------------------------------------------------------------------------------------- bitext
def bitext_scores(source: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Nearest target (cosine) of every source row; gold = the same row. Weighted P/R/F1 as MTEB."""
    src = unit_rows(source)
    tgt = unit_rows(target)
    predictions = np.concatenate(
        [np.argmax(src[i : i + 1024] @ tgt.T, axis=1) for i in range(0, src.shape[0], 1024)]
    )
    gold = np.arange(src.shape[0])
    return {
        "accuracy": float(accuracy_score(gold, predictions)),
        "precision": float(precision_score(gold, predictions, zero_division=0, average="weighted")),
        "recall": float(recall_score(gold, predictions, zero_division=0, average="weighted")),
        "f1": float(f1_score(gold, predictions, zero_division=0, average="weighted")),
    }


# ----------------------------------------------------------------------------------------------- classification
def undersample(
    labels: Sequence[Any], samples_per_label: int, idxs: list[int] | None, seed: int
) -> tuple[list[int], list[int]]:
    """MTEB's per-experiment draw: shuffle `idxs` in place with `RandomState(seed)`, keep the first
    `samples_per_label` of each label. Returns (the shuffled list, the kept indices). Feeding the shuffled list
    back in gives the next experiment's draw."""
    if idxs is None:
        idxs = list(range(len(labels)))
    np.random.RandomState(seed).shuffle(idxs)
    counts: dict[Any, int] = defaultdict(int)
    kept = []
    for i in idxs:
        if counts[labels[i]] < samples_per_label:
            kept.append(i)
            counts[labels[i]] += 1
    return idxs, kept


def classification_scores(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Accuracy, macro/weighted F1, precision, recall; AP of the predicted labels when binary (as MTEB)."""
    out: dict[str, float] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, average="macro")),
        "f1_weighted": float(f1_score(y_true, y_pred, average="weighted")),
        "precision": float(precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "precision_weighted": float(precision_score(y_true, y_pred, average="weighted", zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall_weighted": float(recall_score(y_true, y_pred, average="weighted", zero_division=0)),
    }
    if len(np.unique(y_true)) == 2:
        out["ap"] = float(average_precision_score(y_true, y_pred, average="macro"))
        out["ap_weighted"] = float(average_precision_score(y_true, y_pred, average="weighted"))
    return out


# ----------------------------------------------------------------------------------------------- clustering
def bootstrapped_clustering(
    embeddings: np.ndarray,
    labels: Sequence[str],
    *,
    rng: random.Random,
    seed: int,
    rounds: int = 10,
    sample_size: int = 16_384,
    batch_size: int = 512,
) -> dict[str, Any]:
    """MTEB's fast clustering score: `rounds` times draw `sample_size` documents with replacement, cluster them
    with MiniBatchKMeans (k = number of gold labels, k-means++, one init, `random_state=seed`) and average the
    V-measure (and AMI). `rng` is consumed exactly as MTEB consumes its task RNG."""
    from sklearn.cluster import MiniBatchKMeans

    gold = np.asarray(labels)
    model = MiniBatchKMeans(
        n_clusters=np.unique(gold).size, batch_size=batch_size, init="k-means++", n_init=1, random_state=seed
    )
    v_measures: list[float] = []
    amis: list[float] = []
    for _ in range(rounds):
        picked = rng.choices(range(len(gold)), k=sample_size)
        assignment = model.fit_predict(embeddings[picked])
        v_measures.append(float(v_measure_score(gold[picked], assignment)))
        amis.append(float(adjusted_mutual_info_score(gold[picked], assignment)))
    return {
        "v_measure": float(np.mean(v_measures)),
        "v_measure_std": float(np.std(v_measures)),
        "ami": float(np.mean(amis)),
        "ami_std": float(np.std(amis)),
        "v_measures": v_measures,
    }
