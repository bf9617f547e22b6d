"""Identifiers that follow one another with one separator between them (``电话 13800138000
13900139000``, ``卡号 6222 0212 3456 7890 123 6217 …``): a run of numbers split at its separators
into identifiers (``hegui/detectors/pii/split.py``). Every one of them is found and masked, in whole
texts and in streams cut anywhere; ordinary runs of numbers stay unreported; a part's decision needs
no more text than the detector's hold-back after it and look-behind before it.

Valid identifiers are computed with python-stdnum and checked with phonenumbers, not copied in as
magic strings.
"""

from __future__ import annotations

import random
import re
import time

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn

from hegui.config import load_config
from hegui.detectors.pii import PIIConfig, PIIDetector
from hegui.detectors.pii.recognizers import BUILTIN_RECOGNIZERS, Recognizer, RecognizerResult
from hegui.detectors.pii.split import SPLIT_POINT
from hegui.moderation import Moderator
from hegui.text import normalize
from test_pii_grouped import (
    CARD16,
    CARD19,
    RID,
    RID_X,
    _validates,
    found,
    group,
    make_card,
    make_id,
    make_uscc,
    run_stream,
)

SALT = b"test-salt"
DETECTOR = PIIDetector(salt=SALT)

MOBILES = ["13800138000", "13900139000", "18612345678"]
LANDLINES = ["010-62345678", "021-62345678", "0755-88886666"]
RIDS = [RID, RID_X, make_id("31010419751010007")]
CARDS = [CARD19, CARD16, make_card("621700", 19)]


def fours(number: str, sep: str = " ") -> str:
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def test_the_values_are_valid() -> None:
    for number in MOBILES:
        assert (
            phonenumbers.number_type(phonenumbers.parse(number, "CN")) == phonenumbers.PhoneNumberType.MOBILE
        )
    for number in LANDLINES:
        parsed = phonenumbers.parse(number, "CN")
        assert phonenumbers.is_valid_number(parsed)
        assert phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.FIXED_LINE
    assert all(luhn.is_valid(c) for c in CARDS) and len(set(RIDS)) == 3


# (kind, values as people write them); each list is joined by one separator below
FORMS: dict[str, list[tuple[str, str]]] = {
    "mobile": [("CN_MOBILE", m) for m in MOBILES],
    "mobile-grouped": [("CN_MOBILE", group(m, (3, 4, 4))) for m in MOBILES],
    "mobile-cc": [("CN_MOBILE", "+86 " + MOBILES[0]), ("CN_MOBILE", "+86 " + MOBILES[1]), ("CN_MOBILE", MOBILES[2])],
    "landline": [("CN_LANDLINE", n) for n in LANDLINES],
    "landline-grouped": [("CN_LANDLINE", "010 6234 5678"), ("CN_LANDLINE", "(021) 6234 5678"),
                         ("CN_LANDLINE", "0755 8888 6666")],
    "card": [("BANK_CARD", c) for c in CARDS],
    "card-grouped": [("BANK_CARD", fours(c)) for c in CARDS],
    "id": [("CN_RESIDENT_ID", r) for r in RIDS],
    "id-grouped": [("CN_RESIDENT_ID", group(r, (6, 8, 4))) for r in RIDS],
    "mixed": [("CN_MOBILE", MOBILES[0]), ("CN_RESIDENT_ID", RIDS[0]), ("BANK_CARD", fours(CARDS[0]))],
    "mixed-2": [("BANK_CARD", fours(CARDS[1])), ("CN_LANDLINE", LANDLINES[0]), ("CN_MOBILE", group(MOBILES[1], (3, 4, 4)))],
    "mixed-3": [("CN_RESIDENT_ID", group(RIDS[1], (6, 8, 4))), ("CN_MOBILE", MOBILES[2]), ("CN_LANDLINE", LANDLINES[2])],
}  # fmt: skip
BETWEEN = {"space": " ", "comma": ",", "fullwidth-comma": "，", "or": "或", "newline": "\n"}


