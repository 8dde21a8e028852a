"""Language codes: tasks, BM25 and a model's fusion weights per language carry ISO 639-1 codes; `language_code` checks and normalises what users and data give.

Accepted: an ISO 639-1 code in any case (`ja`, `AR`); a tag with a region or variant after `-` / `_`, reduced to
its language (`zh-CN`, `pt_BR`, `en-ext` → `zh`, `pt`, `en`); an ISO 639-3 code Tatoeba uses (`jpn` → `ja`,
`cmn` / `yue` → `zh`). Anything else is an `InputError` that says what is expected.
"""

from __future__ import annotations

import difflib

from trivec.errors import InputError

# fmt: off
ISO_639_1: frozenset[str] = frozenset(
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz "  # noqa: SIM905
    "ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik "
    "io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml "
    "mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd "
    "se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi "
    "vo wa wo xh yi yo za zh zu".split()
)

# ISO 639-3 (Tatoeba) → ISO 639-1 where one exists; yue (Cantonese) is filed under zh like C-MTEB does.
ISO3_TO_ISO1: dict[str, str] = {
    "ara": "ar", "ben": "bn", "bul": "bg", "ces": "cs", "cmn": "zh", "dan": "da", "deu": "de", "ell": "el",
    "eng": "en", "fin": "fi", "fra": "fr", "heb": "he", "hin": "hi", "hun": "hu", "ind": "id", "ita": "it",
    "jpn": "ja", "kor": "ko", "nld": "nl", "nob": "nb", "pes": "fa", "pol": "pl", "por": "pt", "ron": "ro",
    "rus": "ru", "spa": "es", "swe": "sv", "swh": "sw", "tam": "ta", "tel": "te", "tha": "th", "tur": "tr",
    "ukr": "uk", "urd": "ur", "vie": "vi", "yue": "zh", "zsm": "ms", "fas": "fa", "zho": "zh", "arb": "ar",
}
# Country codes and names often given instead of a language code: only used for the hint of the error.
_MISTAKES: dict[str, str] = {
    "jp": "ja", "cn": "zh", "kr": "ko", "gr": "el", "dk": "da", "cz": "cs", "ua": "uk", "vn": "vi", "il": "he",
    "ir": "fa", "farsi": "fa", "persian": "fa", "english": "en", "chinese": "zh", "mandarin": "zh",
    "japanese": "ja", "korean": "ko", "arabic": "ar", "thai": "th", "turkish": "tr", "indonesian": "id",
    "french": "fr", "german": "de", "spanish": "es", "russian": "ru", "portuguese": "pt", "italian": "it",
}
# fmt: on


def language_code(code: object, where: str = "") -> str:
    """The ISO 639-1 code of `code`, or `InputError` (`where` says whose code it is: an option, a file and line)."""
    text = str(code).strip()
    lowered = text.lower()
    if lowered in ISO_639_1:
        return lowered
    if lowered in ISO3_TO_ISO1:
        return ISO3_TO_ISO1[lowered]
    primary = lowered.replace("_", "-").split("-", 1)[0]
    if primary != lowered and primary in ISO_639_1:
        return primary
    if primary != lowered and primary in ISO3_TO_ISO1:
        return ISO3_TO_ISO1[primary]
    if lowered in _MISTAKES:
        close = [_MISTAKES[lowered]]
    else:
        close = difflib.get_close_matches(lowered, sorted(ISO_639_1), n=3, cutoff=0.5) if lowered else []
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    prefix = f"{where}: " if where else ""
    raise InputError(
        f"{prefix}unknown language code {text!r}: expected an ISO 639-1 code such as en, zh, ja, ar, fa, th{hint}"
    )
