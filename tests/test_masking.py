"""Masking operators, merging of overlapping findings, offsets after masking, and the token vault."""

from __future__ import annotations

import itertools
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from stdnum import luhn
from stdnum.cn import ric, uscc

from hegui.detectors.base import Finding
from hegui.detectors.pii import PIIConfig, PIIDetector
from hegui.masking import (
    DEFAULT_TAGS,
    TOKEN_RE,
    TokenVault,
    VaultError,
    canonical_value,
    mask,
    mask_spans,
    merge_findings,
    value_digest,
)
from hegui.text import normalize

SALT = b"mask-test-salt"
RID = "11010519491231002" + ric.calc_check_digit("11010519491231002" + "0")


def pii(text: str) -> list[Finding]:
    return PIIDetector(salt=SALT).detect(normalize(text))


def finding(text: str, value: str, kind: str, risk: str = "PI", score: float = 1.0) -> Finding:
    start = text.index(value)
    return Finding(risk, start, start + len(value), score, "test", f"test:{kind}", kind)


@pytest.fixture
def vault(tmp_path: Path) -> TokenVault:
    v = TokenVault(tmp_path / "vault.sqlite3", salt=SALT)
    yield v
    v.close()


# -- redact ------------------------------------------------------------------------------------


def test_redact_uses_type_tags() -> None:
    text = f"身份证{RID}，手机138 0013 8000。"
    assert mask(text, pii(text), "redact") == f"身份证[{DEFAULT_TAGS['CN_RESIDENT_ID']}]，手机[手机号]。"


def test_redact_tags_are_configurable_and_fall_back_for_other_kinds() -> None:
    text = "卖冰毒加微信13800138000"
    findings = [finding(text, "冰毒", "drugs", risk="A1h"), *pii(text)]
    assert mask(text, findings, "redact") == "卖[已屏蔽]加微信[手机号]"
    assert mask(text, findings, "redact", tags={"A1h": "违禁", "CN_MOBILE": "电话"}) == "卖[违禁]加微信[电话]"


# -- partial -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (RID, RID[:6] + "********" + RID[-4:]),
        ("13800138000", "138****8000"),
        ("138 0013 8000", "138 **** 8000"),
        ("+86 13800138000", "+86 138****8000"),
        ("zhangsan@example.com", "z*******@example.com"),
        ("192.168.1.10", "192.168.*.*"),
    ],
)
def test_partial(value: str, expected: str) -> None:
    text = f"信息：{value}。"
    found = pii(text)
    assert len(found) == 1
    assert mask(text, found, "partial") == f"信息：{expected}。"


def test_partial_names_and_short_values() -> None:
    text = "姓名：张三 联系人：欧阳娜娜 收件人：王小明"
    assert mask(text, pii(text), "partial") == "姓名：张* 联系人：欧**娜 收件人：王*明"
    short = "ab"
    assert mask(short, [finding(short, "ab", "X")], "partial") == "**"
    one = "a"
    assert mask(one, [finding(one, "a", "X")], "partial") == "*"


def test_partial_never_keeps_the_whole_value() -> None:
    for value in ("abc", "abcd", "张三丰"):
        text = f"[{value}]"
        out = mask(text, [finding(text, value, "CN_RESIDENT_ID")], "partial")
        assert "*" in out and out != text


# -- hash --------------------------------------------------------------------------------------


def test_hash_matches_evidence_id() -> None:
    text = "手机：138-0013-8000"
    (f,) = pii(text)
    out = mask(text, [f], "hash", salt=SALT)
    digest = f.evidence_id.rsplit(":", 1)[1]
    assert out == f"手机：<PI:CN_MOBILE:{digest}>"
    assert "8000" not in out


def test_hash_is_salted_and_canonical() -> None:
    a = value_digest("CN_MOBILE", "138 0013 8000", SALT)
    assert a == value_digest("CN_MOBILE", "+86 13800138000", SALT)
    assert a == value_digest("CN_MOBILE", "１３８００１３８０００", SALT)
    assert a != value_digest("CN_MOBILE", "13800138000", b"other")
    assert a != value_digest("CN_MOBILE", "13800138001", SALT)
    assert canonical_value("CN_RESIDENT_ID", RID.lower()) == RID.upper()
    assert canonical_value("EMAIL", "A@B.COM") == "a@b.com"
    assert canonical_value("CN_LANDLINE", "+86 10 6234 5678") == "01062345678"
    assert canonical_value("CN_MOBILE", "幺三八零零一三八零零零") == "13800138000"
    assert canonical_value("PERSON_NAME", "王一三") == "王一三"  # numerals only fold in numbers


