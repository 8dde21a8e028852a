"""`/search` over an index built by `trivec.retrieval` (adapter; filled in against the retrieval API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trivec.inference import Embedder


class IndexSearcher:
    """An opened index, searched with query texts."""

    def __init__(self, index: Any, path: Path) -> None:
        self.index = index
        self.path = path

    @classmethod
    def open(cls, path: Path) -> IndexSearcher:
        raise NotImplementedError("pending trivec.retrieval")

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def options(self, req: Any) -> dict[str, Any]:
        return {}

    def search(
        self, embedder: Embedder, queries: list[str], options: dict[str, Any], max_length: int
    ) -> list[list[dict[str, Any]]]:
        raise NotImplementedError("pending trivec.retrieval")