@pytest.fixture(scope="module")
def moderator() -> Moderator:
    return Moderator.from_config(load_config(None, environ={}))


def _has_digit(text: str) -> bool:
    return any(c.isdigit() for c in normalize(text).text)


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("between", list(BETWEEN.values()), ids=list(BETWEEN))
@pytest.mark.parametrize("form", list(FORMS))
def test_identifiers_next_to_each_other_are_all_found_and_masked(
    moderator: Moderator, form: str, between: str, count: int
) -> None:
    values = FORMS[form][:count]
    text = "联系方式：" + between.join(v for _, v in values) + "。"
    assert [(k, v) for k, v, _ in found(text)] == values, text
    masked = moderator.check(text, direction="output")
    assert masked.action.value == "mask" and not _has_digit(masked.text), masked.text


@pytest.mark.parametrize("sep", ["-", ".", "\u2014"], ids=["hyphen", "dot", "em-dash"])
def test_other_separators_between_numbers(sep: str) -> None:
    """The detector reads a hyphen, a dot or a dash between two numbers as it reads one inside."""
    text = f"电话 {MOBILES[0]}{sep}{MOBILES[1]}{sep}{MOBILES[2]}"
    assert [v for _, v, _ in found(text)] == MOBILES
    grouped = sep.join(fours(c, sep) for c in CARDS[:2])
    assert [v for _, v, _ in found(f"卡号 {grouped}")] == [fours(c, sep) for c in CARDS[:2]]


def test_the_reported_case() -> None:
    assert found("电话 13800138000 13900139000") == [
        ("CN_MOBILE", "13800138000", 1.0),
        ("CN_MOBILE", "13900139000", 1.0),
    ]
    card = make_card("621700", 19)
    text = f"卡号 {fours(CARD19)} 或 {fours(card)} 或 {fours(CARD16)} {fours(card)}"
    assert [v for _, v, _ in found(text)] == [fours(CARD19), fours(card), fours(CARD16), fours(card)]


def test_a_grouped_card_followed_by_a_grouped_mobile() -> None:
    """The card has 16 digits and the mobile starts with a group of three: the 19-digit reading
    ``6228 4833 3333 3335 138`` is one of the ways to split the run, and not the right one."""
    text = f"卡号 {fours(CARD16)} 138 0013 8000"
    assert [(k, v) for k, v, _ in found(text)] == [
        ("BANK_CARD", fours(CARD16)),
        ("CN_MOBILE", "138 0013 8000"),
    ]


def test_an_identifier_after_a_number_that_is_not_one_is_still_not_reported() -> None:
    """A split needs an identifier on both sides: ``2 13800138000`` may be a longer number, as
    before, and a card followed by one more number is no card."""
    assert found("编号 2 13800138000") == []
    assert found(f"卡号 {fours(CARD19)} 9") == []
    # but the next identifier is found when its own neighbour is one
    assert [v for _, v, _ in found(f"编号 2 {MOBILES[0]} {MOBILES[1]}")] == [MOBILES[1]]


def test_identifiers_after_permits_plates_and_ids_with_x() -> None:
    assert [k for k, _, _ in found(f"护照 G12345678 {MOBILES[0]}")] == ["PASSPORT", "CN_MOBILE"]
    assert [k for k, _, _ in found(f"车牌京A12345 {MOBILES[0]}")] == ["CN_PLATE", "CN_MOBILE"]
    assert [v for _, v, _ in found(f"证件 {RID_X} {fours(CARD19)}")] == [RID_X, fours(CARD19)]
    code = make_uscc("91110000600037341")
    assert [k for k, _, _ in found(f"信用代码 {group(code, (4, 4, 4, 4, 2))} {MOBILES[0]}")] == [
        "CN_USCC",
        "CN_MOBILE",
    ]


def test_legacy_ids_next_to_each_other_need_their_context_word() -> None:
    rid15 = "110105780928946"
    assert [v for _, v, _ in found(f"旧身份证号 {group(rid15, (6, 6, 3))} {group(rid15, (6, 6, 3))}")] == [
        group(rid15, (6, 6, 3))
    ] * 2
    assert found(f"编号 {group(rid15, (6, 6, 3))} {group(rid15, (6, 6, 3))}") == []