# -- canonical values: exactly the separators each recognizer accepts ---------------------------

CARD = "622202" + "3" * 12 + luhn.calc_check_digit("622202" + "3" * 12)
CODE = "91110000600037341" + uscc.calc_check_digit("91110000600037341" + "0")
# (kind, the bare value, the groups it is written in, context before it)
GROUPED = [
    ("CN_RESIDENT_ID", RID, (6, 8, 4), "身份证"),
    ("CN_MOBILE", "13800138000", (3, 4, 4), "手机"),
    ("CN_LANDLINE", "075588886666", (4, 4, 4), "电话"),
    ("BANK_CARD", CARD, (4, 4, 4, 4, 3), "卡号"),
    ("CN_USCC", CODE, (4, 4, 4, 4, 2), "统一社会信用代码"),
    ("PASSPORT", "E12345678", (3, 3, 3), "护照"),  # dashes count between digits only
    ("HK_MO_PERMIT", "C12345678", (3, 3, 3), "港澳通行证"),
    ("TW_PERMIT", "L12345678", (3, 3, 3), "往来台湾通行证"),
]
ACCEPTED = [" ", "-", ".", "\u3000", "\u00a0", "－", "．", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014",
            "\u2015", "\u2212"]  # fmt: skip
"""The separators the number recognizers accept (tests/test_pii_grouped.py), as written."""
NOT_ACCEPTED = ["/", "_", ",", "\t", "*", "·", "~", "|"]


def _grouped(value: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for n in sizes:
        out.append(value[i : i + n])
        i += n
    return sep.join(out)


@pytest.mark.parametrize(("kind", "value", "sizes", "context"), GROUPED, ids=[g[0] for g in GROUPED])
def test_canonical_value_strips_exactly_the_separators_the_recognizer_accepts(
    kind: str, value: str, sizes: tuple[int, ...], context: str
) -> None:
    bare = canonical_value(kind, value)
    det = PIIDetector(salt=SALT)
    (plain,) = det.detect(normalize(context + value))
    for sep in ACCEPTED:
        grouped = _grouped(value, sizes, sep)
        assert canonical_value(kind, grouped) == bare, (kind, grouped)
        # the detector reads it as the same value: same evidence id, same hash token
        text = context + grouped
        (f,) = det.detect(normalize(text))
        assert (f.kind, text[f.start : f.end]) == (kind, grouped)
        assert f.evidence_id == plain.evidence_id, (kind, grouped)
        assert mask(text, [f], "hash", salt=SALT) == mask(context + value, [plain], "hash", salt=SALT)
    for sep in NOT_ACCEPTED:  # no recognizer reads these as separators: they stay in the value
        assert canonical_value(kind, _grouped(value, sizes, sep)) != bare, (kind, sep)


def test_canonical_value_of_plates_and_phones() -> None:
    for plate in [
        "京A12345",
        "京A·12345",
        "京A•12345",
        "京A・12345",
        "京A 12345",
        "京A-12345",
        "京A.12345",
        "京a．12345",
    ]:
        assert canonical_value("CN_PLATE", plate) == "京A12345", plate
    assert canonical_value("CN_PLATE", "京A/12345") != "京A12345"
    for phone in ["+86 138.0013.8000", "(+86) 138–0013–8000", "0086-138-0013-8000", "86 138 0013 8000"]:
        assert canonical_value("CN_MOBILE", phone) == "13800138000", phone
    for phone in ["(0755) 8888.6666", "0755—8888—6666", "+86.755.8888.6666", "0755 - 8888 6666"]:
        assert canonical_value("CN_LANDLINE", phone) == "075588886666", phone
    assert canonical_value("CN_MOBILE", "138/0013/8000") != "13800138000"
    assert canonical_value("TW_PERMIT", "1234567890(B)") == canonical_value("TW_PERMIT", "1234 5678 90 (b)")


def test_canonical_value_ignores_invisible_characters() -> None:
    """The normaliser deletes zero-width spaces and soft hyphens before the detector sees the text,
    so an ID written with them is the same ID (same evidence id, same allow-list entry)."""
    zw = "\u200b".join([RID[:6], RID[6:14], RID[14:]])
    assert canonical_value("CN_RESIDENT_ID", zw) == RID
    assert canonical_value("CN_MOBILE", "138\u00ad0013\u00ad8000") == "13800138000"
    det = PIIDetector(salt=SALT)
    assert (
        det.detect(normalize("身份证" + zw))[0].evidence_id
        == det.detect(normalize("身份证" + RID))[0].evidence_id
    )


def test_allow_list_matches_every_accepted_form() -> None:
    det = PIIDetector(salt=SALT, config=PIIConfig(allow_list=["400 810 8888", "138.0013.8000", CARD]))
    for text in ["热线 138 0013 8000", "热线 138.0013.8000", "热线 138–0013–8000", "热线 +86 13800138000"]:
        assert det.detect(normalize(text)) == [], text
    dotted = ".".join(CARD[i : i + 4] for i in range(0, 19, 4))
    dashed = "\u2014".join(CARD[i : i + 4] for i in range(0, 19, 4))
    for text in [f"卡号{dotted}", f"卡号{dashed}", f"卡号{CARD}"]:
        assert det.detect(normalize(text)) == [], text
    assert [f.kind for f in det.detect(normalize("手机 13900139000"))] == ["CN_MOBILE"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("138.0013.8000", "138.****.8000"),
        ("138–0013–8000", "138–****–8000"),
        ("6222.0233.3333.3333.336", "6222.****.****.***3.336"),
        (f"{RID[:6]}.{RID[6:14]}.{RID[14:]}", f"{RID[:6]}.********.{RID[14:]}"),
    ],
)
def test_partial_keeps_every_accepted_separator(value: str, expected: str) -> None:
    text = f"号码：{value}。"
    assert mask(text, pii(text), "partial") == f"号码：{expected}。"


