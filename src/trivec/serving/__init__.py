"""Serving: an HTTP API (FastAPI + uvicorn) for dense, sparse and ColBERT outputs, scores and search,
with dynamic batching of concurrent requests."""

from typing import TYPE_CHECKING

from trivec._lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (trivec._lazy): `import trivec` stays light
    from trivec.serving.app import create_app
    from trivec.serving.batcher import DynamicBatcher, EncodeSpec
    from trivec.serving.config import ServerConfig, ServingLimits
    from trivec.serving.server import ServerThread, build_app, run_server
    from trivec.serving.worker import QueueFullError, ShuttingDownError

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "create_app": "trivec.serving.app",
        "DynamicBatcher": "trivec.serving.batcher",
        "EncodeSpec": "trivec.serving.batcher",
        "QueueFullError": "trivec.serving.worker",
        "ShuttingDownError": "trivec.serving.worker",
        "ServerConfig": "trivec.serving.config",
        "ServingLimits": "trivec.serving.config",
        "ServerThread": "trivec.serving.server",
        "build_app": "trivec.serving.server",
        "run_server": "trivec.serving.server",
    },
)

__all__ = [
    "DynamicBatcher",
    "EncodeSpec",
    "QueueFullError",
    "ServerConfig",
    "ServerThread",
    "ServingLimits",
    "ShuttingDownError",
    "build_app",
    "create_app",
    "run_server",
]