PROSE = [
    "2019 2020 2021 2022 2023 2024 年的数据见附表",
    "编号 1 3 5 7 9 11 13 15 17 19 21 23 25 27 29",
    "价格 138 100 200 300 400 500 600 700 元",
    "圆周率 3.14159 26535 89793 23846 26433 83279 50288 41971",
    "时间 2023 10 15 12 30 45 2023 10 16 08 00 00",
    "库存 1 000 000 2 000 000 3 000 000 件",
    "第 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 名",
    "比分 3-1-2-2-1-0-6-3-2-1-1-1",
    "版本 1.2.3.4.5.6.7.8.9.10.11.12",
    "工号 1001 1002 1003 1004 1005 1006 1007 1008",
]


@pytest.mark.parametrize("text", PROSE)
def test_runs_of_ordinary_numbers_stay_unreported(text: str) -> None:
    assert found(text) == []


_NUMBER = st.one_of(
    st.integers(0, 9999).map(str),
    st.integers(0, 99999).map(lambda n: f"{n:05d}"),
    st.sampled_from([*MOBILES, *LANDLINES, *RIDS, fours(CARD19), fours(CARD16), "138 0013 8000", "2023"]),
)


@settings(max_examples=800, deadline=None)
@given(
    st.lists(_NUMBER, min_size=2, max_size=8),
    st.lists(st.sampled_from([" ", " ", "-", ".", "\u3000"]), min_size=7, max_size=7),
)
def test_anything_found_in_a_run_with_identifiers_validates(numbers: list[str], seps: list[str]) -> None:
    """Identifiers mixed with ordinary numbers in one run: whatever is reported validates, and the
    run of ``numbers[0] numbers[1] …`` keeps every finding inside it."""
    run = numbers[0] + "".join(s + n for s, n in zip(seps, numbers[1:], strict=False))
    text = f"数据：{run}。"
    for kind, value, _ in found(text):
        assert _validates(kind, value), (kind, value, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(range(len(MOBILES) + len(RIDS) + len(CARDS))), min_size=2, max_size=6))
def test_every_identifier_of_a_run_of_identifiers_is_found(picks: list[int]) -> None:
    values = [*MOBILES, *RIDS, *(fours(c) for c in CARDS)]
    chosen = [values[i] for i in picks]
    text = "号码 " + " ".join(chosen) + " 完"
    assert [v for _, v, _ in found(text)] == chosen, text


# -- streams -------------------------------------------------------------------------------------

STREAMED = [
    f"电话{MOBILES[0]} {MOBILES[1]}，谢谢。",
    f"电话{MOBILES[0]} {MOBILES[1]} {MOBILES[2]}，谢谢。",
    f"手机{group(MOBILES[0], (3, 4, 4))} {group(MOBILES[1], (3, 4, 4))}找我。",
    f"电话{LANDLINES[0]} {LANDLINES[1]}转人工。",
    f"卡号{fours(CARDS[0])} {fours(CARDS[2])}收款。",
    f"卡号{CARDS[0]} {CARDS[1]}收款。",
    f"身份证{RIDS[0]} {RIDS[1]}已登记。",
    f"身份证{RIDS[0]} {MOBILES[0]}，请核对。",
    f"卡号{fours(CARD16)} 138 0013 8000，请核对。",
    f"联系{MOBILES[0]}-{MOBILES[1]}。",
]


def _cuts(text: str) -> list[list[str]]:
    return [[text], list(text), *([text[:i], text[i:]] for i in range(1, len(text)))]