def test_hash_without_salt_is_an_error() -> None:
    text = "手机13800138000"
    with pytest.raises(ValueError, match="salt"):
        mask(text, pii(text), "hash")


# -- operator maps, keep, bad operators ------------------------------------------------------


def test_operator_map_by_kind_risk_and_default(vault: TokenVault) -> None:
    text = f"身份证{RID} 手机13800138000 邮箱a@b.com 毒品"
    findings = [*pii(text), finding(text, "毒品", "drugs", risk="A1h")]
    ops = {"CN_RESIDENT_ID": "token", "CN_MOBILE": "partial", "A1h": "keep", "*": "redact"}
    out = mask(text, findings, ops, salt=SALT, vault=vault)
    assert re.fullmatch(r"身份证⟦PI_[0-9a-f]{8}⟧ 手机138\*\*\*\*8000 邮箱\[邮箱\] 毒品", out), out


def test_pii_config_operator_map() -> None:
    cfg = PIIConfig(mask_operator="partial", entity_operators={"EMAIL": "redact"})
    text = "手机13800138000 邮箱a@b.com"
    assert mask(text, pii(text), cfg.operators()) == "手机138****8000 邮箱[邮箱]"


def test_unknown_operator_is_an_error() -> None:
    text = "手机13800138000"
    with pytest.raises(ValueError, match="unknown mask operator"):
        mask(text, pii(text), "scramble")


def test_span_outside_text_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        mask("abc", [Finding("PI", 1, 10, 1.0, "t", "t", "X")], "redact")


# -- merging and offsets -------------------------------------------------------------------


def test_overlapping_findings_are_merged_into_one_replacement() -> None:
    text = "联系13800138000吧"
    phone = finding(text, "13800138000", "CN_MOBILE", score=0.9)
    inner = finding(text, "0013", "drugs", risk="A1h", score=1.0)
    tail = Finding("PI", phone.end - 2, phone.end + 1, 0.5, "t", "t", "X")
    merged = merge_findings([phone, inner, tail])
    assert [(f.start, f.end, f.kind) for f in merged] == [(phone.start, tail.end, "drugs")]
    assert mask(text, [phone, inner, tail], "redact") == "联系[已屏蔽]"


def test_adjacent_findings_stay_separate() -> None:
    text = "abcdef"
    a = Finding("PI", 0, 3, 1.0, "t", "t", "EMAIL")
    b = Finding("PI", 3, 6, 1.0, "t", "t", "CN_MOBILE")
    assert mask(text, [b, a], "redact") == "[邮箱][手机号]"


def test_empty_and_no_findings() -> None:
    assert mask("不变", [], "redact") == "不变"
    assert mask("不变", [Finding("PI", 1, 1, 1.0, "t", "t", "X")], "redact") == "不变"


