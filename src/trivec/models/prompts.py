"""Prompts as sentence-transformers keeps them: named texts put before the inputs (`"query": "query: "`).

A model's prompts live in `config_sentence_transformers.json` as `"prompts": {name: text}` with an optional
`"default_prompt_name"`. Two names are the standard roles: `query` (search queries) and `document` (the
passages searched). Which prompt an input gets (`select_prompt`) follows `SentenceTransformer.encode`: an
explicit `prompt` wins; else `prompt_name` names one of the model's prompts; else the default prompt, if any.
Unlike sentence-transformers, a standard role the model has no prompt for means no prompt (so callers can
always say which role their texts play), and a `document` role falls back to a `passage` or `corpus` prompt
as `SentenceTransformer.encode_document` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trivec.errors import CheckpointError, InputError
from trivec.models.checkpoint import read_json_object

PROMPTS_FILE = "config_sentence_transformers.json"
QUERY = "query"
DOCUMENT = "document"
ROLES = (QUERY, DOCUMENT)
# the names sentence-transformers' `encode_document` tries, in order
DOCUMENT_ALIASES = (DOCUMENT, "passage", "corpus")


@dataclass(frozen=True)
class PromptConfig:
    """A model's prompts and the name of the one applied when a call names none."""

    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None


def check_prompts(value: Any, where: str, error: type[Exception] = InputError) -> dict[str, str]:
    """`value` as a `{name: prompt}` dict of strings; anything else raises `error` naming `where`."""
    if not isinstance(value, Mapping):
        raise error(
            f"{where}: prompts must be a JSON object {{name: prompt text}}, not {type(value).__name__}"
        )
    for name, text in value.items():
        if not isinstance(name, str) or not name:
            raise error(f"{where}: prompt names must be non-empty strings, got {name!r}")
        if not isinstance(text, str):
            raise error(f"{where}: prompt {name!r} must be a string, not {type(text).__name__}")
    return dict(value)


def check_default_name(
    name: Any, prompts: Mapping[str, str], where: str, error: type[Exception] = InputError
) -> str | None:
    """A default prompt name must be None or the name of one of `prompts`."""
    if name is None:
        return None
    if not isinstance(name, str) or name not in prompts:
        raise error(f"{where}: default_prompt_name {name!r} is not one of the prompts ({_names(prompts)})")
    return name


def read_prompts(directory: Path, legacy_query_prompt: str | None = None) -> PromptConfig:
    """The prompts of the model in `directory` (empty when it has none).

    `legacy_query_prompt` (the `query_instruction` of an older `trivec_config.json`) becomes the `query`
    prompt unless the prompts file has one.
    """
    path = directory / PROMPTS_FILE
    prompts: dict[str, str] = {}
    default = None
    data = read_json_object(path)
    if data is not None:
        if data.get("prompts") is not None:
            prompts = check_prompts(data["prompts"], str(path), CheckpointError)
        default = check_default_name(data.get("default_prompt_name"), prompts, str(path), CheckpointError)
    if legacy_query_prompt is not None:
        if not isinstance(legacy_query_prompt, str):
            raise CheckpointError(f"{directory / 'trivec_config.json'}: query_instruction must be a string")
        prompts.setdefault(QUERY, legacy_query_prompt)
    return PromptConfig(prompts, default)


def write_prompts(directory: Path, config: PromptConfig) -> Path:
    """Write the prompts into `directory`'s `config_sentence_transformers.json`, keeping its other keys."""
    path = directory / PROMPTS_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from exc
        if isinstance(loaded, dict):
            data = loaded
    data["prompts"] = dict(config.prompts)
    data["default_prompt_name"] = config.default_prompt_name
    data.setdefault("similarity_fn_name", "cosine")
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def select_prompt(
    prompts: Mapping[str, str],
    default_prompt_name: str | None,
    prompt_name: str | None = None,
    prompt: str | None = None,
) -> str:
    """The text to put before every input ('' for none), by sentence-transformers' rules (module doc)."""
    if prompt is not None:
        if not isinstance(prompt, str):
            raise InputError(f"prompt must be a string, not {type(prompt).__name__}")
        return prompt
    if prompt_name is None:
        return prompts.get(default_prompt_name, "") if default_prompt_name is not None else ""
    if not isinstance(prompt_name, str):
        raise InputError(f"prompt_name must be a string, not {type(prompt_name).__name__}")
    if prompt_name in prompts:
        return prompts[prompt_name]
    if prompt_name == DOCUMENT:
        for alias in DOCUMENT_ALIASES:
            if alias in prompts:
                return prompts[alias]
        return ""
    if prompt_name == QUERY:
        return ""
    raise InputError(
        f"unknown prompt name {prompt_name!r}; the model's prompts: {_names(prompts)} "
        f"(the roles {' and '.join(repr(r) for r in ROLES)} are always accepted)"
    )


def merge_prompts(base: Mapping[str, str], overrides: Mapping[str, str] | None) -> dict[str, str]:
    """`base` with `overrides` put over it name by name ('' = that name has no prompt)."""
    merged = dict(base)
    if overrides:
        merged.update(check_prompts(overrides, "prompts"))
    return merged


def _names(prompts: Mapping[str, str]) -> str:
    return ", ".join(repr(n) for n in prompts) if prompts else "none"
