"""What the endpoints share: `ServingState`, built once by `create_app` and kept on `app.state.trivec`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trivec.inference import Embedder
from trivec.serving.batcher import DynamicBatcher
from trivec.serving.config import ServerConfig
from trivec.serving.metrics import ServerMetrics
from trivec.serving.rerank import RerankService
from trivec.serving.tokens import TokenCounter

if TYPE_CHECKING:  # the retrieval stack (faiss) is imported only when an index is served
    from trivec.serving.search import IndexSearcher


@dataclass
class ServingState:
    """What the endpoints share: the model, its batcher, metrics, the optional index and the limits."""

    config: ServerConfig
    embedder: Embedder
    batcher: DynamicBatcher
    metrics: ServerMetrics
    index: IndexSearcher | None
    max_tokens: int
    count: TokenCounter
    max_chars: int = 0
    started: float = field(default_factory=time.time)
    rerank: RerankService | None = None  # the cross-encoder behind /v1/rerank, when one is served

    @property
    def colbert_dim(self) -> int | None:
        head = self.embedder.model.colbert_head
        return int(head.out_features) if head is not None else None
