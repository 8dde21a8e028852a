"""Cross-encoder (reranker) fine-tuning: groups of one positive and n negatives, cross-entropy per group."""

from typing import TYPE_CHECKING

from trivec._lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (trivec._lazy): the CLI reads `RerankerConfig` without torch
    from trivec.training.reranker.arguments import RerankerConfig
    from trivec.training.reranker.train import (
        GroupCollator,
        GroupDataset,
        RerankerTrainer,
        build_reranker_trainer,
        train_reranker,
    )

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "RerankerConfig": "trivec.training.reranker.arguments",
        "GroupCollator": "trivec.training.reranker.train",
        "GroupDataset": "trivec.training.reranker.train",
        "RerankerTrainer": "trivec.training.reranker.train",
        "build_reranker_trainer": "trivec.training.reranker.train",
        "train_reranker": "trivec.training.reranker.train",
    },
)

__all__ = [
    "GroupCollator",
    "GroupDataset",
    "RerankerConfig",
    "RerankerTrainer",
    "build_reranker_trainer",
    "train_reranker",
]