@pytest.mark.parametrize("text", STREAMED)
def test_stream_never_sends_adjacent_identifiers_however_it_is_split(moderator: Moderator, text: str) -> None:
    """Cut at every position: the client gets exactly what the whole-text check gives, without a
    digit of any identifier, and the record of what was sent is masked too."""
    whole = moderator.check(text, direction="output")
    assert whole.action.value == "mask" and not _has_digit(whole.text), whole.text
    for chunks in _cuts(text):
        sent, record = run_stream(moderator, chunks)
        assert sent == whole.text, chunks
        assert not _has_digit(record), (chunks, record)


@pytest.mark.parametrize("text", [STREAMED[0], STREAMED[4], STREAMED[8]])
def test_stream_with_two_cuts_inside_the_run(moderator: Moderator, text: str) -> None:
    whole = moderator.check(text, direction="output").text
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    a, b = digits[0], digits[-1] + 1
    for i in range(a + 1, b, 2):
        for j in range(i + 1, b, 3):
            sent, record = run_stream(moderator, [text[:i], text[i:j], text[j:]])
            assert sent == whole and not _has_digit(record), (i, j)


# -- what a stream relies on ------------------------------------------------------------------------

CODE = next(c for c in (make_uscc(f"9111000060003734{i}") for i in range(10)) if c[-1].isdigit())
"""A 统一社会信用代码 that ends in a digit, so that a number after it is a split point."""
DEPENDENT = {
    # a USCC spaced out to its 35 characters, waiting for the 35-character ID after it
    "uscc-then-id": "统一社会信用代码 "
    + " ".join(make_uscc("91110000600037342"))
    + " "
    + " ".join(RID)
    + " 完",
    # a mobile number that is one only because the legacy ID before it has its context word
    "id15-then-mobile": "旧身份证号 " + " ".join("110105780928946") + f" {MOBILES[0]} 完",
    # a card that is one only because the USCC before it has its context word, far back
    "uscc-then-card": "统一社会信用代码，如下所示（已核对）：" + " ".join(CODE) + f" {fours(CARD19)} 完",
    "chain": f"电话 {MOBILES[0]} {group(MOBILES[1], (3, 4, 4))} {LANDLINES[0]} {fours(CARD16)} "
    f"{group(RIDS[0], (6, 8, 4))} {fours(CARD19)} {MOBILES[2]}，谢谢",
}


def test_the_dependent_texts_are_found() -> None:
    kinds = {name: [r.kind for r in DETECTOR.analyze(normalize(t).text)] for name, t in DEPENDENT.items()}
    assert kinds == {
        "uscc-then-id": ["CN_USCC", "CN_RESIDENT_ID"],
        "id15-then-mobile": ["CN_RESIDENT_ID", "CN_MOBILE"],
        "uscc-then-card": ["CN_USCC", "BANK_CARD"],
        "chain": [
            "CN_MOBILE",
            "CN_MOBILE",
            "CN_LANDLINE",
            "BANK_CARD",
            "CN_RESIDENT_ID",
            "BANK_CARD",
            "CN_MOBILE",
        ],
    }


def _final_after(text: str, hold: int, edge: str) -> bool:
    """For every prefix, are the results that start (or end) ``hold`` characters before its end
    those of the whole text?"""

    def settled(results: list[RecognizerResult], cut: int) -> set[tuple[str, int, int, float]]:
        return {
            (r.kind, r.start, r.end, r.score)
            for r in results
            if (r.start if edge == "start" else r.end) <= cut - hold
        }

    full = DETECTOR.analyze(text)
    return all(
        settled(DETECTOR.analyze(text[:cut]), cut) == settled(full, cut) for cut in range(len(text) + 1)
    )


@pytest.mark.parametrize("name", list(DEPENDENT))
def test_results_that_start_a_holdback_before_the_end_are_final(name: str) -> None:
    """What a stream relies on: it sends everything up to ``holdback()`` characters before the end,
    so a result that starts there must already be decided (a result ending there, too)."""
    text = normalize(DEPENDENT[name]).text
    assert _final_after(text, DETECTOR.holdback(), "start")
    assert _final_after(text, DETECTOR.holdback(), "end")


