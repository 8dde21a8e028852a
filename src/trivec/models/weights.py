"""How the three M3 outputs are fused: weights, fusion methods, and the one check of each.

A model may carry its own settings in `trivec_config.json`, chosen on validation sets by its recipe:
`"fusion_weights"` (else M3's 0.4 / 0.2 / 0.4), `"fusion_weights_by_language"` (weights chosen for one
language's queries, used where a call names that language: an evaluation task's, a search's `language`),
`"fusion"` (the method a search uses when a call names none, else the weighted mean) and `"fusion_spreads"`
(per mode, the range of per-query score spreads its weights were chosen in, which `auto` fusion needs;
`trivec.retrieval.fusion`). Searches, evaluations and the server use them when a call gives none
(`FusionDefaults`). Each method has a `+vote` form: after fusion, a candidate that a strict majority of the
fused modes rank first is ranked first (`first_place_vote`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from trivec.errors import InputError
from trivec.languages import language_code

MODES = ("dense", "sparse", "colbert")
DEFAULT_WEIGHTS: dict[str, float] = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
FusionMethod = Literal[
    "weighted", "rrf", "zscore", "auto", "weighted+vote", "rrf+vote", "zscore+vote", "auto+vote"
]
FUSIONS: tuple[str, ...] = get_args(FusionMethod)
VOTE = "+vote"  # the suffix that adds the first-place vote to a fusion
SpreadRanges = Mapping[str, tuple[float, float]]  # mode → (lowest, highest) per-query score spread
NO_SPREADS = (
    "auto fusion needs the model's calibrated score spreads (`fusion_spreads` in its trivec_config.json) "
    f"and this model has none; another fusion ({', '.join(f for f in FUSIONS if 'auto' not in f)}) needs none"
)


@dataclass(frozen=True)
class FusionDefaults:
    """What a hybrid search or evaluation uses when the call says nothing: the model's weights, method,
    calibrated spreads (`auto` fusion's ranges; None when the model has none) and the weights it has for
    particular languages (`for_language`)."""

    weights: dict[str, float]
    method: str = "weighted"
    spreads: dict[str, tuple[float, float]] | None = None
    by_language: dict[str, dict[str, float]] = field(default_factory=dict)

    def for_language(self, language: str | None) -> FusionDefaults:
        """These defaults for queries in `language` (an ISO 639-1 code; checked): the weights chosen for it
        where the model has some, else the model's. None: no language named, the defaults unchanged."""
        if language is None:
            return self
        code = language_code(language, "language")
        return replace(self, weights=dict(self.by_language.get(code, self.weights)))

    def describe(self) -> dict[str, object]:
        """JSON-ready: `{"method", "weights", "spreads", "weights_by_language"}` (spreads as
        `[lowest, highest]` lists, or None)."""
        spreads = {m: list(r) for m, r in self.spreads.items()} if self.spreads is not None else None
        return {
            "method": self.method,
            "weights": dict(self.weights),
            "spreads": spreads,
            "weights_by_language": {code: dict(w) for code, w in self.by_language.items()},
        }


def check_language_weights(value: object) -> dict[str, dict[str, float]]:
    """Validate `fusion_weights_by_language`: a mapping of ISO 639-1 codes to weights (`{dense, sparse,
    colbert}`); `ValueError` naming the language at fault. Codes are normalised (`ID` → `id`); two spellings
    of one language are refused."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of language codes to weights, got {value!r}")
    out: dict[str, dict[str, float]] = {}
    for language, weights in value.items():
        try:
            code = language_code(language)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        if code in out:
            raise ValueError(f"language {code!r} is given twice ({language!r})")
        if not isinstance(weights, Mapping):
            raise ValueError(f"{language}: expected an object {{dense, sparse, colbert}}, got {weights!r}")
        try:
            out[code] = normalize_weights(weights)
        except ValueError as exc:
            raise ValueError(f"{language}: {exc}") from None
        if not any(out[code].values()):
            raise ValueError(f"{language}: every weight is 0")
    return out


def check_fusion(method: str) -> None:
    """Refuse a fusion method trivec does not have (the one check of the name, wherever it is given)."""
    if method not in FUSIONS:
        raise InputError(f"unknown fusion {method!r}; expected one of {', '.join(FUSIONS)}")


def split_fusion(method: str) -> tuple[str, bool]:
    """A fusion name (checked) as its method and whether the first-place vote follows it:
    `"auto+vote"` → `("auto", True)`."""
    check_fusion(method)
    return method.removesuffix(VOTE), method.endswith(VOTE)


def fusion_to_use(fusion: str | None, default: str, spreads: SpreadRanges | None, fused: bool = True) -> str:
    """The fusion a call uses: `fusion`, else `default` (the model's). An unknown name is refused, and `auto`
    without calibrated `spreads` wherever something is `fused` (fusion applies to hybrids only)."""
    method = fusion if fusion is not None else default
    if split_fusion(method)[0] == "auto" and spreads is None and fused:
        raise InputError(NO_SPREADS)
    return method


def check_model_fusion(
    method: str | None, spreads: object
) -> tuple[str | None, dict[str, tuple[float, float]] | None]:
    """A model's own `fusion` (None: the weighted mean) and `fusion_spreads`, checked together: `InputError`
    naming the key at fault."""
    try:
        checked = check_spread_ranges(spreads) if spreads is not None else None
    except ValueError as exc:
        raise InputError(f"fusion_spreads: {exc}") from None
    if method is not None:
        try:
            fusion_to_use(method, "weighted", checked)
        except InputError as exc:
            raise InputError(f"fusion: {exc}") from None
    return method, checked


def check_spread_ranges(ranges: object) -> dict[str, tuple[float, float]]:
    """Validate `fusion_spreads`: a mapping of known modes to `[lowest, highest]`, 0 ≤ lowest ≤ highest
    (`ValueError` naming the mode at fault)."""
    if not isinstance(ranges, Mapping) or not ranges:
        raise ValueError(f"expected a mapping of modes to [lowest, highest] spreads, got {ranges!r}")
    out: dict[str, tuple[float, float]] = {}
    for mode, pair in ranges.items():
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected some of {', '.join(MODES)}")
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
            or not 0 <= pair[0] <= pair[1] < math.inf
        ):
            raise ValueError(f"{mode}: expected [lowest, highest] with 0 <= lowest <= highest, got {pair!r}")
        out[mode] = (float(pair[0]), float(pair[1]))
    return out


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
