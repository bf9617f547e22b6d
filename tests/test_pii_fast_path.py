"""The PII detector's fast path (one scan of the text, then each recognizer only on the windows where
it can match) finds exactly what running every recognizer over the whole text finds
(``analyze_reference``): same results, same scores, same order, before and after overlaps are
resolved. Checked on random texts built to hit the edges (boundaries, separators, upper case,
non-ASCII digits, Chinese numerals, trigger words) and on the whole development pool."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric, uscc

from hegui.detectors.pii import PIIConfig, PIIDetector
from hegui.detectors.pii.recognizers import (
    ADDRESS_TRIGGERS,
    BUILTIN_RECOGNIZERS,
    NAME_TRIGGERS_COLON,
    NAME_TRIGGERS_LABELLED,
    NAME_TRIGGERS_SPOKEN,
    PROVINCE_ABBREVIATIONS,
)
from hegui.detectors.pii.scan import CJK_NUMERALS, DASHES, Scanner
from hegui.text import normalize

SALT = b"test-salt"
DETECTOR = PIIDetector(salt=SALT)
# a second configuration: custom recognizers (always lower-cased, whole-text), an allow list, a
# narrower context window and a threshold that lets weak patterns through
CUSTOM = PIIDetector(
    salt=SALT,
    config=PIIConfig.model_validate(
        {
            "min_score": 0.3,
            "context_window": 8,
            "allow_list": ["13800138000"],
            "custom_recognizers": [
                {
                    "kind": "EMPLOYEE_ID",
                    "patterns": [{"name": "emp", "regex": r"EMP-\d{4,6}"}],
                    "context": ["工号"],
                }
            ],
        }
    ),
)
# only some kinds, so the scan is built from fewer recognizers
SOME = PIIDetector(salt=SALT, config=PIIConfig(entities=["CN_PLATE", "IP_ADDRESS", "PERSON_NAME"]))
DETECTORS = {"default": DETECTOR, "custom": CUSTOM, "some": SOME}


def assert_same(det: PIIDetector, text: str) -> None:
    fast = det._collect(text)
    reference = det._collect_reference(text)
    assert fast == reference, text
    assert det.analyze(text) == det.analyze_reference(text), text


# -- random texts --------------------------------------------------------------------------------


def _digits(draw: st.DrawFn, n: int) -> str:
    return "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=n, max_size=n)))


_GROUP_SEPS = [" ", "-", ".", "\u3000", "\u2013", "\u2014", "\u2212", "\u2010", "  ", " - "]


def _grouped(draw: st.DrawFn, value: str, consistent: bool = False) -> str:
    """``value`` cut into random groups with random separators (some of them not accepted: two
    spaces, " - "), as people write identifiers and as prose writes runs of numbers."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(value) - 1)), max_size=len(value) - 1)))
    seps = _GROUP_SEPS if not consistent else [draw(st.sampled_from(_GROUP_SEPS))]
    out, prev = [], 0
    for c in cuts:
        out.append(value[prev:c] + draw(st.sampled_from(seps)))
        prev = c
    return "".join(out) + value[prev:]


