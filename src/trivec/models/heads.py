"""The two M3 heads on top of the encoder's token states, stored as BAAI's `*_linear.pt` files.

`SparseHead`: `w_t = ReLU(W·h_t + b)`, one lexical weight per token (`sparse_linear.pt`, Linear(H, 1)).
`ColbertHead`: `E_t = norm(W·h_t + b)` per token after CLS (`colbert_linear.pt`, Linear(H, D)).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trivec.errors import CheckpointError

SPARSE_HEAD_FILE = "sparse_linear.pt"
COLBERT_HEAD_FILE = "colbert_linear.pt"


class _LinearHead(nn.Module):
    """A Linear layer saved and loaded as a plain `{"weight", "bias"}` state dict, like FlagEmbedding."""

    file_name: str

    def __init__(self, hidden_size: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, out_features)

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def save(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write the head to `directory/<file_name>`; `dtype` (e.g. float16 as on the hub) casts on disk."""
        path = Path(directory) / self.file_name
        state = {
            k: v.detach().to("cpu", dtype=dtype or v.dtype).clone()
            for k, v in self.linear.state_dict().items()
        }
        torch.save(state, path)
        return path

    @classmethod
    def load(cls, path: str | Path, hidden_size: int) -> _LinearHead:
        """Load a head file, checking its keys and that its input size matches the encoder."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt file, foreign pickle, ...
            raise CheckpointError(f"cannot read head file {path}: {exc}") from exc
        if not isinstance(state, dict) or set(state) != {"weight", "bias"}:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(
                f"{path} is not a Linear state dict with 'weight' and 'bias' (found {keys})"
            )
        weight, bias = state["weight"], state["bias"]
        if weight.ndim != 2 or bias.ndim != 1 or bias.shape[0] != weight.shape[0]:
            raise CheckpointError(
                f"{path}: inconsistent shapes weight {tuple(weight.shape)} / bias {tuple(bias.shape)}"
            )
        if weight.shape[1] != hidden_size:
            raise CheckpointError(
                f"{path}: head expects hidden size {weight.shape[1]} but the encoder has {hidden_size}"
            )
        head = cls._from_shape(hidden_size, weight.shape[0], path)
        with torch.no_grad():
            head.linear.weight.copy_(weight.float())
            head.linear.bias.copy_(bias.float())
        return head

    @classmethod
    def _from_shape(cls, hidden_size: int, out_features: int, path: Path) -> _LinearHead:
        raise NotImplementedError


class SparseHead(_LinearHead):
    """Lexical weight per token: ReLU(Linear(H, 1))."""

    file_name = SPARSE_HEAD_FILE

    def __init__(self, hidden_size: int) -> None:
        super().__init__(hidden_size, 1)

    @classmethod
    def _from_shape(cls, hidden_size: int, out_features: int, path: Path) -> SparseHead:
        if out_features != 1:
            raise CheckpointError(f"{path}: a sparse head has 1 output, this one has {out_features}")
        return cls(hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """`hidden [..., H]` → token weights `[...]` (≥ 0)."""
        return torch.relu(self.linear(hidden)).squeeze(-1)


class ColbertHead(_LinearHead):
    """Multi-vector projection per token; `dim` may be smaller than the hidden size."""

    file_name = COLBERT_HEAD_FILE

    def __init__(self, hidden_size: int, dim: int | None = None) -> None:
        super().__init__(hidden_size, dim or hidden_size)

    @classmethod
    def _from_shape(cls, hidden_size: int, out_features: int, path: Path) -> ColbertHead:
        return cls(hidden_size, out_features)

    def forward(self, hidden: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """`hidden [..., H]` → vectors `[..., D]`, L2-normalised per row when `normalize`."""
        vectors = self.linear(hidden)
        return F.normalize(vectors, dim=-1) if normalize else vectors
