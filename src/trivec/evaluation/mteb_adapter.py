"""`MtebEncoder`: lets the `mteb` package evaluate a trivec model through its encoder protocol.

mteb is not a dependency of trivec; this module imports it only inside `mteb_model_meta`. The adapter accepts
what mteb ≥ 2 passes (`encode(DataLoader of {"text": [...]} batches, task_metadata=…, hf_split=…, hf_subset=…,
prompt_type=PromptType.query|document)`) as well as the list-of-sentences calls of mteb 1.x, and returns
float32 numpy arrays. mteb's `prompt_type` is the prompt role: queries get the model's `query` prompt and
documents its `document` prompt; texts without a role (STS, classification, …) its default prompt, if any.
`prompts` overrides the model's prompts of those roles for every task, `task_prompts` per task name — as
C-MTEB instructs only the queries of some retrieval/reranking tasks.

    import mteb
    from trivec.evaluation import MtebEncoder
    model = MtebEncoder("BAAI/bge-m3", task_prompts={"T2Retrieval": {"query": "为这个句子生成表示以用于检索相关文章："}})
    mteb.evaluate(model, mteb.get_tasks(tasks=["T2Retrieval"]))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from trivec.inference import Embedder
from trivec.inference.loading import ModelLike, load_embedder
from trivec.models.prompts import DOCUMENT, QUERY, ROLES
from trivec.vectors import unit_rows


def _texts_of(inputs: Any) -> list[str]:
    """Texts from a string, a list of strings, or an iterable of mteb batches (`{"text": [...]}`)."""
    if isinstance(inputs, str):
        return [inputs]
    texts: list[str] = []
    for item in inputs if isinstance(inputs, Iterable) else [inputs]:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, Mapping):
            batch = item.get("text")
            if batch is None:
                raise TypeError(
                    f"mteb batch has no 'text' field (fields: {sorted(item)}); only text is supported"
                )
            texts.extend([batch] if isinstance(batch, str) else [str(t) for t in batch])
        else:
            raise TypeError(f"cannot encode a {type(item).__name__}; expected text or batches of text")
    return texts


def _name_of(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


class MtebEncoder:
    """A trivec model as an mteb encoder (dense embeddings, cosine similarity)."""

    def __init__(
        self,
        model: ModelLike,
        *,
        prompts: Mapping[str, str] | None = None,
        task_prompts: Mapping[str, Mapping[str, str]] | None = None,
        batch_tokens: int | None = None,
        max_length: int | None = None,
        name: str | None = None,
        show_progress: bool = False,
    ) -> None:
        self.embedder: Embedder = load_embedder(model, batch_tokens=batch_tokens)
        self.prompts = dict(prompts or {})
        self.task_prompts = {str(k): dict(v) for k, v in (task_prompts or {}).items()}
        self.max_length = max_length
        self.show_progress = show_progress
        self.name = name or str(self.embedder.model.source or "trivec-model")

    # ------------------------------------------------------------------ encoder protocol
    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any = None,
        hf_split: str | None = None,
        hf_subset: str | None = None,
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Dense embeddings `[N, D]` float32 of every text in `inputs`, in order, in one token-budget pass."""
        texts = _texts_of(inputs)
        role = _name_of(prompt_type)
        prompt_name = role if role in ROLES else None
        task_name = getattr(task_metadata, "name", None) or kwargs.get("task_name")
        return self.embed(texts, prompt_name=prompt_name, prompt=self.prompt_for(prompt_name, task_name))

    def prompt_for(self, prompt_name: str | None, task_name: Any = None) -> str | None:
        """The override of the prompt of `prompt_name` for `task_name` (None: the model's own applies)."""
        if prompt_name is None:
            return None
        own = self.task_prompts.get(str(task_name), {}) if task_name is not None else {}
        return own.get(prompt_name, self.prompts.get(prompt_name))

    def embed(self, texts: list[str], *, prompt_name: str | None, prompt: str | None) -> np.ndarray:
        """The model call behind `encode` (a subclass may serve vectors from elsewhere)."""
        if not texts:
            return np.zeros((0, self.embedder.model.hidden_size), dtype=np.float32)
        result = self.embedder.encode(
            texts,
            dense=True,
            prompt_name=prompt_name,
            prompt=prompt,
            max_length=self.max_length,
            show_progress=self.show_progress,
        )
        assert result.dense is not None
        return result.dense

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Cosine similarity matrix `[N1, N2]`."""
        a = unit_rows(np.atleast_2d(np.asarray(embeddings1, dtype=np.float32)))
        b = unit_rows(np.atleast_2d(np.asarray(embeddings2, dtype=np.float32)))
        return a @ b.T

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Cosine similarity of row i with row i, `[N]`."""
        a = unit_rows(np.atleast_2d(np.asarray(embeddings1, dtype=np.float32)))
        b = unit_rows(np.atleast_2d(np.asarray(embeddings2, dtype=np.float32)))
        return np.einsum("nd,nd->n", a, b)

    # mteb 1.x names
    def encode_queries(self, queries: list[str], **kwargs: Any) -> np.ndarray:
        return self.embed(
            _texts_of(queries), prompt_name=QUERY, prompt=self.prompt_for(QUERY, kwargs.get("task_name"))
        )

    def encode_corpus(self, corpus: Any, **kwargs: Any) -> np.ndarray:
        if isinstance(corpus, list) and corpus and isinstance(corpus[0], Mapping):
            corpus = [f"{d.get('title', '')} {d.get('text', '')}".strip() for d in corpus]
        return self.embed(
            _texts_of(corpus), prompt_name=DOCUMENT, prompt=self.prompt_for(DOCUMENT, kwargs.get("task_name"))
        )

    @property
    def mteb_model_meta(self) -> Any:
        """An `mteb.models.ModelMeta` describing the model (needs mteb installed)."""
        from mteb.models import ModelMeta

        import trivec

        model = self.embedder.model
        name = self.name if "/" in self.name else f"trivec/{self.name}"
        return ModelMeta.create_empty(
            overwrites={
                "name": name,
                "revision": trivec.__version__,
                "embed_dim": model.hidden_size,
                "max_tokens": model.max_length,
                "n_parameters": int(sum(p.numel() for p in model.parameters())),
                "framework": ["PyTorch"],
                "similarity_fn_name": "cosine",
                "use_instructions": bool(
                    any(self.embedder.resolve_prompt(role) for role in ROLES)
                    or any(self.prompts.values())
                    or any(v for p in self.task_prompts.values() for v in p.values())
                ),
            }
        )
