"""Identifiers written the way forms print them: in groups, with spaces, hyphens, dots, full-width
spaces and other dashes (issue 16). Every kind is found in the groupings people use, checksums are
checked on the value with the separators removed, runs of ordinary numbers stay unreported, and a
stream never lets the digits of a grouped identifier through, wherever the chunks are cut.

Valid identifiers are computed with python-stdnum, not copied in as magic strings.
"""

from __future__ import annotations

import ipaddress
import re
from re import _parser as sre_parse

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric, uscc

from hegui.config import load_config
from hegui.detectors.pii import PIIConfig, PIIDetector
from hegui.detectors.pii.recognizers import (
    BUILTIN_RECOGNIZERS,
    is_valid_resident_id,
    plausible_card_prefix,
)
from hegui.moderation import Moderator
from hegui.text import normalize

SALT = b"test-salt"
DETECTOR = PIIDetector(salt=SALT)


def make_id(first17: str) -> str:
    return first17 + ric.calc_check_digit(first17 + "0")


def make_card(prefix: str, length: int) -> str:
    body = prefix + "3" * (length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def make_uscc(first17: str) -> str:
    return first17 + uscc.calc_check_digit(first17 + "0")


def group(value: str, sizes: tuple[int, ...], sep: str = " ") -> str:
    assert sum(sizes) == len(value), (value, sizes)
    out, i = [], 0
    for n in sizes:
        out.append(value[i : i + n])
        i += n
    return sep.join(out)


def wrong_last(value: str) -> str:
    return value[:-1] + next(c for c in "0123456789" if c != value[-1].upper())


def found(text: str, det: PIIDetector = DETECTOR) -> list[tuple[str, str, float]]:
    return [(f.kind, text[f.start : f.end], f.score) for f in det.detect(normalize(text))]


def kinds(text: str) -> list[str]:
    return [k for k, _, _ in found(text)]


RID = make_id("11010519780928946")
RID_X = next(r for r in (make_id(f"44030419900307{i:03d}") for i in range(1000)) if r.endswith("X"))
RID15 = "110105780928946"
MOBILE = "13800138000"
CARD19 = make_card("622202", 19)
CARD16 = make_card("622848", 16)
USCC = make_uscc("91110000600037341")

SEPARATORS = [" ", "-", ".", "\u3000", "\u00a0", "－", "\u2010", "\u2013", "\u2014", "\u2212"]
"""Space, hyphen, dot, full-width and no-break space, full-width hyphen, hyphen, en and em dash, minus."""
SEP_IDS = ["space", "hyphen", "dot", "ideographic-space", "nbsp", "fullwidth-hyphen", "u2010", "en-dash",
           "em-dash", "minus"]  # fmt: skip

# -- 居民身份证 ----------------------------------------------------------------------------------

ID_GROUPINGS = [
    (6, 8, 4),  # address code, birth date, sequence and check
    (4, 4, 4, 4, 2),  # like a bank card
    (6, 6, 6),
    (6, 4, 4, 4),
    (3, 3, 4, 4, 4),
    (6, 4, 2, 2, 4),
    (6, 8, 3, 1),
    (1,) * 18,  # one digit at a time
]


@pytest.mark.parametrize("sizes", ID_GROUPINGS, ids=lambda s: "-".join(map(str, s)) if len(s) < 9 else "1x18")
@pytest.mark.parametrize("sep", SEPARATORS, ids=SEP_IDS)
def test_resident_id_in_every_grouping_and_separator(sizes: tuple[int, ...], sep: str) -> None:
    grouped = group(RID, sizes, sep)
    assert found(f"身份证号：{grouped}，请核对") == [("CN_RESIDENT_ID", grouped, 1.0)]
    # the check digit is enough: no context word needed
    assert found(f"他报的是{grouped}。") == [("CN_RESIDENT_ID", grouped, 1.0)]


@pytest.mark.parametrize("sizes", ID_GROUPINGS, ids=lambda s: "-".join(map(str, s)) if len(s) < 9 else "1x18")
def test_resident_id_grouped_with_a_wrong_check_digit_is_not_an_id(sizes: tuple[int, ...]) -> None:
    assert "CN_RESIDENT_ID" not in kinds(f"身份证号：{group(wrong_last(RID), sizes)}")


@pytest.mark.parametrize(
    "first17, why",
    [
        ("11010520300101001", "birth date in the future"),
        ("11010519900230001", "30 February"),
        ("99010519900101001", "no such province"),
    ],
)
def test_implausible_grouped_ids_are_rejected(first17: str, why: str) -> None:
    rid = make_id(first17)
    for sizes in ID_GROUPINGS:
        assert "CN_RESIDENT_ID" not in kinds(f"身份证号码 {group(rid, sizes)}"), (why, sizes)


def test_resident_id_mixed_separators_full_width_digits_and_x() -> None:
    mixed = f"{RID[:6]} {RID[6:10]}-{RID[10:14]}.{RID[14:]}"
    assert found(f"身份证：{mixed}") == [("CN_RESIDENT_ID", mixed, 1.0)]
    wide = group(RID_X, (6, 8, 4), "\u3000").translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    assert found(f"身份证：{wide}") == [("CN_RESIDENT_ID", wide, 1.0)]
    lower = group(RID_X.lower(), (4, 4, 4, 4, 2))
    assert found(f"证件 {lower} 已登记") == [("CN_RESIDENT_ID", lower, 1.0)]
    assert is_valid_resident_id(lower) and is_valid_resident_id(group(RID, (6, 6, 6), "."))


def test_grouped_id_next_to_other_numbers() -> None:
    grouped = group(RID, (4, 4, 4, 4, 2))
    # a candidate from "12" fails its check; the one that starts inside it is the ID
    assert found(f"编号 12 {grouped}") == [("CN_RESIDENT_ID", grouped, 1.0)]
    assert found(f"手机 138 0013 8000 {grouped}") == [
        ("CN_MOBILE", "138 0013 8000", 1.0),
        ("CN_RESIDENT_ID", grouped, 1.0),
    ]
    assert found(f"手机 1380 013 8000 {group(RID, (6, 6, 6), '-')}") == [
        ("CN_MOBILE", "1380 013 8000", 1.0),
        ("CN_RESIDENT_ID", group(RID, (6, 6, 6), "-"), 1.0),
    ]
    assert "CN_RESIDENT_ID" not in kinds(f"订单 9{grouped}")  # a digit right before: a longer number


def test_grouped_legacy_15_digit_id_needs_context() -> None:
    for sizes in [(6, 6, 3), (3, 3, 3, 3, 3), (6, 9)]:
        grouped = group(RID15, sizes)
        assert found(f"旧身份证号 {grouped}") == [("CN_RESIDENT_ID", grouped, 0.85)], sizes
        assert kinds(f"编号 {grouped} 已处理") == [], sizes


def test_evidence_id_of_a_grouped_id_is_the_bare_ids() -> None:
    (bare,) = DETECTOR.detect(normalize(f"身份证{RID}"))
    for sizes in ID_GROUPINGS:
        for sep in (" ", "-"):
            (f,) = DETECTOR.detect(normalize(f"身份证{group(RID, sizes, sep)}"))
            assert f.evidence_id == bare.evidence_id, (sizes, sep)


# -- phones ---------------------------------------------------------------------------------------

MOBILE_GROUPINGS = [(3, 4, 4), (4, 3, 4), (4, 4, 3), (3, 3, 5), (3, 8), (7, 4), (5, 6), (1,) * 11]


@pytest.mark.parametrize(
    "sizes", MOBILE_GROUPINGS, ids=lambda s: "-".join(map(str, s)) if len(s) < 9 else "1x11"
)
@pytest.mark.parametrize("sep", SEPARATORS, ids=SEP_IDS)
def test_mobile_in_every_grouping_and_separator(sizes: tuple[int, ...], sep: str) -> None:
    grouped = group(MOBILE, sizes, sep)
    assert found(f"联系我：{grouped}，谢谢") == [("CN_MOBILE", grouped, 1.0)]
    assert found(f"记一下{grouped}好吗") == [("CN_MOBILE", grouped, 0.9)]


@pytest.mark.parametrize(
    "number", ["+86 138.0013.8000", "(+86) 1380 013 8000", "0086-1380-013-8000", "+86 1 3 8 0 0 1 3 8 0 0 0",
               "86 138–0013–8000"],
)  # fmt: skip
def test_mobile_grouped_with_country_code(number: str) -> None:
    assert found(f"手机：{number}") == [("CN_MOBILE", number, 1.0)]


@pytest.mark.parametrize(
    "text",
    ["奇数 1 3 5 7 9 11 13 15", "13 80 01 38 00 0", "138 00 13 80 00", "1 38 0013 8000"],
)
def test_irregular_groupings_are_not_mobile_numbers(text: str) -> None:
    """Groups of three or more, or single digits: counting (1 3 5 7 …) is not a phone number."""
    assert "CN_MOBILE" not in kinds(f"电话 {text}")


@pytest.mark.parametrize(
    "number",
    ["0755.8888.6666", "0755—8888—6666", "0755–88886666", "021 - 6234 5678", "010 – 6234 5678",
     "(010)-6234-5678", "+86.10.6234.5678", "0086-755-8888.6666"],
)  # fmt: skip
def test_landline_separators(number: str) -> None:
    assert found(f"办公电话 {number} 欢迎来电") == [("CN_LANDLINE", number, 1.0)]


# -- bank cards, USCC ---------------------------------------------------------------------------


@pytest.mark.parametrize("card", [CARD19, CARD16])
@pytest.mark.parametrize("sep", SEPARATORS, ids=SEP_IDS)
def test_bank_card_in_groups_of_four_with_any_separator(card: str, sep: str) -> None:
    grouped = sep.join(card[i : i + 4] for i in range(0, len(card), 4))
    assert found(f"卡号：{grouped}") == [("BANK_CARD", grouped, 1.0)]
    assert found(f"打款到{grouped}即可") == [("BANK_CARD", grouped, 0.9)]


def test_grouped_bank_card_is_still_luhn_checked() -> None:
    bad = wrong_last(CARD19)
    for sep in (" ", ".", "\u2014"):
        assert kinds(f"卡号：{sep.join(bad[i : i + 4] for i in range(0, 19, 4))}") == []
    assert kinds("卡号 7333.3333.3333.3333") == []  # Luhn-valid but no issuer uses 7


USCC_GROUPINGS = [(4, 4, 4, 4, 2), (2, 6, 9, 1), (1, 1, 6, 9, 1), (6, 6, 6), (8, 10)]


@pytest.mark.parametrize("sizes", USCC_GROUPINGS, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("sep", [" ", "-", "."])
def test_uscc_grouped_after_a_context_word(sizes: tuple[int, ...], sep: str) -> None:
    grouped = group(USCC, sizes, sep)
    assert found(f"统一社会信用代码：{grouped}") == [("CN_USCC", grouped, 1.0)]
    assert found(f"税号 {grouped.lower()}") == [("CN_USCC", grouped.lower(), 1.0)]
    # a run of numbers passes the check character one time in 31: without context it is not reported
    assert kinds(f"数据 {grouped}") == []
    bad = group(USCC[:-1] + ("K" if USCC[-1] != "K" else "M"), sizes, sep)
    assert kinds(f"统一社会信用代码：{bad}") == []


# -- passports, permits, plates ------------------------------------------------------------------

CONTEXT_ONLY = [
    ("护照 E 1234 5678", "PASSPORT", "E 1234 5678", 0.95),
    ("护照号码：E-12345678", "PASSPORT", "E-12345678", 0.95),
    ("passport g 12345678", "PASSPORT", "g 12345678", 0.95),
    ("我的护照 EA 123 4567", "PASSPORT", "EA 123 4567", 0.95),
    ("护照 K 1234.567", "PASSPORT", "K 1234.567", 0.75),
    ("港澳通行证 C 1234 5678", "HK_MO_PERMIT", "C 1234 5678", 0.9),
    ("通行证：CA 123-4567", "HK_MO_PERMIT", "CA 123-4567", 0.9),
    ("回乡证 H12345678 01", "HK_MO_PERMIT", "H12345678 01", 0.9),
    ("回乡证号码 M 1234 5678 01", "HK_MO_PERMIT", "M 1234 5678 01", 0.9),
    ("往来台湾通行证 L 1234 5678", "TW_PERMIT", "L 1234 5678", 0.9),
    ("台胞证号 1234 5678", "TW_PERMIT", "1234 5678", 0.85),
    ("台胞证 1234-5678-90 (b)", "TW_PERMIT", "1234-5678-90 (b)", 0.85),
]


@pytest.mark.parametrize(("text", "kind", "value", "score"), CONTEXT_ONLY, ids=[c[0] for c in CONTEXT_ONLY])
def test_separated_passports_and_permits_after_a_context_word(
    text: str, kind: str, value: str, score: float
) -> None:
    assert found(text) == [(kind, value, score)]
    # no checksum: without a context word a separated number is not reported
    assert kinds("编号 " + value + " 已发货") == []


@pytest.mark.parametrize(
    "plate", ["京A-12345", "京A.12345", "沪B．88888", "粤B-D12345", "浙A.12345F", "京A-1234学"]
)
def test_plate_separators(plate: str) -> None:
    assert found(f"车辆 {plate} 违停")[0][:2] == ("CN_PLATE", plate)


# -- ordinary numbers ------------------------------------------------------------------------------

PROSE = [
    "会议定于 2023 10 15 召开，共 3 天",
    "时间：2023-10-15 12:30:45，地点另行通知",
    "价格 12 34 56 元，运费 8.5 元",
    "请按 1 2 3 4 的顺序操作",
    "第 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 名都有奖",
    "奇数有 1 3 5 7 9 11 13 15 17 19 等",
    "2019 2020 2021 2022 2023 年的数据见附表",
    "比分 3-1、2-2、1-0，总比分 6-3",
    "营业时间 9:00-18:00，电话请见官网",
    "圆周率 3.14159 26535 89793 23846",
    "身份证号码由 6 位地址码、8 位出生日期码、3 位顺序码和 1 位校验码组成",
    "库存 1 000 000 件，单价 19.99 元",
]


@pytest.mark.parametrize("text", PROSE)
def test_runs_of_ordinary_numbers_are_not_identifiers(text: str) -> None:
    assert found(text) == []


def _validates(kind: str, value: str) -> bool:
    compact = re.sub(r"[^0-9a-z]", "", normalize(value).text.lower())
    if kind == "CN_RESIDENT_ID":
        return is_valid_resident_id(compact)
    if kind == "BANK_CARD":
        return plausible_card_prefix(compact) and luhn.is_valid(compact)
    if kind == "CN_USCC":
        return uscc.is_valid(compact.upper())
    if kind in ("CN_MOBILE", "CN_LANDLINE"):
        digits = re.sub(r"\D", "", compact)
        return any(
            phonenumbers.is_valid_number(phonenumbers.parse(d, "CN"))
            for d in (digits, "+" + digits)
            if d[0] != "0" or len(d) > 2
        )
    if kind == "IP_ADDRESS":
        return bool(ipaddress.ip_address(normalize(value).text))
    return False  # nothing else is reported in runs of numbers without a context word


_NUMBER = st.one_of(
    st.integers(0, 99).map(str),
    st.integers(0, 9999).map(str),
    st.integers(0, 99999).map(lambda n: f"{n:05d}"),
    st.sampled_from([RID[:6], RID[6:14], RID[14:], MOBILE[:3], MOBILE[3:7], CARD19[:4], "19780928", "2023"]),
)


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(_NUMBER, min_size=2, max_size=12),
    st.lists(st.sampled_from([" ", " ", "-", ".", "\u2014", "\u3000"]), min_size=11, max_size=11),
)
def test_anything_found_in_a_run_of_numbers_validates_when_compacted(
    numbers: list[str], seps: list[str]
) -> None:
    """A run of numbers with single separators is reported only when the compacted value passes the
    kind's check: province, birth date and check digit; Luhn and issuer; phonenumbers; USCC."""
    run = numbers[0] + "".join(s + n for s, n in zip(seps, numbers[1:], strict=False))
    text = f"数据：{run}。"
    for kind, value, _ in found(text):
        assert _validates(kind, value), (kind, value, text)


# -- the stream hold-back covers every grouped form -------------------------------------------------


def _max_width(regex: str, group: str | None) -> int:
    """Longest text the pattern (or one of its groups) can match, from the regex's parse tree."""
    tree = sre_parse.parse(regex)
    if group is None:
        return int(tree.getwidth()[1])
    gid = re.compile(regex).groupindex[group]
    todo = [tree]
    while todo:
        sub = todo.pop()
        for op, av in sub.data:
            if op is sre_parse.SUBPATTERN:
                if av[0] == gid:
                    return int(av[3].getwidth()[1])
                todo.append(av[3])
            elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
                todo.append(av[1])
            elif op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
                todo.append(av[2])
            elif op is sre_parse.BRANCH:
                todo.extend(av[1])
    raise AssertionError(f"no group {group} in {regex}")


@pytest.mark.parametrize(
    "rec",
    [r for r in BUILTIN_RECOGNIZERS if r.scan == "segment" and r.kind != "IP_ADDRESS"],
    ids=lambda r: r.__name__,
)
def test_max_length_covers_the_longest_match_of_every_pattern(rec: type) -> None:
    """What a stream relies on: no result is longer than the recognizer's ``max_length`` (and so the
    detector's hold-back). Computed from the regexes, so a new separator cannot slip past it."""
    for p in rec.patterns:
        groups = re.compile(p.regex).groupindex
        if "v" in groups:
            width = _max_width(p.regex, "v")
        elif "more" in groups:
            width = 1 + _max_width(p.regex, "more")  # the first character, then the lookahead
        else:
            width = _max_width(p.regex, None)
        assert width <= rec.max_length, (rec.__name__, p.name, width)


def test_ip_addresses_stay_within_their_max_length() -> None:
    """The IPv6 regex can match 51 characters, but ``ipaddress`` accepts at most 45 and IPv4 at most 15."""
    from hegui.detectors.pii.recognizers import IpAddressRecognizer, Ipv6Recognizer

    assert len(str(ipaddress.ip_address("255.255.255.255"))) <= IpAddressRecognizer.max_length
    longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
    assert Ipv6Recognizer().validate_result(longest) and len(longest) == Ipv6Recognizer.max_length
    assert not Ipv6Recognizer().validate_result("ffff:ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")


def test_holdback_and_lookbehind() -> None:
    """The grouped forms (at most 35 characters) fit in the e-mail hold-back (64); a run of numbers
    that holds several identifiers (``test_pii_adjacent.py``) needs more: a part of 35 characters
    waits for the split point after it, an identifier of 35 and the 2 characters its guards read (73),
    and looks back at the split point, the identifier before it and that one's context words
    (24 + 2 + 36 = 62)."""
    longest = max(r.max_length for r in BUILTIN_RECOGNIZERS if r.split_lengths)
    assert longest == 35 and max(r.max_length for r in BUILTIN_RECOGNIZERS) == 64
    assert DETECTOR.holdback() == longest + 1 + longest + 2 == 73
    assert DETECTOR.lookbehind() == PIIConfig().context_window + 2 + longest + 1 == 62


# -- streams ---------------------------------------------------------------------------------------

STREAMED = [
    f"身份证号：{group(RID, (4, 4, 4, 4, 2))}，请核对。",
    f"证件{group(RID, (6, 6, 6), '-')}已登记。",
    f"号码是{group(RID_X, (6, 8, 4), chr(0x3000))}，谢谢。",
    f"他报的是{group(RID, (1,) * 18)}，对吗？",
    f"身份证{group(RID, (6, 8, 4), chr(0x2014))}。",
    f"旧身份证号{group(RID15, (6, 6, 3))}已作废。",
    f"手机{group(MOBILE, (4, 3, 4))}联系。",
    f"电话{group(MOBILE, (3, 4, 4), '.')}找我。",
    f"微信{group(MOBILE, (1,) * 11)}加我。",
    f"手机+86 {group(MOBILE, (3, 4, 4), chr(0x2013))}。",
    "办公电话0755.8888.6666转人工。",
    "电话 021 - 6234 5678，工作日。",
    "卡号" + ".".join(CARD19[i : i + 4] for i in range(0, 19, 4)) + "收款。",
    "卡号" + "\u2014".join(CARD16[i : i + 4] for i in range(0, 16, 4)) + "收款。",
    f"统一社会信用代码{group(USCC, (4, 4, 4, 4, 2))}，公司。",
    "护照E 1234 5678，过期了。",
    "港澳通行证C 1234 5678，在这。",
    "回乡证H 1234 5678 01，在这。",
    "台胞证号1234 5678，在这。",
    "往来台湾通行证L-1234-5678，在这。",
    "车牌京A-12345违停。",
    "车牌粤B.D12345违停。",
]


@pytest.fixture(scope="module")
def moderator() -> Moderator:
    return Moderator.from_config(load_config(None, environ={}))


def run_stream(m: Moderator, chunks: list[str]) -> tuple[str, str]:
    sm = m.stream(direction="output")
    sent = ""
    for c in chunks:
        step = sm.feed(c)
        assert not step.stopped
        sent += step.emit
    step = sm.finish()
    assert not step.stopped
    return sent + step.emit, sm.redacted_sent


def _has_digit(text: str) -> bool:
    return any(c.isdigit() for c in normalize(text).text)


def _splits(text: str, inner: tuple[int, int] | None) -> list[list[str]]:
    out = [[text], list(text)]
    out += [[text[:i], text[i:]] for i in range(1, len(text))]
    if inner is not None:  # both cuts inside the identifier
        a, b = inner
        out += [[text[:i], text[i:j], text[j:]] for i in range(a + 1, b) for j in range(i + 1, b)]
    return out


@pytest.mark.parametrize("text", STREAMED)
def test_stream_never_sends_a_grouped_identifier_however_it_is_split(moderator: Moderator, text: str) -> None:
    """Split at every position (and, for IDs, at every pair of positions inside the number): the
    client gets exactly what the whole-text check gives, without a digit of the identifier, and the
    record of what was sent is masked too."""
    assert not _has_digit(re.sub(r"[0-9０-９]", "", text))  # the digits are all the identifier's
    whole = moderator.check(text, direction="output")
    assert whole.action.value == "mask" and {f.risk for f in whole.findings} == {"PI"}, whole.findings
    assert not _has_digit(whole.text), whole.text
    digits = [i for i, c in enumerate(text) if c.isdigit() or c in "０１２３４５６７８９"]
    inner = (digits[0], digits[-1] + 1) if whole.findings[0].kind == "CN_RESIDENT_ID" else None
    for chunks in _splits(text, inner):
        sent, record = run_stream(moderator, chunks)
        assert sent == whole.text, chunks
        assert not _has_digit(record), (chunks, record)
    if "车牌" in text:
        assert "12345" not in sent and "A-" not in sent and "b.d" not in normalize(sent).text


def test_grouped_decisions_older_than_the_holdback_do_not_change_as_text_arrives() -> None:
    """The property a stream relies on, with grouped identifiers of every kind back to back: for
    every prefix, the results that end ``holdback()`` characters before its end are final."""
    text = normalize(
        f"身份证{group(RID, (4, 4, 4, 4, 2))}，手机 1380 013 8000 {group(RID, (6, 6, 6), '-')}，"
        f"编号12 {group(RID, (4, 4, 4, 4, 2))}，电话0755.8888.6666，卡号 "
        + ".".join(CARD19[i : i + 4] for i in range(0, 19, 4))
        + f"，信用代码{group(USCC, (2, 6, 9, 1))}，护照E 1234 5678，回乡证H 1234 5678 01，"
        f"台胞证1234 5678，车牌京A-12345，微信{group(MOBILE, (1,) * 11)}，旧身份证{group(RID15, (6, 6, 3))}。"
    ).text
    h = DETECTOR.holdback()
    full = {(r.kind, r.start, r.end, r.score) for r in DETECTOR.analyze(text)}
    assert {k for k, *_ in full} == {
        "CN_RESIDENT_ID", "CN_MOBILE", "CN_LANDLINE", "BANK_CARD", "CN_USCC", "PASSPORT", "HK_MO_PERMIT",
        "TW_PERMIT", "CN_PLATE",
    }  # fmt: skip
    assert len(full) == 13
    for cut in range(len(text) + 1):
        settled = cut - h
        seen = {(r.kind, r.start, r.end, r.score) for r in DETECTOR.analyze(text[:cut]) if r.end <= settled}
        assert seen == {f for f in full if f[2] <= settled}, cut
