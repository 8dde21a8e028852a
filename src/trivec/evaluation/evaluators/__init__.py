"""One evaluator per task type."""

from trivec.evaluation.evaluators.base import (
    RETRIEVAL_MODES,
    EvalSettings,
    Evaluator,
    TaskScores,
    parse_modes,
)
from trivec.evaluation.evaluators.bitext import BitextEvaluator
from trivec.evaluation.evaluators.classification import ClassificationEvaluator
from trivec.evaluation.evaluators.clustering import ClusteringEvaluator
from trivec.evaluation.evaluators.pair_classification import PairClassificationEvaluator
from trivec.evaluation.evaluators.reranking import RerankingEvaluator
from trivec.evaluation.evaluators.retrieval import RetrievalEvaluator
from trivec.evaluation.evaluators.sts import STSEvaluator
from trivec.evaluation.tasks import TaskType

EVALUATORS: dict[TaskType, type[Evaluator]] = {
    TaskType.RETRIEVAL: RetrievalEvaluator,
    TaskType.RERANKING: RerankingEvaluator,
    TaskType.STS: STSEvaluator,
    TaskType.PAIR_CLASSIFICATION: PairClassificationEvaluator,
    TaskType.CLASSIFICATION: ClassificationEvaluator,
    TaskType.CLUSTERING: ClusteringEvaluator,
    TaskType.BITEXT: BitextEvaluator,
}

__all__ = [
    "EVALUATORS",
    "RETRIEVAL_MODES",
    "BitextEvaluator",
    "ClassificationEvaluator",
    "ClusteringEvaluator",
    "EvalSettings",
    "Evaluator",
    "PairClassificationEvaluator",
    "RerankingEvaluator",
    "RetrievalEvaluator",
    "STSEvaluator",
    "TaskScores",
    "parse_modes",
]
