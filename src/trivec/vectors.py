"""Row-wise vector helpers shared by inference, retrieval, evaluation and serving (a leaf: imports no trivec
package), so that "unit length" means one thing everywhere."""

from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """`vectors` `[N, D]` as float32 rows of length 1 (an all-zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def cosine_ready(vectors: np.ndarray, already_unit: bool) -> np.ndarray:
    """Dense vectors for cosine scoring: a model's own vectors when it normalises them (`already_unit`, used
    as they are, as evaluation uses them), unit rows otherwise."""
    return vectors if already_unit else unit_rows(vectors)
