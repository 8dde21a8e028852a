"""BM25 tokenisation per language: English as published, every other language normalised and script-aware."""

from __future__ import annotations

import unicodedata

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from trivec.errors import InputError
from trivec.evaluation.bm25 import Bm25Index, describe_tokenizer, tokenize, tokenizer_for

LANGUAGES = ["zh", "ja", "ko", "th", "ar", "fa", "tr", "id", "fr", "de", "ru", "el", "hi", "vi", "he"]


def test_english_is_the_published_pipeline() -> None:
    text = "The quick brown foxes were jumping over 2 lazy dogs, e-mail: a_b@c.org!"
    assert tokenizer_for("en")(text) == [
        "quick", "brown", "fox", "were", "jump", "over", "lazi", "dog", "mail", "a_b", "org",
    ]  # fmt: skip
    assert describe_tokenizer("en") == (
        "english: lower-case words, bm25s English stop words, Snowball English stemmer"
    )


def test_chinese_and_japanese_are_character_unigrams_and_bigrams() -> None:
    assert tokenize("北京大学。", "zh") == ["北", "京", "大", "学", "北京", "京大", "大学"]
    # one run across kanji and kana (ー is a kana letter); Latin and digits are words; NFKC folds full width
    assert tokenize("東京に住む、トーキョーＡｂｃ１２", "ja") == [
        "東", "京", "に", "住", "む", "東京", "京に", "に住", "住む",
        "ト", "ー", "キ", "ョ", "ー", "トー", "ーキ", "キョ", "ョー", "abc12",
    ]  # fmt: skip
    assert tokenize("2020年", "zh") == ["年", "2020"]  # digits never join an n-gram
    assert "character unigrams+bigrams" in describe_tokenizer("ja")


def test_thai_is_grapheme_cluster_ngrams() -> None:
    tokens = tokenize("สวัสดีครับ", "th")
    # ส|วั|ส|ดี|ค|รั|บ: a vowel or tone mark never stands alone or starts a token
    assert tokens[:7] == ["ส", "วั", "ส", "ดี", "ค", "รั", "บ"]
    assert {"สวั", "วัส", "สวัส", "ครับ"} <= set(tokens)
    assert not [t for t in tokens if unicodedata.category(t[0]).startswith("M")]
    assert tokenize("พ.ศ. ๒๕๕๕", "th")[-1] == "2555"  # Thai digits → ASCII
    assert "grapheme-cluster unigrams+bigrams+trigrams" in describe_tokenizer("th")


def test_arabic_words_are_normalised_and_stemmed() -> None:
    assert tokenize("خَيْرُ", "ar") == tokenize("خير", "ar") == tokenize("خـــير", "ar")  # diacritics, tatweel
    assert tokenize("«المكتبة»، ١٩٠٨م!", "ar") == ["مكتب", "1908م"]
    assert "Snowball arabic stemmer" in describe_tokenizer("ar")


def test_persian_words_are_normalised_not_stemmed() -> None:
    assert tokenize("ويتامين", "fa") == tokenize("ویتامین", "fa") == ["ویتامین"]  # Arabic yeh → Persian
    assert tokenize("می\u200cشود", "fa") == tokenize("می شود", "fa") == ["می", "شود"]  # ZWNJ splits
    assert tokenize("کتاب‌ها", "fa") == ["کتاب", "ها"]
    assert tokenize("۱۴۰۰", "fa") == ["1400"]
    description = describe_tokenizer("fa")
    assert "no stemmer" in description and "ZWNJ" in description


def test_turkish_indonesian_french_get_their_snowball_stemmer() -> None:
    assert (
        tokenize("İSTANBUL'da IŞIK", "tr") == tokenize("istanbul'da ışık", "tr") == ["istanbul", "da", "ışık"]
    )
    assert tokenize("bermain pembelajaran", "id") == ["main", "ajar"]
    assert tokenize("Les chevaux", "fr") == ["le", "cheval"]
    for code, algorithm in (("tr", "turkish"), ("id", "indonesian"), ("fr", "french")):
        assert f"Snowball {algorithm} stemmer" in describe_tokenizer(code)


def test_scripts_and_punctuation_split_words() -> None:
    assert tokenize("ویتامینb1 GPSسیستم Москваmoscow x_y ʃaˈkiɾa (ok)...", "vi") == [
        "ویتامین", "b1", "gps", "سیستم", "москва", "moscow", "x", "y", "ʃaˈkiɾa", "ok",
    ]  # fmt: skip


def test_unknown_language_is_an_error() -> None:
    with pytest.raises(InputError, match="unknown language code 'xx'"):
        tokenizer_for("xx")
    assert tokenizer_for("jpn")("東京") == tokenize("東京", "ja")  # Tatoeba's ISO 639-3 codes map


WORD_CHARS = regex.compile(r"[\p{L}\p{M}\p{N}]+")
MIXED = st.text(
    st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from(list("東京にトーキョーสวัสดีครับ،؟«»خَيْرُ‌‍ـİıIŞ١٢۳ｶﾞＡ①ﬁ_-'.…　\u0301\u0e31")),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(text=MIXED, language=st.sampled_from(LANGUAGES))
def test_tokens_are_never_empty_or_punctuation_deterministic_and_nfkc_invariant(
    text: str, language: str
) -> None:
    tokens = tokenize(text, language)
    for token in tokens:
        assert token, "empty token"
        # only letters, combining marks and digits: no punctuation, symbol, space or control character
        # (by `regex`'s Unicode tables, newer than unicodedata's, which may not know a new ideograph yet: Cn)
        assert WORD_CHARS.fullmatch(token), (token, text)
        assert not [
            c for c in token if unicodedata.category(c)[0] in "PSZ" or unicodedata.category(c) == "Cc"
        ]
        assert not regex.match(r"\p{M}", token), (token, text)
    assert tokenize(text, language) == tokens
    assert tokenize(unicodedata.normalize("NFKC", text), language) == tokens
    assert tokenize(unicodedata.normalize("NFD", text), language) == tokens


@pytest.mark.parametrize(
    ("language", "corpus", "query"),
    [
        ("ja", ["東京は日本の首都です。", "大阪は関西の都市です。"], "日本の首都はどこ?"),
        ("th", ["กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", "เชียงใหม่อยู่ภาคเหนือ"], "เมืองหลวงของไทยคือ"),
        ("fa", ["تهران پایتخت ایران است.", "شیراز شهر شعر است."], "پايتخت ايران كجاست؟"),
    ],
)
def test_bm25_finds_the_document_in_each_language(language: str, corpus: list[str], query: str) -> None:
    ((indices, scores),) = Bm25Index(corpus, language).search([query], 2)
    assert indices[0] == 0 and scores[0] > 0
