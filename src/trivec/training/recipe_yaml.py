"""Recipe values from YAML files and `--set KEY=VALUE` flags, read the same way by every training command.

YAML 1.2 scalars, not PyYAML's 1.1 defaults: only true/false are booleans (`save_strategy: no` stays the
string "no"), and `1e-5` is a float (YAML 1.1 wants `1.0e-5` and reads `1e-5` as a string).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trivec.errors import InputError


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and exponent floats."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text with YAML 1.2 booleans and exponent floats."""
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass


def read_yaml_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping at the top of a YAML file; errors name the file (and line)."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of argument names to values, got {type(data).__name__}")
    return data


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs, each VALUE read as YAML (numbers, booleans, lists)."""
    values: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            values[key.strip()] = load_yaml(raw)
        except yaml.YAMLError as exc:
            raise InputError(f"--set {key}: cannot read value {raw!r} ({exc})") from exc
    return values


@dataclass
class RecipeValues:
    """A run's values as a training command gathers them, for `build_config` / `build_arguments`."""

    yaml: dict[str, Any]  # from the YAML recipe files, a later file winning
    overrides: dict[str, Any]  # `--set` assignments, then the options given: they win over the YAML
    source: str  # the YAML files' names, for messages ("arguments" without any)

    def merged(self) -> dict[str, Any]:
        """YAML values with the overrides applied: what the command was given."""
        return {**self.yaml, **self.overrides}


def gather_recipe_values(
    yaml_files: Sequence[Path],
    read: Callable[[Path], dict[str, Any]],
    assignments: list[str] | None,
    options: Mapping[str, Any],
) -> RecipeValues:
    """The YAML files (each through `read`), the `--set KEY=VALUE` assignments and the command's own options
    by field name (None: not given, so neither a YAML value nor a `--set` of the same name is lost)."""
    yaml_values: dict[str, Any] = {}
    for path in yaml_files:
        yaml_values.update(read(path))
    overrides = parse_assignments(assignments)
    overrides.update({name: value for name, value in options.items() if value is not None})
    return RecipeValues(yaml_values, overrides, ", ".join(str(p) for p in yaml_files) or "arguments")


# Hugging Face `TrainingArguments` fields that transformers 5 renamed: recipes keep the names FlagEmbedding
# and earlier transformers read; the installed version is handed the name it reads (no FutureWarning per run).
RENAMED_TRAINER_FIELDS = {
    "gradient_checkpointing": "activation_checkpointing",
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}


def current_trainer_names(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` for `TrainingArguments` with each renamed field under the name the installed transformers
    defines (unchanged where it defines only the old one, or where the new name is given too)."""
    from dataclasses import fields

    from transformers import TrainingArguments

    defined = {f.name for f in fields(TrainingArguments)}
    current = dict(values)
    for old, new in RENAMED_TRAINER_FIELDS.items():
        if old in current and new in defined and new not in current:
            current[new] = current.pop(old)
    return current