@st.composite
def grouped_identifier(draw: st.DrawFn) -> str:
    """Identifiers of every kind in groups (``1101 0519 7809 2894 65``, ``138.0013.8000`` …)."""
    kind = draw(st.integers(0, 7))
    if kind == 0:
        first17 = draw(st.sampled_from(["11", "44", "65", "99"])) + _digits(draw, 4)
        first17 += (
            f"{draw(st.integers(1890, 2030))}{draw(st.integers(0, 13)):02d}{draw(st.integers(0, 32)):02d}"
        )
        first17 += _digits(draw, 3)
        value = first17 + draw(st.sampled_from([ric.calc_check_digit(first17 + "0"), "0", "x"]))
        return _grouped(draw, value)
    if kind == 1:
        value = (
            draw(st.sampled_from(["11", "44"]))
            + _digits(draw, 4)
            + draw(st.sampled_from(["780928", "491231"]))
        )
        return _grouped(draw, value + _digits(draw, 3))
    if kind == 2:
        number = "1" + draw(st.sampled_from("3456789")) + _digits(draw, 9)
        prefix = draw(st.sampled_from(["", "+86 ", "+86.", "0086-", "86 ", "(+86) "]))
        return prefix + _grouped(draw, number)
    if kind == 3:
        area = draw(st.sampled_from(["010", "021", "0755", "(010)", "+86.10.", "0086-755-"]))
        sep = draw(st.sampled_from(["", ".", " - ", "\u2014", "\u2013 "]))
        return area + sep + _grouped(draw, draw(st.sampled_from("2345678")) + _digits(draw, 7))
    if kind == 4:
        body = draw(st.sampled_from(["622202", "4", "5312", "62"])) + _digits(draw, draw(st.integers(9, 12)))
        card = body + luhn.calc_check_digit(body)
        if draw(st.booleans()):
            sep = draw(st.sampled_from(_GROUP_SEPS))
            return sep.join(card[i : i + 4] for i in range(0, len(card), 4))
        return _grouped(draw, card)
    if kind == 5:
        first17 = (
            "91" + _digits(draw, 6) + draw(st.text("0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=9, max_size=9))
        )
        return draw(st.sampled_from(["", "信用代码", "税号"])) + _grouped(
            draw, first17 + uscc.calc_check_digit(first17 + "0")
        )
    if kind == 6:
        letters = draw(st.sampled_from(["E", "G", "EA", "C", "W", "H", "M", "L", "CA", "x", ""]))
        context = draw(st.sampled_from(["", "护照", "港澳通行证", "回乡证", "台胞证", "往来台湾通行证"]))
        sep = draw(st.sampled_from(["", " ", "-", "."]))
        return context + letters + sep + _grouped(draw, _digits(draw, draw(st.integers(6, 11))))
    prov = draw(st.sampled_from(PROVINCE_ABBREVIATIONS))
    sep = draw(st.sampled_from(["-", ".", "．", " ", "·", "--"]))
    return (
        prov + draw(st.sampled_from("ABDF")) + sep + draw(st.text("ABDF0123456789", min_size=4, max_size=7))
    )


@st.composite
def plain_identifier(draw: st.DrawFn) -> str:
    """A mobile number, resident ID or bank card as it is, or a number that is none of them."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return "1" + draw(st.sampled_from("3589")) + _digits(draw, 9)
    if kind == 1:
        first17 = draw(st.sampled_from(["11", "44"])) + _digits(draw, 4) + "19850615" + _digits(draw, 3)
        return first17 + ric.calc_check_digit(first17 + "0")
    if kind == 2:
        body = draw(st.sampled_from(["622202", "4", "5312"])) + _digits(draw, draw(st.integers(9, 12)))
        return body + luhn.calc_check_digit(body)
    return _digits(draw, draw(st.integers(1, 6)))


@st.composite
def adjacent_identifiers(draw: st.DrawFn) -> str:
    """Two or three identifiers (or numbers) with one separator between them, as people list them
    (``13800138000 13900139000``): a run of numbers that the detector splits (``split.py``)."""
    parts = draw(st.lists(st.one_of(plain_identifier(), grouped_identifier()), min_size=2, max_size=3))
    seps = draw(
        st.lists(st.sampled_from([" ", " ", "-", ".", "\u3000", "\u2013", "  "]), min_size=2, max_size=2)
    )
    return parts[0] + "".join(sep + part for sep, part in zip(seps, parts[1:], strict=False))


@st.composite
def identifier(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 15))
    if kind >= 14:
        return draw(adjacent_identifiers())
    if kind >= 12:
        return draw(grouped_identifier())
    if kind == 0:
        first17 = draw(st.sampled_from(["11", "44", "65", "99"])) + _digits(draw, 4)
        first17 += (
            f"{draw(st.integers(1890, 2030))}{draw(st.integers(0, 13)):02d}{draw(st.integers(0, 32)):02d}"
        )
        first17 += _digits(draw, 3)
        value = first17 + ric.calc_check_digit(first17 + "0")
        sep = draw(st.sampled_from(["", " ", "-"]))
        return value[:6] + sep + value[6:14] + sep + value[14:] if sep else value
    if kind == 1:
        number = "1" + draw(st.sampled_from("3456789")) + _digits(draw, 9)
        prefix = draw(st.sampled_from(["", "+86", "+86 ", "0086", "86", "(+86) ", "(86)"]))
        if draw(st.booleans()):
            number = f"{number[:3]} {number[3:7]} {number[7:]}"
        return prefix + number
    if kind == 2:
        area = draw(
            st.sampled_from(["010", "021", "0755", "0571", "(010)", "(0755) ", "+86 10 ", "0086 (755) "])
        )
        return (
            area + draw(st.sampled_from(["", "-", " "])) + draw(st.sampled_from("2345678")) + _digits(draw, 7)
        )
    if kind == 3:
        body = draw(st.sampled_from(["622202", "4", "5312", "35", "95"])) + _digits(draw, 12)
        card = body + luhn.calc_check_digit(body)
        sep = draw(st.sampled_from(["", " ", "-"]))
        return sep.join(card[i : i + 4] for i in range(0, len(card), 4)) if sep else card
    if kind == 4:
        first17 = (
            "91" + _digits(draw, 6) + draw(st.text("0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=9, max_size=9))
        )
        return first17 + uscc.calc_check_digit(first17 + "0")
    if kind == 5:
        local = draw(st.text("abcXYZ09._%+-", min_size=1, max_size=12))
        return local + "@" + draw(st.sampled_from(["example.com", "a.b.cn", "x-y.org", "-bad.com", "a..b"]))
    if kind == 6:
        letters = draw(st.sampled_from(["E", "G", "e", "EA", "C", "W", "H", "M", "L", "CA", "x", "ab"]))
        return letters + _digits(draw, draw(st.integers(5, 11)))
    if kind == 7:
        prov = draw(st.sampled_from(PROVINCE_ABBREVIATIONS))
        sep = draw(st.sampled_from(["", "·", "•", "・", " "]))
        tail = draw(st.text("ABDFHJK0123456789", min_size=4, max_size=7))
        return (
            prov
            + draw(st.sampled_from("ABDFIOZ"))
            + sep
            + tail
            + draw(st.sampled_from(["", "挂", "学", "警"]))
        )
    if kind == 8:
        return ".".join(str(draw(st.integers(0, 300))) for _ in range(draw(st.integers(3, 5))))
    if kind == 9:
        groups = draw(st.lists(st.text("0123456789abcdef", max_size=5), min_size=2, max_size=9))
        return ":".join(groups) + draw(st.sampled_from(["", ".1.2.3", "::1", ":"]))
    if kind == 10:
        number = "1" + draw(st.sampled_from("38")) + _digits(draw, 9)
        table = dict(
            zip(
                "0123456789",
                draw(
                    st.sampled_from(["零一二三四五六七八九", "〇幺两三四五六七八九", "零壹贰叁肆伍陆柒捌玖"])
                ),
                strict=True,
            )
        )
        cut = draw(st.integers(0, 11))
        return number[:cut] + "".join(table[c] for c in number[cut:])
    return draw(st.sampled_from(["EMP-1234", "emp-99999", "工号EMP-123456"]))


WORDS = [
    *ADDRESS_TRIGGERS,
    *NAME_TRIGGERS_LABELLED,
    *NAME_TRIGGERS_COLON,
    *NAME_TRIGGERS_SPOKEN,
    "改名叫", "手机", "电话", "身份证", "卡号", "护照", "港澳", "通行证", "台胞证", "车牌", "IP", "服务器", "邮箱",
    "信用代码", "tel", "Phone", "id card", "工号", "统一社会信用代码", "回乡证", "往来台湾通行证", "税号",
    "张三", "欧阳娜娜", "穆罕默德·阿里", "王", "先生", "性别", "北京市朝阳区建国路88号", "浙江省杭州市", "3栋201室",
    "的", "了", "我", "今天天气很好", "一二三四五六七", "三三两两", "第一", "两", "十",
]  # fmt: skip
ODD = (
    list("٠١٢٣٤٥٦٧٨٩०१२३\u212aİ１２ＡＢ＠．·•・（）挂学警港澳 \t\n-+().:@xX#\u3000－")
    + list(CJK_NUMERALS)
    + list(DASHES)
)


def piece() -> st.SearchStrategy[str]:
    return st.one_of(
        identifier(),
        st.sampled_from(WORDS),
        st.sampled_from(ODD),
        st.text("0123456789", min_size=1, max_size=20),
        st.text("0123456789 -.:()+", min_size=1, max_size=12),
        st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHXYZ0123456789", min_size=1, max_size=10),
        st.sampled_from(PROVINCE_ABBREVIATIONS),
    )


texts = st.lists(piece(), max_size=30).map("".join)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_random_texts(text: str) -> None:
    for det in DETECTORS.values():
        assert_same(det, text)
        assert_same(det, normalize(text).text)


DENSE = [
    *"0123456789 -+().:@xXaeEgclhmkK京沪粤A·•一二三四五六七八九零两：\u0663\u212a挂\u2013\u2014",
    *("姓名", "我叫", "住在", "地址", "手机", "身份证", "护照", "台胞证", "车牌", "ip"),
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(DENSE), max_size=40).map("".join))
def test_dense_texts(text: str) -> None:
    """Short texts made almost only of characters the patterns care about."""
    for det in DETECTORS.values():
        assert_same(det, text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_unicode(text: str) -> None:
    assert_same(DETECTOR, text)
    assert_same(CUSTOM, text)


# -- cases the scan has to get right -------------------------------------------------------------


def make_id(first17: str) -> str:
    return first17 + ric.calc_check_digit(first17 + "0")


RID = make_id("11010519491231002")
CARD = "622202123456789012" + luhn.calc_check_digit("622202123456789012")
GROUPED_EDGES = [
    # grouped forms (issue 16): every kind, separators and dashes, next to other numbers
    f"身份证{RID[:4]} {RID[4:8]} {RID[8:12]} {RID[12:16]} {RID[16:]}，{RID[:6]}-{RID[6:12]}-{RID[12:]}",
    f"编号12 {RID[:4]} {RID[4:8]} {RID[8:12]} {RID[12:16]} {RID[16:]}",  # a candidate inside a failed one
    " ".join(RID)
    + "，"
    + "\u2014".join([RID[:6], RID[6:14], RID[14:]])
    + "，"
    + ".".join([RID[:6], RID[6:14], RID[14:]]),
    "旧身份证 110105 491231 002",
    "手机1380 013 8000，138.0013.8000，1 3 8 0 0 1 3 8 0 0 0，+86 138\u20130013\u20138000，1 3 5 7 9 11 13 15",
    "电话0755.8888.6666，021 - 6234 5678，010 \u2014 6234 5678，+86.10.6234.5678",
    "卡号"
    + ".".join(CARD[i : i + 4] for i in range(0, 19, 4))
    + "，"
    + "\u2014".join(CARD[i : i + 4] for i in range(0, 16, 4)),
    "信用代码9111 0000 6000 3734 1l，91-110000-600037341-l",
    "护照e 1234 5678，通行证ca 123-4567，回乡证h12345678 01，台胞证1234 5678 90 (b)，往来台湾通行证l-1234-5678",
    "车牌京a-12345，京a.12345，粤b-d12345",
    "时间2023-10-15 12:30:45，价格12 34 56元，第1 2 3 4 5 6 7 8 9 10 11 12名",
    # identifiers next to each other, split at the separators between them
    "电话 13800138000 13900139000 18612345678，手机 138 0013 8000 139 0013 9000，13800138000-13900139000",
    "卡号 "
    + " ".join(CARD[i : i + 4] for i in range(0, 19, 4))
    + " "
    + " ".join(CARD[i : i + 4] for i in range(0, 19, 4)),
    f"身份证{RID} 13800138000 010-62345678 021-62345678，编号2 13800138000 13900139000",
    "旧身份证 110105 491231 002 110105 491231 002，信用代码9111 0000 6000 3734 1l 13800138000",
    "电话 +86 13800138000 (010) 6234 5678 0086 755 8888 6666，卡号 6228480000000000000 2",
]
EDGES = [
    RID,  # the whole text, no room for windows at either end
    f"身份证{RID}",
    f"ID{RID}".upper(),  # upper case: lower-cased, then scanned again
    f"\u212aG{RID[:6]}",  # Kelvin sign lower-cases to k
    f"身份证1{'٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦'[:16]}，另一个号123456",  # \d that is not ASCII, with the gate open
    "护照e٠١٢٣٤٥٦٧ 还有 123456",
    "e١٢٣٤٥٦٧٨",  # the same without the gate: not reported
    "加我微信：幺三八零零一三八零零零，谢谢",
    "138零零一三八000",
    "房价才8000一平，我觉得25一斤的",  # digits next to numerals that are not a number
    "车牌京A·12345，京B 12345，京C12345挂，京AD12345京A12345",
    "京京A12345",
    "IP 2001:db8::1 和 ::1 以及 192.168.1.10 和 v1.2.3.4",
    "我叫王小明，改名叫李四，我的名字叫张三，姓名：穆罕默德·阿里，联系人李四",
    "收货地址：浙江省杭州市西湖区文三路100号3栋201室，家住北京市朝阳区建国路88号",
    "卡号 " + " ".join(CARD[i : i + 4] for i in range(0, 19, 4)) + "，" + CARD + "1" * 40,
    "(+86) 138 0013 8000，电话 0086 (755) 8888 6666，+8613800138000，010-62345678",
    "台胞证 12345678(a) 通行证 C12345678 L12345678 H1234567890",
    "工号EMP-123456 和 emp-1234",
    # the shortest segment each recognizer reports in
    "护照a123456",
    "通行证ca1234567",
    "台胞证12345678",
    "身份证110105491231002",
    "卡号4111111111111111",
    "京a·1234挂",
    "和1.2.3.4和",
    "和::1和",
    # every length a segment of digits only can have for a match
    "电话01062345678，电话075588886666，电话008675588886666，电话0086075588886666",
    "手机8613800138000，手机008613800138000",
    "台胞证1234567890，台胞证12345678",
    "信用代码91110000600037341L",
    "身份证" + make_id("51010419850615123") + "，卡号" + CARD + "。",  # 18 and 19 digits, nothing else
    "手机٣13800138000",  # only digits, but not ASCII: a match need not take the whole segment
    *GROUPED_EDGES,
]


@pytest.mark.parametrize("text", EDGES)
@pytest.mark.parametrize("name", list(DETECTORS))
def test_edges(name: str, text: str) -> None:
    assert_same(DETECTORS[name], text)
    assert_same(DETECTORS[name], normalize(text).text)


def test_edges_find_things() -> None:
    """The edge texts are not vacuous: the fast path reports what they were written for."""
    kinds = {r.kind for text in EDGES for r in DETECTOR.analyze(text)}
    assert kinds >= {
        "CN_RESIDENT_ID", "CN_MOBILE", "CN_LANDLINE", "BANK_CARD", "PASSPORT", "HK_MO_PERMIT", "TW_PERMIT",
        "CN_PLATE", "IP_ADDRESS", "PERSON_NAME", "ADDRESS",
    }  # fmt: skip
    assert [r.kind for r in DETECTOR.analyze("e١٢٣٤٥٦٧٨")] == []
    grouped = {r.kind for text in GROUPED_EDGES for r in DETECTOR.analyze(normalize(text).text)}
    assert grouped >= {
        "CN_RESIDENT_ID", "CN_MOBILE", "CN_LANDLINE", "BANK_CARD", "CN_USCC", "PASSPORT", "HK_MO_PERMIT",
        "TW_PERMIT", "CN_PLATE",
    }  # fmt: skip
    assert {r.kind for r in CUSTOM.analyze("工号EMP-123456")} == {"EMPLOYEE_ID"}


def test_every_builtin_recognizer_declares_where_it_matches() -> None:
    """Only the e-mail recognizer (already anchored at "@") scans the whole text."""
    whole = [r.__name__ for r in BUILTIN_RECOGNIZERS if r.scan == "text"]
    assert whole == ["EmailRecognizer"]
    for r in BUILTIN_RECOGNIZERS:
        assert (r.scan == "trigger") == bool(r.triggers), r.__name__


def test_scanner_finds_trigger_words_and_segments() -> None:
    scanner = Scanner(["地址", "收货地址", "名叫", "名字叫", "我的名字叫"], min_length=3)
    text = "我的名字叫张三，收货地址：文三路100号，tel 138-0013-8000，iphone15，12"
    scan = scanner.scan(text)
    assert scan.trigger_starts() == [0, 2, 8, 10]  # words inside words too; 名叫 is not in 名字叫
    assert scan.trigger_starts(frozenset({"地址", "名叫"})) == [10]
    assert [text[s.start : s.end] for s in scan.segments] == ["100", "tel 138-0013-8000", "iphone15"]
    seg = scan.segments[1]
    assert (seg.longest_run, seg.digits, seg.letters) == (4, 11, 3)
    assert not scan.upper and not scan.numerals and scan.ascii
    assert scanner.scan("Tel 138").upper
    assert scanner.scan("一三八零零一三八").numerals
    assert scanner.scan("138零零一三八").numerals
    assert not scanner.scan("价格是2800一只").numerals
    assert not scanner.scan("a١٢٣").ascii


# -- the development pool ------------------------------------------------------------------------


def test_development_pool(shared_data: Path) -> None:
    """Every comment, raw and normalised, and the comments joined into 2,000-character documents
    with identifiers inserted (the benchmark's shape)."""
    with (shared_data / "dev_pool.jsonl").open(encoding="utf-8") as fh:
        pool = [json.loads(line)["text"] for line in fh if line.strip()]
    found = 0
    for text in pool:
        norm = normalize(text).text
        for t in (text, norm):
            assert DETECTOR._collect(t) == DETECTOR._collect_reference(t), t
        found += len(DETECTOR.analyze(norm))
    assert found > 20  # the pool has some phone numbers, e-mails and names
    rng = random.Random(3)
    joined = "。".join(pool)
    inserts = [
        f"身份证{RID}",
        "电话13800138000",
        "车牌京A12345",
        "我叫王小明",
        "住在北京市朝阳区建国路88号",
        "IP 10.0.0.1",
    ]
    for i in range(0, len(joined) - 2000, 2000):
        doc = joined[i : i + 2000]
        if i % 4000 == 0:
            at = rng.randrange(0, 1960)
            doc = doc[:at] + rng.choice(inserts) + doc[at:]
        for t in (doc, normalize(doc).text):
            assert_same(DETECTOR, t)


# -- validators with a fast path of their own (the reference path shares them, so they are checked
# against what they replace) -----------------------------------------------------------------------


def test_uscc_check_agrees_with_stdnum() -> None:
    from hegui.detectors.pii.recognizers import UsccRecognizer

    rec = UsccRecognizer()
    rng = random.Random(5)
    alphabet = "0123456789abcdefghjklmnpqrtuwxy"
    valid = 0
    for i in range(30_000):
        if i % 3 == 0:
            first17 = "".join(rng.choices("0123456789", k=8) + rng.choices(alphabet, k=9))
            value = first17 + uscc.calc_check_digit(first17.upper() + "0").lower()
        else:
            value = "".join(rng.choices(alphabet if i % 2 else "0123456789", k=18))
        if i % 7 == 0:
            value = value[:3] + "\u0663" + value[4:]  # a \d that is not ASCII
        expected = uscc.is_valid(value.upper())
        valid += expected
        assert rec.validate_result(value) == expected, value
    assert valid > 5_000


@given(st.text(alphabet="0123456789xX -.·•・()（）\t\u3000a٣", max_size=25))
def test_compact_agrees_with_the_regex(value: str) -> None:
    import re

    from hegui.detectors.pii.recognizers import _compact

    assert _compact(value) == re.sub(r"[\s\-.·•・()（）]", "", value).upper()


@pytest.mark.parametrize(
    "text",
    [
        "一1" * 10_000,  # digits between numerals: every segment touches the same long run
        "一1。" * 7_000,
        "a" * 20_000 + "1",  # a long left extension
        "a1 " * 7_000,
        "1 " * 10_000 + "一二三",
        "姓名：" * 3_000 + "地址：" * 3_000,
        "13800138000 " * 800,  # a run of numbers split into 800 identifiers
        "1 3 8 0 0 1 3 8 0 0 0 " * 450,
        "13 " * 7_000,
    ],
)
def test_fast_path_stays_linear(text: str) -> None:
    import time

    t0 = time.perf_counter()
    fast = DETECTOR.analyze(text)
    elapsed = time.perf_counter() - t0
    assert fast == DETECTOR.analyze_reference(text)
    assert elapsed < 0.5, f"{elapsed:.2f} s for {len(text)} characters"


def test_trigger_words_the_scan_cannot_anchor_fall_back_to_the_whole_text() -> None:
    """A third-party trigger recognizer with an ASCII-only word ("tel") is run over the whole text
    (behind its gate) rather than breaking the detector."""
    from hegui.detectors.pii import Pattern, Recognizer, RecognizerRegistry
    from hegui.detectors.pii.scan import anchorable

    class TelRecognizer(Recognizer):
        kind = "TEL_NOTE"
        scan = "trigger"
        triggers = ("tel", "分机")
        prefilter = "tel|分机"
        patterns = (Pattern("tel", r"(?:tel|分机)(?P<v>\d{3,4})", 0.8),)
        max_length = 8

    assert not anchorable("tel") and anchorable("分机") and not anchorable("一二")
    det = PIIDetector(
        salt=SALT, registry=RecognizerRegistry([TelRecognizer(), *RecognizerRegistry.default()])
    )
    assert 0 not in det._trigger_words
    for text in ("请拨tel1234或分机567", "Tel8888", "no trigger 1234"):
        assert_same(det, text)
    assert [r.kind for r in det.analyze("请拨tel1234")] == ["TEL_NOTE"]
