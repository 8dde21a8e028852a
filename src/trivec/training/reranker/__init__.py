"""Cross-encoder (reranker) fine-tuning: groups of one positive and n negatives, cross-entropy per group."""

from trivec.training.reranker.train import (
    GroupCollator,
    GroupDataset,
    RerankerConfig,
    RerankerTrainer,
    build_reranker_trainer,
    train_reranker,
)

__all__ = [
    "GroupCollator",
    "GroupDataset",
    "RerankerConfig",
    "RerankerTrainer",
    "build_reranker_trainer",
    "train_reranker",
]
