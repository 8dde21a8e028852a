"""Fusion weights of the three M3 outputs: the default, and the one check every caller uses.

A model may carry its own weights (`"fusion_weights"` in `trivec_config.json`, chosen on a validation set by
its recipe); hybrid scores, searches, evaluations and the server use them when a call gives none, else M3's
0.4 / 0.2 / 0.4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

MODES = ("dense", "sparse", "colbert")
DEFAULT_WEIGHTS: dict[str, float] = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}


def normalize_weights(
    weights: Mapping[str, float] | Sequence[float] | None, default: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Weights as `{mode: w}`; a sequence is read as (dense, sparse, colbert); None gives `default` (else M3's).
    Unknown modes and negative, infinite or NaN weights are refused (`ValueError`)."""
    if weights is None:
        return dict(default if default is not None else DEFAULT_WEIGHTS)
    if isinstance(weights, Mapping):
        unknown = set(weights) - set(MODES)
        if unknown:
            raise ValueError(f"unknown score mode(s) {sorted(unknown)}; expected {', '.join(MODES)}")
        result = {mode: float(weights.get(mode, 0.0)) for mode in MODES}
    else:
        values = list(weights)
        if len(values) != 3:
            raise ValueError(f"weights need 3 numbers (dense, sparse, colbert), got {len(values)}")
        result = dict(zip(MODES, map(float, values), strict=True))
    if any(w < 0 or not math.isfinite(w) for w in result.values()):
        raise ValueError(f"weights must be finite and ≥ 0, got {result}")
    return result
