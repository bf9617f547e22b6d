"""PII recognizers: each kind found with its checksum/plausibility rules, and near misses rejected.

Valid identifiers are computed here with python-stdnum (an implementation independent of ours),
not copied from somewhere as magic strings.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from stdnum import luhn
from stdnum.cn import ric, uscc

from hegui.detectors.pii import PIIConfig, PIIDetector
from hegui.detectors.pii.recognizers import is_valid_resident_id, resident_id_check_digit
from hegui.text import normalize

SALT = b"test-salt"


def make_id(first17: str) -> str:
    # stdnum's calc_check_digit wants the full 18-character number and ignores the last one
    return first17 + ric.calc_check_digit(first17 + "0")


def make_card(prefix: str, length: int) -> str:
    body = prefix + "3" * (length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def make_uscc(first17: str) -> str:
    return first17 + uscc.calc_check_digit(first17 + "0")


def wrong_last(value: str, alphabet: str = "0123456789X") -> str:
    return value[:-1] + next(c for c in alphabet if c != value[-1].upper())


@pytest.fixture(scope="module")
def detector() -> PIIDetector:
    return PIIDetector(salt=SALT)


def found(detector: PIIDetector, text: str) -> list[tuple[str, str, float]]:
    return [(f.kind, text[f.start : f.end], f.score) for f in detector.detect(normalize(text))]


def kinds(detector: PIIDetector, text: str) -> list[str]:
    return [k for k, _, _ in found(detector, text)]


# -- 居民身份证 ----------------------------------------------------------------------------------


def test_check_digit_agrees_with_stdnum() -> None:
    for first17 in ("11010519491231002", "44030419900307123", "46900320011111001", "65010219850101999"):
        assert resident_id_check_digit(first17) == ric.calc_check_digit(first17 + "0")


def test_resident_id_found_with_checksum(detector: PIIDetector) -> None:
    rid = make_id("11010519491231002")
    assert found(detector, f"我的身份证号是{rid}，请核对") == [("CN_RESIDENT_ID", rid, 1.0)]


def test_resident_id_lowercase_x(detector: PIIDetector) -> None:
    rid = next(
        make_id(f"11010519900101{i:03d}")
        for i in range(1000)
        if make_id(f"11010519900101{i:03d}").endswith("X")
    )
    assert rid.endswith("X")
    text = f"证件 {rid.lower()} 已登记"
    assert found(detector, text) == [("CN_RESIDENT_ID", rid.lower(), 1.0)]


def test_resident_id_wrong_check_digit_is_not_reported(detector: PIIDetector) -> None:
    rid = wrong_last(make_id("11010519491231002"))
    assert "CN_RESIDENT_ID" not in kinds(detector, f"身份证{rid}")


def test_resident_id_region_missing_from_stdnum_db_is_still_found(detector: PIIDetector) -> None:
    # 469003 (儋州) is a real county code that stdnum's region table lacks
    rid = make_id("46900320011111001")
    with pytest.raises(ric.InvalidComponent):
        ric.validate(rid)
    assert kinds(detector, f"身份证号{rid}") == ["CN_RESIDENT_ID"]


@pytest.mark.parametrize(
    "first17, why",
    [
        ("11010520300101001", "birth date in the future"),
        ("11010518990101001", "born before 1900"),
        ("11010519900230001", "30 February"),
        ("11010519901301001", "month 13"),
        ("99010519900101001", "no such province"),
        ("01010519900101001", "region code starting with 0"),
    ],
)
def test_implausible_resident_ids_are_rejected(detector: PIIDetector, first17: str, why: str) -> None:
    rid = make_id(first17)
    assert not is_valid_resident_id(rid), why
    assert "CN_RESIDENT_ID" not in kinds(detector, f"身份证号码 {rid}"), why


def test_future_birth_date_depends_on_today() -> None:
    rid = make_id("11010520300101001")
    assert not is_valid_resident_id(rid)
    assert is_valid_resident_id(rid, today=dt.date(2031, 1, 1))


def test_resident_id_with_spaces(detector: PIIDetector) -> None:
    rid = make_id("11010519491231002")
    spaced = f"{rid[:6]} {rid[6:14]} {rid[14:]}"
    assert found(detector, f"身份证：{spaced}。") == [("CN_RESIDENT_ID", spaced, 1.0)]


def test_resident_id_inside_a_longer_number_is_not_reported(detector: PIIDetector) -> None:
    rid = make_id("11010519491231002")
    assert "CN_RESIDENT_ID" not in kinds(detector, f"订单号 9{rid}7")


def test_legacy_15_digit_id_needs_context(detector: PIIDetector) -> None:
    old = "110105491231002"
    assert kinds(detector, f"编号 {old} 已处理") == []
    assert found(detector, f"旧身份证号 {old}") == [("CN_RESIDENT_ID", old, 0.85)]
    assert kinds(detector, "旧身份证号 110105491331002") == []  # month 13


def test_full_width_digits_are_found_and_mapped_back(detector: PIIDetector) -> None:
    rid = make_id("11010519491231002")
    wide = rid.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    text = f"身份证：{wide}，手机：１３８００１３８０００"
    assert found(detector, text) == [
        ("CN_RESIDENT_ID", wide, 1.0),
        ("CN_MOBILE", "１３８００１３８０００", 1.0),
    ]


# -- phones --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["13800138000", "138 0013 8000", "138-0013-8000", "+86 138 0013 8000", "+8613800138000", "8613800138000",
     "0086-138-0013-8000", "(+86) 13800138000", "17012345678", "19912345678"],
)  # fmt: skip
def test_mobile_formats(detector: PIIDetector, number: str) -> None:
    assert found(detector, f"联系我：{number}，谢谢")[0][:2] == ("CN_MOBILE", number)


@pytest.mark.parametrize("number", ["12345678901", "10012345678", "1380013800", "138001380001"])
def test_not_mobile_numbers(detector: PIIDetector, number: str) -> None:
    assert "CN_MOBILE" not in kinds(detector, f"编号 {number} 已完成")


def test_mobile_score_rises_with_context(detector: PIIDetector) -> None:
    assert found(detector, "记一下 13800138000 好吗")[0][2] == 0.9
    assert found(detector, "我的手机是 13800138000")[0][2] == 1.0


def test_context_window_limits_where_context_counts() -> None:
    text = "手机" + "一二三四五六七八九十" * 3 + "13800138000"
    assert PIIDetector(salt=SALT).detect(normalize(text))[0].score == 0.9
    wide = PIIDetector(config=PIIConfig(context_window=40), salt=SALT)
    assert wide.detect(normalize(text))[0].score == 1.0


@pytest.mark.parametrize(
    "number",
    ["010-62345678", "01062345678", "0755 8888 6666", "0755-88886666", "(010)62345678", "021-6234 5678",
     "+86 10 6234 5678", "+86-755-8888-6666"],
)  # fmt: skip
def test_landline_formats(detector: PIIDetector, number: str) -> None:
    assert found(detector, f"办公电话 {number} 欢迎来电")[0][:2] == ("CN_LANDLINE", number)


def test_service_numbers_are_not_landlines(detector: PIIDetector) -> None:
    assert kinds(detector, "客服热线 400-810-8888") == []


# -- bank cards, USCC ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "length"), [("622202", 19), ("622848", 16), ("4", 16), ("53", 16), ("2221", 16)]
)
def test_bank_cards(detector: PIIDetector, prefix: str, length: int) -> None:
    card = make_card(prefix, length)
    assert found(detector, f"打款到 {card} 即可") == [("BANK_CARD", card, 0.9)]
    assert found(detector, f"卡号：{card}") == [("BANK_CARD", card, 1.0)]


def test_bank_card_grouped(detector: PIIDetector) -> None:
    card = make_card("622202", 19)
    grouped = " ".join(card[i : i + 4] for i in range(0, 19, 4))
    assert found(detector, f"银行卡 {grouped}") == [("BANK_CARD", grouped, 1.0)]
    dashed = "-".join(card[i : i + 4] for i in range(0, 16, 4)) + "-" + card[16:]
    assert kinds(detector, f"银行卡 {dashed}") == ["BANK_CARD"]


def test_bank_card_rejections(detector: PIIDetector) -> None:
    card = make_card("622202", 19)
    assert kinds(detector, f"卡号 {wrong_last(card, '0123456789')}") == []  # Luhn fails
    assert kinds(detector, f"卡号 {make_card('7', 16)}") == []  # no issuer uses 7
    assert kinds(detector, f"卡号 {make_card('62', 15)}") == []  # too short


def test_uscc(detector: PIIDetector) -> None:
    code = make_uscc("91110000600037341")
    assert found(detector, f"统一社会信用代码：{code}") == [("CN_USCC", code, 1.0)]
    assert found(detector, f"税号 {code.lower()}") == [("CN_USCC", code.lower(), 1.0)]
    bad = wrong_last(code, "0123456789ABCDEFGHJKLMNPQRTUWXY")
    assert kinds(detector, f"统一社会信用代码：{bad}") == []


def test_id_that_also_passes_luhn_is_reported_once_as_id(detector: PIIDetector) -> None:
    # a Gansu (62…) ID whose 18 digits also pass Luhn: the stronger ID check wins
    ids = (make_id(f"62010219900101{i:03d}") for i in range(1000))
    rid = next(r for r in ids if r[-1].isdigit() and luhn.is_valid(r))
    assert kinds(detector, f"号码 {rid}") == ["CN_RESIDENT_ID"]


# -- e-mail, passports, permits, plates, IP ----------------------------------------------------


def test_email(detector: PIIDetector) -> None:
    assert found(detector, "发到邮箱Zhang.San+hk@Mail.Example.com.cn谢谢")[0][:2] == (
        "EMAIL",
        "Zhang.San+hk@Mail.Example.com.cn",
    )
    assert kinds(detector, "写信到 a..b@example.com") == []
    assert kinds(detector, "价格 3@5 元") == []


def test_passport(detector: PIIDetector) -> None:
    assert found(detector, "编号 E12345678") == [("PASSPORT", "E12345678", 0.6)]
    assert found(detector, "护照号码：G12345678") == [("PASSPORT", "G12345678", 0.95)]
    assert found(detector, "我的护照 EA1234567") == [("PASSPORT", "EA1234567", 0.95)]
    # other countries' formats only after a context word
    assert kinds(detector, "型号 K1234567") == []
    assert found(detector, "passport no. K1234567") == [("PASSPORT", "K1234567", 0.75)]


def test_hk_macao_permits_need_context(detector: PIIDetector) -> None:
    assert kinds(detector, "产品 C12345678 已发货") == []
    assert found(detector, "港澳通行证 C12345678") == [("HK_MO_PERMIT", "C12345678", 0.9)]
    assert found(detector, "回乡证号码 H1234567801") == [("HK_MO_PERMIT", "H1234567801", 0.9)]
    assert found(detector, "通行证：CA1234567") == [("HK_MO_PERMIT", "CA1234567", 0.9)]


def test_taiwan_permits_need_context(detector: PIIDetector) -> None:
    assert kinds(detector, "代码 L12345678") == []
    assert found(detector, "往来台湾通行证 L12345678") == [("TW_PERMIT", "L12345678", 0.9)]
    assert found(detector, "台胞证号 12345678") == [("TW_PERMIT", "12345678", 0.85)]
    assert kinds(detector, "台湾有 23456789 人") == []


@pytest.mark.parametrize(
    "plate", ["京A12345", "沪B·88888", "粤BD12345", "浙A12345F", "京A1234学", "川a8b9c7"]
)
def test_plates(detector: PIIDetector, plate: str) -> None:
    assert found(detector, f"车辆 {plate} 违停")[0][:2] == ("CN_PLATE", plate)


@pytest.mark.parametrize("text", ["京ABCDE 停车", "粤BD1234X5", "京A1B2C3D", "新A1B2X 上线"])
def test_not_plates(detector: PIIDetector, text: str) -> None:
    assert "CN_PLATE" not in kinds(detector, text)


def test_ip_addresses(detector: PIIDetector) -> None:
    assert found(detector, "服务器IP 192.168.1.10 无法访问")[0][:2] == ("IP_ADDRESS", "192.168.1.10")
    assert found(detector, "from 2001:db8::8a2e:370:7334 ok")[0][:2] == (
        "IP_ADDRESS",
        "2001:db8::8a2e:370:7334",
    )
    assert kinds(detector, "版本 v1.2.3.4 发布") == []
    assert kinds(detector, "地址 999.1.1.1") == []
    assert kinds(detector, "时间 12:30:45 到") == []
    assert kinds(detector, "MAC 00:1A:2B:3C:4D:5E") == []


# -- addresses and names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("我住在北京市朝阳区建国路88号附近", "北京市朝阳区建国路88号"),
        ("收货地址：浙江省杭州市西湖区文三路100号3栋201室，电话", "浙江省杭州市西湖区文三路100号3栋201室"),
        ("家住上海市浦东新区世纪大道", "上海市浦东新区世纪大道"),
        ("请寄到广州市天河区体育西路123号", "广州市天河区体育西路123号"),
    ],
)
def test_addresses(detector: PIIDetector, text: str, value: str) -> None:
    assert found(detector, text) == [("ADDRESS", value, pytest.approx(0.75))]


@pytest.mark.parametrize(
    "text", ["你住在哪里？", "我住在北京市", "地址是什么", "我住在这里很开心", "IP地址：很重要"]
)
def test_not_addresses(detector: PIIDetector, text: str) -> None:
    assert "ADDRESS" not in kinds(detector, text)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("我叫张三，今年25岁", "张三"),
        ("你好，我叫王小明。", "王小明"),
        ("我的名字是欧阳娜娜", "欧阳娜娜"),
        ("姓名：李四 性别：男", "李四"),
        ("姓名：穆罕默德·阿里 性别：男", "穆罕默德·阿里"),
        ("收件人张伟，电话", "张伟"),
    ],
)
def test_names(detector: PIIDetector, text: str, name: str) -> None:
    assert [(k, v) for k, v, _ in found(detector, text) if k == "PERSON_NAME"] == [("PERSON_NAME", name)]


@pytest.mark.parametrize(
    "text",
    [
        "我叫车来接你",
        "我叫他过来",
        "我叫王师傅来修",
        "患者麻醉后",
        "公交车改名叫母交车",
        "姓名和资料",
        "姓名：未知",
    ],
)
def test_not_names(detector: PIIDetector, text: str) -> None:
    assert "PERSON_NAME" not in kinds(detector, text)


# -- findings, evidence, hold-back -----------------------------------------------------------


def test_finding_shape_and_evidence_has_no_raw_value(detector: PIIDetector) -> None:
    text = "手机 138 0013 8000"
    (f,) = detector.detect(normalize(text))
    assert (f.risk, f.detector, f.kind) == ("PI", "pii", "CN_MOBILE")
    prefix, kind, digest = f.evidence_id.split(":")
    assert (prefix, kind) == ("pii", "CN_MOBILE")
    assert len(digest) == 8 and int(digest, 16) >= 0
    assert "13800138000" not in f.evidence_id and "8000" not in f.evidence_id


def test_evidence_id_is_stable_across_formats_and_depends_on_salt(detector: PIIDetector) -> None:
    ids = {
        detector.detect(normalize(f"手机 {n}"))[0].evidence_id
        for n in ("138 0013 8000", "+86 13800138000", "１３８００１３８０００", "138-0013-8000")
    }
    assert len(ids) == 1
    other = PIIDetector(salt=b"another salt").detect(normalize("手机 13800138000"))[0].evidence_id
    assert other not in ids


def test_salt_comes_from_the_configured_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PII_SALT", "s3cret")
    cfg = PIIConfig(hash_salt_env="MY_PII_SALT")
    assert cfg.salt() == b"s3cret"
    a = PIIDetector(config=cfg).detect(normalize("手机 13800138000"))[0].evidence_id
    b = PIIDetector(salt=b"s3cret").detect(normalize("手机 13800138000"))[0].evidence_id
    assert a == b
    assert PIIConfig(hash_salt_env="UNSET_SALT_VARIABLE_X").salt(environ={}) != b"s3cret"


POSITIVES = [
    "身份证 "
    + make_id("11010519491231002")[:6]
    + " "
    + make_id("11010519491231002")[6:14]
    + " "
    + make_id("11010519491231002")[14:],
    "手机 (+86) 138 0013 8000",
    "电话 0086 (755) 8888 6666",
    "卡号 " + " ".join(make_card("622202", 19)[i : i + 4] for i in range(0, 19, 4)),
    "邮箱 " + "a" * 40 + "@example-mail.com.cn",
    "住在浙江省杭州市西湖区文三路100号3栋201室",
    "姓名：穆罕默德·阿里",
    "IP 2001:0db8:85a3:0000:0000:8a2e:0370:7334",
]


def test_holdback_covers_every_match(detector: PIIDetector) -> None:
    h = detector.holdback()
    assert h == 73  # 64 for e-mail addresses; more for runs of numbers split into identifiers
    for text in POSITIVES:
        norm = normalize(text)
        results = detector.analyze(norm.text)
        assert results, text
        for r in results:
            assert r.end - r.start <= h, text


def test_prefilter_skips_plain_text(detector: PIIDetector) -> None:
    assert detector.analyze("今天天气很好，我们去公园散步吧。" * 100) == []


def test_spans_map_to_original_text_through_normalisation(detector: PIIDetector) -> None:
    rid = make_id("44030419900307123")
    text = f"ＩＤ：{rid}，邮箱：ＡＢＣ＠ＥＸＡＭＰＬＥ．ＣＯＭ，車牌：京Ａ１２３４５"
    got = found(detector, text)
    assert [(k, v) for k, v, _ in got] == [
        ("CN_RESIDENT_ID", rid),
        ("EMAIL", "ＡＢＣ＠ＥＸＡＭＰＬＥ．ＣＯＭ"),
        ("CN_PLATE", "京Ａ１２３４５"),
    ]


ADVERSARIAL = {
    "digits": "1" * 20000,
    "spaced digits": "1 " * 10000,
    "dashes": "1-" * 10000,
    "at signs": "a@" * 10000,
    "long locals": ("a" * 70 + "@") * 280,
    "dots": "1." * 10000,
    "colons": "ab:" * 7000,
    "domain labels": "a@" + "a." * 10000 + "!",
    "address trigger": "住在" + "路" * 20000,
    "name labels": "姓名：" * 7000,
    "plates": "京A" * 10000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_inputs_stay_linear(detector: PIIDetector, name: str) -> None:
    import time

    text = normalize(ADVERSARIAL[name])
    t0 = time.perf_counter()
    findings = detector.detect(text)
    elapsed = time.perf_counter() - t0
    assert findings == []
    assert elapsed < 1.0, f"{name}: {elapsed:.2f} s for {len(text.text)} chars"


def test_decisions_older_than_the_holdback_do_not_change_as_text_arrives(detector: PIIDetector) -> None:
    """What a stream relies on: a result that ends at least ``holdback()`` characters before the end
    of the text seen so far is exactly what the detector reports on the whole text."""
    rid = make_id("44030419900307123")
    card = make_card("622202", 19)
    text = normalize(
        f"你好，我叫王小明，身份证{rid}，手机 138 0013 8000，邮箱 wang.xm@example.com，"
        f"卡号 {card[:4]} {card[4:8]} {card[8:12]} {card[12:16]} {card[16:]}，车牌粤B·D12345，"
        f"收货地址：浙江省杭州市西湖区文三路100号3栋201室，IP 192.168.1.10，护照 G12345678，电话0755-8888 6666。"
    ).text
    h = detector.holdback()
    full = {(r.kind, r.start, r.end, r.score) for r in detector.analyze(text)}
    assert len(full) == 10
    for cut in range(len(text) + 1):
        settled = cut - h
        seen = {(r.kind, r.start, r.end, r.score) for r in detector.analyze(text[:cut]) if r.end <= settled}
        assert seen == {f for f in full if f[2] <= settled}, cut


def test_dev_pool_findings_are_rare_and_of_expected_kinds(shared_data: Path) -> None:
    """Comments and prompts of the development pool: a few real phone numbers, e-mails and role-play
    character sheets (``姓名：…``), nothing else. Guards against recognizers that fire on prose."""
    det = PIIDetector(salt=SALT)
    with (shared_data / "dev_pool.jsonl").open(encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    kinds_found = Counter(f.kind for t in texts for f in det.detect(normalize(t)))
    assert len(texts) > 30_000
    assert sum(kinds_found.values()) <= len(texts) // 500, kinds_found  # at most 0.2 % of rows
    assert set(kinds_found) <= {"CN_MOBILE", "EMAIL", "PERSON_NAME", "CN_LANDLINE", "ADDRESS"}, kinds_found


@pytest.mark.parametrize(
    "number",
    ["幺三八零零一三八零零零", "一三八〇〇一三八〇〇〇", "壹叁捌零零壹叁捌零零零", "138零零一三八000"],
)
def test_phone_numbers_in_chinese_numerals(detector: PIIDetector, number: str) -> None:
    text = f"加我微信：{number}，谢谢"
    (f,) = detector.detect(normalize(text))
    assert (f.kind, text[f.start : f.end]) == ("CN_MOBILE", number)
    assert f.evidence_id == detector.detect(normalize("手机13800138000"))[0].evidence_id


@pytest.mark.parametrize("text", ["一二三四五六七八九十", "第一二三四五六七名", "三三两两，七七八八"])
def test_counting_in_chinese_numerals_is_not_a_number(detector: PIIDetector, text: str) -> None:
    assert kinds(detector, text) == []


def test_results_need_only_lookbehind_characters_of_left_context(detector: PIIDetector) -> None:
    """A stream re-checks a window that starts somewhere before its emitted edge: a result is the
    same as long as the window starts at least ``lookbehind()`` characters before the match."""
    text = normalize(
        "港澳通行证，号码写在下面了，请你查收一下：C12345678。我叫王小明，手机 138 0013 8000，"
        "往来台湾通行证 L12345678，台胞证号 12345678，住在北京市朝阳区建国路88号。"
    ).text
    lb = detector.lookbehind()
    # the context window and the guards, and the identifier before a part of a run of numbers
    assert lb == PIIConfig().context_window + 2 + 36
    full = detector.analyze(text)
    assert {r.kind for r in full} >= {"HK_MO_PERMIT", "PERSON_NAME", "CN_MOBILE", "TW_PERMIT", "ADDRESS"}
    for r in full:
        for w in range(max(0, r.start - 3 * lb), max(0, r.start - lb) + 1):
            got = {(x.kind, x.start + w, x.end + w, x.score) for x in detector.analyze(text[w:])}
            assert (r.kind, r.start, r.end, r.score) in got, (r, w)
    # and it is needed: with less left context the permit loses its context word
    permit = next(r for r in full if r.kind == "HK_MO_PERMIT")
    w = permit.start - 16
    assert "HK_MO_PERMIT" not in {x.kind for x in detector.analyze(text[w:])}
