"""Request bodies of the HTTP API (pydantic), with the checks that give clear 422 messages."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from trivec.languages import language_code
from trivec.textcheck import json_type

Mode = Literal["dense", "sparse", "colbert"]
EncodingFormat = Literal["float", "base64"]
TOKEN_INPUT_MESSAGE = (
    "input as token ids is not supported: send text (a string or a list of strings); token ids of "
    "another tokenizer (tiktoken) mean nothing to this model"
)


def _text_list(value: Any, name: str) -> list[str]:
    """A string or a non-empty list of strings, as a list; anything else raises ValueError naming the spot."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a string or a list of strings")
    if not value:
        raise ValueError(f"{name} must not be empty")
    for position, item in enumerate(value):
        if isinstance(item, (int, list)) and not isinstance(item, bool):
            raise ValueError(TOKEN_INPUT_MESSAGE)
        if not isinstance(item, str):
            raise ValueError(f"{name}[{position}] is {json_type(item)}, not a string")
    # no scan for lone surrogates here (megabytes of text, on the event loop): orjson refused them when it
    # parsed the body, and `Embedder.encode` refuses them from any other caller
    return list(value)


def _language(value: str | None) -> str | None:
    """`language`: the queries' ISO 639-1 code (`ID`, `id-ID` → `id`), whose fusion weights the model uses
    where it has some and the request gives no `weights`; unknown codes are refused (422)."""
    return language_code(value) if value is not None else None  # the error names the field already


def _prompt_name_field() -> Any:
    """`prompt_name` (also accepted as `input_type`): which of the model's prompts goes before the texts —
    `query`, `document` or another name the model has; absent: the model's default prompt, if any."""
    return Field(default=None, validation_alias=AliasChoices("prompt_name", "input_type"))


class EmbeddingsRequest(BaseModel):
    """`POST /v1/embeddings`, as OpenAI defines it (unknown fields are ignored, as OpenAI clients expect),
    plus `input_type` / `prompt_name` (`query` or `document`) to choose the model's prompt."""

    model_config = ConfigDict(extra="ignore")

    input: list[str]
    model: str | None = None
    prompt_name: str | None = _prompt_name_field()
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: EncodingFormat = "float"
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> list[str]:
        return _text_list(value, "input")


class EncodeRequest(BaseModel):
    """`POST /encode`: any of the three outputs, for queries or passages."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(validation_alias=AliasChoices("texts", "input"))
    dense: bool = True
    sparse: bool = False
    colbert: bool = False
    prompt_name: str | None = _prompt_name_field()
    prompt: str | None = None
    max_length: int | None = Field(default=None, ge=2)
    truncate: bool = False
    mcls: bool = False
    sparse_tokens: bool = False
    encoding_format: EncodingFormat = "float"

    @field_validator("texts", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> list[str]:
        return _text_list(value, "texts")

    @model_validator(mode="after")
    def _some_output(self) -> EncodeRequest:
        if not (self.dense or self.sparse or self.colbert):
            raise ValueError("ask for at least one output: dense, sparse or colbert")
        return self


class ScoreRequest(BaseModel):
    """`POST /score`: either `pairs` of (query, passage), or one `query` with `passages`."""

    model_config = ConfigDict(extra="forbid")

    pairs: list[tuple[str, str]] | None = Field(default=None, min_length=1)
    query: str | None = None
    passages: list[str] | None = Field(default=None, min_length=1)
    modes: list[Mode] | None = Field(default=None, min_length=1)
    weights: dict[str, float] | list[float] | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    max_query_length: int | None = Field(default=None, ge=2)
    max_passage_length: int | None = Field(default=None, ge=2)
    truncate: bool = False
    language: str | None = None

    _check_language = field_validator("language")(_language)

    @model_validator(mode="after")
    def _one_form(self) -> ScoreRequest:
        has_pairs = self.pairs is not None
        has_query = self.query is not None or self.passages is not None
        if has_pairs == has_query:
            raise ValueError("send either 'pairs' or 'query' with 'passages', not both and not neither")
        if has_query and (self.query is None or self.passages is None):
            raise ValueError("'query' and 'passages' go together")
        return self


class SearchRequest(BaseModel):
    """`POST /search`: one query (`query`) or several (`queries`) against the loaded index."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = None
    queries: list[str] | None = Field(default=None, min_length=1)
    top_k: int = Field(default=10, ge=1, le=1000)
    mode: Literal["dense", "sparse", "colbert", "hybrid"] = "hybrid"
    weights: dict[str, float] | list[float] | None = None
    # = trivec.retrieval.fusion.FUSIONS (tested); None: the model's own fusion, else the weighted mean
    fusion: (
        Literal["weighted", "rrf", "zscore", "auto", "weighted+vote", "rrf+vote", "zscore+vote", "auto+vote"]
        | None
    ) = None
    candidates: int | None = Field(default=None, ge=1, le=10_000)
    query_prompt: str | None = None
    max_length: int | None = Field(default=None, ge=2)
    truncate: bool = False
    language: str | None = None

    _check_language = field_validator("language")(_language)

    @model_validator(mode="after")
    def _one_form(self) -> SearchRequest:
        if (self.query is None) == (self.queries is None):
            raise ValueError(
                "send either 'query' (one string) or 'queries' (a list), not both and not neither"
            )
        from trivec.retrieval.base import check_query_texts

        check_query_texts(self.texts())
        return self

    def texts(self) -> list[str]:
        return [self.query] if self.query is not None else list(self.queries or [])