def test_offsets_after_masking() -> None:
    text = f"A{RID}B13800138000C a@b.com"
    result = mask_spans(text, pii(text), {"*": "redact", "CN_MOBILE": "partial"})
    assert result.text == "A[身份证号]B138****8000C [邮箱]"
    for span in result.spans:
        replaced = result.text[span.new_start : span.new_end]
        assert replaced.startswith("[") or "*" in replaced
        assert text[span.start : span.end] not in result.text
    # text between replacements is unchanged and at the reported positions
    spans = result.spans
    for prev, nxt in itertools.pairwise(spans):
        assert result.text[prev.new_end : nxt.new_start] == text[prev.end : nxt.start]
    assert [s.kind for s in spans] == ["CN_RESIDENT_ID", "CN_MOBILE", "EMAIL"]


def test_mask_after_normalisation_covers_the_original_characters() -> None:
    text = "手机：１３８ ００１３ ８０００！"
    assert mask(text, pii(text), "redact") == "手机：[手机号]！"


# -- token vault -------------------------------------------------------------------------------


def test_tokens_are_deterministic_and_reversible(vault: TokenVault) -> None:
    t1 = vault.tokenize("138 0013 8000", "CN_MOBILE")
    t2 = vault.tokenize("+86 13800138000", "CN_MOBILE")
    t3 = vault.tokenize("13900139000", "CN_MOBILE")
    assert TOKEN_RE.fullmatch(t1)
    assert t1 == t2 != t3
    assert vault.detokenize(t1) == "13800138000"
    assert vault.detokenize(t3) == "13900139000"
    assert len(vault) == 2


def test_token_operator_and_detokenize_text(vault: TokenVault) -> None:
    text = f"身份证{RID}，手机13800138000，再说一遍13800138000"
    out = mask(text, pii(text), "token", vault=vault)
    tokens = TOKEN_RE.findall(out)
    assert len(tokens) == 3 and tokens[1] == tokens[2] != tokens[0]
    assert RID not in out and "13800138000" not in out
    assert vault.detokenize_text(out) == text
    assert vault.detokenize_text("未知⟦PI_00000000⟧") == "未知⟦PI_00000000⟧"


def test_token_operator_without_vault_is_an_error() -> None:
    text = "手机13800138000"
    with pytest.raises(ValueError, match="TokenVault"):
        mask(text, pii(text), "token")


def test_unknown_token(vault: TokenVault) -> None:
    with pytest.raises(VaultError, match="unknown token"):
        vault.detokenize("⟦PI_deadbeef⟧")


def test_vault_persists_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "vault.sqlite3"
    with TokenVault(path, salt=SALT) as v:
        token = v.tokenize("a@b.com", "EMAIL")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with TokenVault(path, salt=SALT) as v:
        assert v.detokenize(token) == "a@b.com"
        assert v.tokenize("A@B.com", "EMAIL") == token


def test_forget_deletes_the_value(vault: TokenVault) -> None:
    token = vault.tokenize("13800138000", "CN_MOBILE")
    assert vault.forget("138-0013-8000", "CN_MOBILE")
    assert not vault.forget("138-0013-8000", "CN_MOBILE")
    with pytest.raises(VaultError):
        vault.detokenize(token)


def test_token_collisions_get_another_token(tmp_path: Path) -> None:
    with TokenVault(tmp_path / "v.sqlite3", salt=SALT) as v:
        first = v.tokenize("13800138000", "CN_MOBILE")
        # occupy the token the next value would get, as a colliding value would
        key, _ = v._key("13900139000", "CN_MOBILE")
        v._db.execute(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, 0)", (f"⟦PI_{key[:8]}⟧", "other-key", "CN_MOBILE", "x")
        )
        second = v.tokenize("13900139000", "CN_MOBILE")
        assert second not in (first, f"⟦PI_{key[:8]}⟧")
        assert v.detokenize(second) == "13900139000"


def test_vault_is_thread_safe(vault: TokenVault) -> None:
    results: list[str] = []

    def work() -> None:
        for i in range(50):
            results.append(vault.tokenize(f"1380013{i:04d}", "CN_MOBILE"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 50 and len(vault) == 50


def test_unopenable_vault_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(VaultError, match="cannot open token vault"):
        TokenVault(blocker / "vault.sqlite3", salt=SALT)


def test_open_vault_from_config(tmp_path: Path) -> None:
    assert PIIConfig().open_vault(tmp_path) is None
    cfg = PIIConfig(vault_path="v.sqlite3", mask_operator="token")
    vault = cfg.open_vault(tmp_path, environ={"HEGUI_PII_SALT": "x"})
    assert vault is not None
    with vault:
        assert vault.path == tmp_path / "v.sqlite3"