def test_the_holdback_is_needed() -> None:
    """A spaced-out USCC is decided only when the spaced-out ID after it is complete: with the
    e-mail hold-back alone (64) a stream would send the USCC's first characters undecided."""
    text = normalize(DEPENDENT["uscc-then-id"]).text
    assert not _final_after(text, 64, "start")


@pytest.mark.parametrize("name", list(DEPENDENT))
def test_results_need_only_lookbehind_characters_of_left_context(name: str) -> None:
    text = normalize(DEPENDENT[name]).text
    lb = DETECTOR.lookbehind()
    for r in DETECTOR.analyze(text):
        for w in range(max(0, r.start - 3 * lb), max(0, r.start - lb) + 1):
            got = {(x.kind, x.start + w, x.end + w, x.score) for x in DETECTOR.analyze(text[w:])}
            assert (r.kind, r.start, r.end, r.score) in got, (r, w)


def test_the_lookbehind_is_needed() -> None:
    """The card after a USCC is one only if the USCC is, and the USCC needs its context word, which
    is further back than the context window and the guards (26) reach from the card."""
    text = normalize(DEPENDENT["uscc-then-card"]).text
    card = next(r for r in DETECTOR.analyze(text) if r.kind == "BANK_CARD")
    w = card.start - (PIIConfig().context_window + 2)
    assert "BANK_CARD" not in {x.kind for x in DETECTOR.analyze(text[w:])}


# -- the recognizers' declarations ----------------------------------------------------------------

SPLITTERS = [r for r in BUILTIN_RECOGNIZERS if r.split_lengths]


def test_the_recognizers_that_split_runs() -> None:
    assert {r.kind for r in SPLITTERS} == {
        "CN_RESIDENT_ID",
        "CN_MOBILE",
        "CN_LANDLINE",
        "BANK_CARD",
        "CN_USCC",
    }


POSITIVE_FORMS = [
    *(v for form in FORMS.values() for _, v in form),
    "(+86) 1 3 8 0 0 1 3 8 0 0 0", "0086-1380-013-8000", "86 138.0013.8000", "(86)13800138000",
    "+86 10 6234 5678", "0086 (755) 8888 6666", "(0755) 8888 6666", "+86.10.6234.5678", "021 - 6234 5678",
    "4111 1111 1111 1111", "5500-0000-0000-0004", "3530 1113 3330 0000", "6011.0000.0000.0004",
    make_card("2221", 16), make_card("95", 19), group(RID, (1,) * 18), group(RID_X, (4, 4, 4, 4, 2)),
    "110105 780928 946", " ".join("110105780928946"), "110105-780928-946", "1101.0578.0928.946",
    group(make_uscc("91110000600037341"), (2, 6, 9, 1)), " ".join(make_uscc("91110000600037342")),
    group(make_uscc("91110000600037341"), (4, 4, 4, 4, 2), "-"), group(CODE, (6, 6, 6), "."),
]  # fmt: skip
CONTEXT = {"CN_USCC": "统一社会信用代码 ", "CN_RESIDENT_ID": "身份证 "}


@pytest.mark.parametrize("rec", SPLITTERS, ids=lambda r: r.__name__)
def test_split_lengths_and_prefix_cover_every_result(rec: type[Recognizer]) -> None:
    """``split_lengths`` and ``split_prefix`` are quick tests before a recognizer's patterns run on
    a part: every result of the recognizer passes them."""
    instance = rec()
    seen = 0
    for value in POSITIVE_FORMS:
        text = normalize(CONTEXT.get(rec.kind, "号码 ") + value + " 完").text
        for r in instance.analyze(text, 24):
            if r.score <= 0 or (rec.split_patterns and r.pattern not in rec.split_patterns):
                continue
            span = text[r.start : r.end]
            compact = re.sub(r"[ .\-+()]", "", span)
            assert len(compact) in rec.split_lengths, (rec.__name__, span)
            assert instance.may_start_part(compact), (rec.__name__, span)
            seen += 1
    assert seen >= 3


