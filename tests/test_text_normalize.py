"""hegui.text.normalize: each disguise, the offset map, and equivalence with a plain per-character
reference implementation."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hegui.text import NormalizedText, NormalizeOptions, normalize, normalize_many
from hegui.text.tables import CJK, SEP, WORD, classify, fold_string, t2s_table


def norm(s: str, **kw: bool) -> str:
    return normalize(s, NormalizeOptions(**kw) if kw else None).text


@pytest.mark.parametrize(
    "disguised",
    [
        "赌 博",
        "赌*博",
        "赌.博",
        "赌\u200b博",
        "赌_博",
        "赌-博",
        "赌|博",
        "赌 * 博",
        "赌\u200b \u200c*\u200d博",
        "赌/博",
        "赌·博",
        "赌~博",
        "赌\t博",
        "赌\u3000博",  # ideographic space
        "赌＊博",  # full-width asterisk
        "赌🎲博",  # emoji filler
        "赌\u2764\ufe0f博",  # emoji + variation selector
        "赌\u0336博",  # combining long stroke overlay
        "赌\u00ad博",  # soft hyphen
        "赌\ufeff博",  # BOM / zero-width no-break space
        "赌\u2060博",  # word joiner
        "赌\u200e博",  # left-to-right mark
        "赌\u3164博",  # Hangul filler, renders blank
        "賭博",  # traditional
        "賭 . 博",
    ],
)
def test_disguises_fold_to_the_plain_word(disguised: str) -> None:
    assert norm(disguised) == "赌博"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＡＢＣ１２３", "abc123"),  # full-width → half-width, case folded
        ("ＶＸ", "vx"),
        ("раураl", "paypal"),  # Cyrillic look-alikes
        ("ΑΒΕ", "abe"),  # Greek capitals
        ("①②③", "123"),
        ("❶➋⓷", "123"),  # dingbat digits NFKC leaves alone
        ("〇", "0"),
        ("ⓐⓑ", "ab"),  # circled letters
        ("🅰🅱", "ab"),  # negative squared letters
        ("⒜", "(a)"),  # parenthesised letter expands
        ("⻢上", "马上"),  # CJK radical form
        ("⼈民", "人民"),  # Kangxi radical (NFKC)
        ("樂", "乐"),  # CJK compatibility ideograph U+F914 → 樂 → 乐
        ("dǔbó", "dubo"),  # Latin accents
        ("ǅ", "dž".replace("ž", "z")),
        ("ﬁ", "fi"),
        ("㈱", "(株)"),
        ("HELLO", "hello"),
    ],
)
def test_folding(text: str, expected: str) -> None:
    assert norm(text) == expected


def test_sentence_punctuation_is_not_a_separator() -> None:
    # Removing ，would join clauses: 打赌，博士 must not become 打赌博士.
    assert norm("打赌，博士") == "打赌,博士"
    assert norm("打赌。博士") == "打赌。博士"
    assert "赌博" not in norm("我打赌……博士说")


def test_separators_only_between_word_characters_with_a_cjk_side() -> None:
    assert norm("hello world") == "hello world"
    assert norm("1 + 1") == "1 + 1"
    assert norm("v 信") == "v信"
    assert norm("微 x") == "微x"
    assert norm(" 赌博 ") == " 赌博 "  # edges keep their separators
    assert norm("赌 ( 博") == "赌 ( 博"  # brackets are not separators, so neither neighbour is a word


def test_zero_width_is_removed_everywhere() -> None:
    assert norm("s\u200be\u200cx") == "sex"
    assert norm("\u200b") == ""


def test_options_switch_steps_off() -> None:
    assert norm("賭博", traditional_to_simplified=False) == "賭博"
    assert norm("赌 博", remove_separators=False) == "赌 博"
    assert norm("ABC", casefold=False) == "ABC"
    assert norm("раураl", fold_homoglyphs=False) == "раураl"
    assert norm("赌\u200b博", remove_separators=False) == "赌博"  # invisible chars always go


def test_empty_text() -> None:
    n = normalize("")
    assert n.text == "" and len(n.starts) == 0
    assert n.to_original(0, 0) == (0, 0)


def test_offsets_map_back_through_deletion_and_expansion() -> None:
    original = "x㈱赌 \u200b博y"
    n = normalize(original)
    assert n.text == "x(株)赌博y"
    i = n.text.index("赌博")
    assert n.to_original(i, i + 2) == (original.index("赌"), original.index("博") + 1)
    j = n.text.index("株")
    assert n.to_original(j, j + 1) == (1, 2)  # every char of an expansion maps to its source char
    assert n.to_original(0, len(n.text)) == (0, len(original))


def test_to_original_empty_span() -> None:
    n = normalize("赌 博x")
    assert n.to_original(1, 1) == (2, 2)
    assert n.to_original(len(n.text), len(n.text)) == (len("赌 博x"), len("赌 博x"))


def test_maps_are_python_ints() -> None:
    n = normalize("赌 博")
    assert type(n.starts[1]) is int and type(n.ends[1]) is int


def test_normalize_many_matches_normalize() -> None:
    words = ["赌 博", " 赌博 ", "ＡＢ", "㈱", "a b", "", "賭\u200b博", "-赌博-", "x"]
    assert normalize_many(words) == [normalize(w).text for w in words]
    assert normalize_many([]) == []
    assert normalize_many(["\U0010fffd赌 博"]) == [normalize("\U0010fffd赌 博").text]


def test_t2s_table_comes_from_opencc_and_is_idempotent() -> None:
    t = t2s_table()
    assert t["賭"] == "赌" and t["臺"] == "台"
    assert all(b not in t for b in t.values())


# --------------------------------------------------------------------------- reference equivalence


def reference(text: str, opts: NormalizeOptions | None = None) -> NormalizedText:
    """Plain per-character implementation of the documented rules, independent of the numpy tables
    and of the fast paths."""
    opts = opts or NormalizeOptions()
    t2s = t2s_table() if opts.traditional_to_simplified else {}
    chars: list[tuple[str, int, int]] = []  # (folded char, class, source index)
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if ch in "\u115f\u1160\u3164\uffa0\u180e\u2800" or cat in ("Cf", "Mn", "Me", "Cs") or (
            cat == "Cc" and not ch.isspace()
        ):
            chars.append(("", 4, i))
            continue
        folded = fold_string(ch, opts, t2s)
        if not folded:
            chars.append(("", 4, i))
        for c in folded:
            chars.append((c, classify(c), i))
    keep = [True] * len(chars)
    for k, (_c, cls, _) in enumerate(chars):
        if cls == 4:
            keep[k] = False
        elif cls == SEP and opts.remove_separators:
            left = next((chars[j][1] for j in range(k - 1, -1, -1) if chars[j][1] not in (SEP, 4)), None)
            right = next((chars[j][1] for j in range(k + 1, len(chars)) if chars[j][1] not in (SEP, 4)), None)
            if (
                left in (WORD, CJK)
                and right in (WORD, CJK)
                and CJK in (left, right)
            ):
                keep[k] = False
    kept = [x for x, k in zip(chars, keep, strict=True) if k]
    return NormalizedText(text, "".join(c for c, _, _ in kept), [i for _, _, i in kept], [i + 1 for _, _, i in kept])


MIXED = st.sampled_from(
    list("赌博网站賭網冰毒法轮功的了我你是在。，、！？；：“”（）…")
    + list("abcXYZ019 ＡＢ１＊．_-|/\\*.~#@%+=·•・")
    + ["\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\u2060", "\u0301", "\u0336", "\ufe0f", "\u3164"]
    + ["🎲", "❤", "🅰", "①", "⑩", "〇", "㈱", "ﬁ", "ß", "İ", "а", "ο", "⻢", "樂", "\u3000", "\t", "\n"]
)
TEXT = st.lists(st.one_of(MIXED, st.characters()), max_size=80).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_normalize_equals_reference(text: str) -> None:
    got, want = normalize(text), reference(text)
    assert got.text == want.text
    assert list(got.starts) == list(want.starts)
    assert list(got.ends) == list(want.ends)


@settings(max_examples=100, deadline=None)
@given(st.lists(MIXED, min_size=50, max_size=200).map("".join))
def test_many_separators_take_the_vectorised_path_and_agree(text: str) -> None:
    # Long runs of specials exceed the small-count loop and exercise the numpy run logic.
    padded = " ".join(text)
    got, want = normalize(padded), reference(padded)
    assert (got.text, list(got.starts), list(got.ends)) == (want.text, list(want.starts), list(want.ends))


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_normalisation_is_idempotent_on_text(text: str) -> None:
    once = normalize(text).text
    assert normalize(once).text == once


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_offset_map_is_monotonic_and_in_bounds(text: str) -> None:
    n = normalize(text)
    assert len(n.starts) == len(n.ends) == len(n.text)
    prev = 0
    for s, e in zip(n.starts, n.ends, strict=True):
        assert 0 <= s < e <= len(text)
        assert s >= prev
        prev = s
