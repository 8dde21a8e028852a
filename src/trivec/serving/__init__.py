"""Serving: an HTTP API (FastAPI + uvicorn) for dense, sparse and ColBERT outputs, scores and search,
with dynamic batching of concurrent requests."""

from trivec.serving.app import create_app
from trivec.serving.batcher import DynamicBatcher, EncodeSpec, QueueFullError, ShuttingDownError
from trivec.serving.config import ServerConfig, ServingLimits
from trivec.serving.server import ServerThread, build_app, run_server

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