def test_a_split_point_is_a_separator_between_a_value_and_a_number() -> None:
    text = "1 2 a 3 x+4 5-(6 7.8 9  1 2,3"
    points = [text[m.start() - 1 : m.end() + 1] for m in SPLIT_POINT.finditer(text)]
    assert points == ["1 2", "a 3", "4 5", "5-(", "6 7", "7.8", "8 9", "1 2"]


# -- time ----------------------------------------------------------------------------------------

LONG = {
    "spaced digits": "1 " * 10_000,
    "spaced pairs": "13 " * 7_000,
    "country codes": "86 1" * 5_000,
    "brackets": "(+86 " * 4_000,
    "card prefixes": "62 " * 7_000,
    "phones": f"{MOBILES[0]} " * 800,
    "spaced phones": (" ".join(MOBILES[0]) + " ") * 450,
    "grouped cards": (fours(CARD19) + " ") * 400,
    "everything": f"{MOBILES[0]} {fours(CARD19)} {LANDLINES[0]} {RIDS[0]} " * 150,
}


@pytest.mark.parametrize("name", list(LONG))
def test_splitting_long_runs_stays_linear(name: str) -> None:
    """Runs of 10,000 and more characters, with and without identifiers: each split point has a
    bounded number of candidates, so the run costs time linear in its length."""
    text = normalize(LONG[name]).text
    assert DETECTOR.analyze(text) == DETECTOR.analyze_reference(text)
    elapsed = _seconds(text)
    assert elapsed < 0.5, f"{name}: {elapsed:.2f} s for {len(text)} characters"
    quarter = _seconds(text[: len(text) // 4])
    assert elapsed < 8 * quarter + 0.05, (name, elapsed, quarter)  # four times the text, not sixteen


def _seconds(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        DETECTOR.analyze(text)
        best = min(best, time.perf_counter() - t0)
    return best


def test_a_long_run_of_identifiers_finds_them_all() -> None:
    rng = random.Random(4)
    values = [rng.choice([*MOBILES, *RIDS, *(fours(c) for c in CARDS), *LANDLINES]) for _ in range(400)]
    text = "号码 " + " ".join(values) + " 完"
    assert [v for _, v, _ in found(text)] == values


PIECES = [
    *MOBILES, *LANDLINES, *RIDS, fours(CARD19), fours(CARD16), group(MOBILES[0], (3, 4, 4)),
    " ".join(make_uscc("91110000600037342")), " ".join(CODE), " ".join("110105780928946"),
    "G12345678", "京A12345", "123456@example.com", "2001:db8::1", "192.168.1.10", "2", "9 9", "2023",
    "身份证", "旧身份证", "信用代码", "手机", "卡号", "护照", "的", "，",
]  # fmt: skip


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), min_size=2, max_size=7),
    st.lists(st.sampled_from([" ", " ", "", "-", "."]), min_size=6, max_size=6),
)
def test_a_stream_needs_only_the_holdback_and_the_lookbehind(pieces: list[str], seps: list[str]) -> None:
    """On random runs of identifiers, numbers and words: a result that starts ``holdback()``
    characters before the end of a prefix is final, and a window that starts ``lookbehind()``
    characters before a result finds it."""
    text = normalize(pieces[0] + "".join(s + p for s, p in zip(seps, pieces[1:], strict=False)) + "。").text
    assert _final_after(text, DETECTOR.holdback(), "start")
    lb = DETECTOR.lookbehind()
    for r in DETECTOR.analyze(text):
        w = max(0, r.start - lb)
        got = {(x.kind, x.start + w, x.end + w, x.score) for x in DETECTOR.analyze(text[w:])}
        assert (r.kind, r.start, r.end, r.score) in got, (r, text)


def test_an_allowed_number_still_splits_its_run() -> None:
    """``pii.allow_list`` drops the provider's own number, not its neighbour in the run."""
    det = PIIDetector(salt=SALT, config=PIIConfig(allow_list=[MOBILES[0]]))
    text = f"电话 {MOBILES[0]} {MOBILES[1]}"
    assert [text[f.start : f.end] for f in det.detect(normalize(text))] == [MOBILES[1]]
