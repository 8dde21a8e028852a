"""Helpers of the recipe tests: load a script of scripts/recipes as a module, write JSON Lines."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

RECIPES = Path(__file__).resolve().parents[2] / "scripts" / "recipes"


def load_recipe(name: str, monkeypatch: pytest.MonkeyPatch, shared: Path) -> ModuleType:
    """`scripts/recipes/<name>.py` as a module, reading the shared data from `shared`."""
    monkeypatch.setenv("TRIVEC_SHARED", str(shared))
    spec = importlib.util.spec_from_file_location(name, RECIPES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
