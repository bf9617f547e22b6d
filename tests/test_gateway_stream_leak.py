"""THE KEY TEST: nothing the lexicon or the PII detector catches ever reaches a streaming client.

The demo model says texts (via ``/say64``, so input moderation does not see them) that contain
lexicon words and valid 居民身份证 numbers, shifted so the demo tokenizer splits them at every
position, and disguised (separators, zero-width characters, traditional characters, full-width
digits). Everything the client received is concatenated, normalised, and searched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_support import TEST_KEY, add_test_keys, ledger_for, say64, serve, write_config
from hegui.gateway.app import create_app
from hegui.gateway.demo_upstream import tokenize
from hegui.moderation import Moderator
from hegui.text import normalize

WORDS = {"赌博": "A1h", "冰毒": "A1h", "六合彩": "A1h"}
FILLER = "今天我们聊聊天气和城市的公园，"
TAIL = "，然后继续说别的事情，一直说到结束为止。"


def resident_id(region: str = "110101", birth: str = "19900307", seq: str = "123") -> str:
    """A valid 18-digit 居民身份证 number (GB 11643 check digit)."""
    body = region + birth + seq
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


IDS = [resident_id(), resident_id("440305", "20011231", "456"), resident_id("310104", "19751010", "00" + "7")]


def word_disguises(word: str) -> list[str]:
    zw = "\u200b"
    out = [word, " ".join(word), "*".join(word), zw.join(word), ".".join(word)]
    if word == "赌博":
        out.append("賭博")  # traditional
    return out


def id_disguises(number: str) -> list[str]:
    full = "".join(chr(ord(c) + 0xFEE0) for c in number)
    return [number, full, "\u200b".join(number), "\u200c".join(number[:9]) + number[9:]]


class Env:
    def __init__(self, url: str, ledger: Any) -> None:
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0)
        self.ledger = ledger

    def stream(self, text: str) -> tuple[str, Any]:
        chunks = list(self.client.chat.completions.create(
            model="hegui-demo", messages=[{"role": "user", "content": say64(text)}], stream=True))
        received = "".join(c.choices[0].delta.content or "" for c in chunks)
        return received, chunks[-1]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    folder = tmp_path_factory.mktemp("leak")
    (folder / "words.tsv").write_text("".join(f"{w}\t{r}\n" for w, r in WORDS.items()), encoding="utf-8")
    cfg = write_config(folder, {
        "lexicon": {"builtin": False, "files": [{"path": "words.tsv"}]},
        # the /say64 prompts are base64, which the injection detector rightly finds suspicious
        "injection": {"enabled": False},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo"}],
    })
    moderator = Moderator.from_config(cfg)
    loaded = {d.name for d in moderator.detectors}
    assert {"lexicon", "pii"} <= loaded, f"the lexicon and PII detectors must be built from config; got {loaded}"
    with ledger_for("sqlite", folder, None) as ledger:
        add_test_keys(ledger)
        with serve(create_app(cfg, moderator=moderator, ledger=ledger)) as url:
            yield Env(url, ledger)


def shifted(secret: str, max_shift: int = 7) -> list[str]:
    return [FILLER[: len(FILLER) - k] + secret + TAIL for k in range(max_shift)]


def split_points(text: str, secret: str) -> set[int]:
    """Offsets inside ``secret`` at which the demo tokenizer cuts ``text``."""
    start = text.index(secret)
    cuts, pos = set(), 0
    for tok in tokenize(text):
        pos += len(tok)
        if start < pos < start + len(secret):
            cuts.add(pos - start)
    return cuts


def test_the_shifts_split_every_word_at_every_position() -> None:
    for word in WORDS:
        for disguised in word_disguises(word):
            seen: set[int] = set()
            for text in shifted(disguised):
                seen |= split_points(text, disguised)
            assert seen == set(range(1, len(disguised))), (disguised, seen)
    for number in IDS:
        seen = set()
        for text in shifted(number, 12):
            seen |= split_points(text, number)
        assert seen == set(range(1, len(number)))


def assert_no_word(received: str) -> None:
    norm = normalize(received).text
    for word in WORDS:
        assert word not in norm, f"{word!r} leaked in {received!r}"


@pytest.mark.parametrize("word", list(WORDS))
def test_lexicon_words_never_reach_the_client(env: Env, word: str) -> None:
    for disguised in word_disguises(word):
        for text in shifted(disguised):
            received, last = env.stream(text)
            assert_no_word(received)
            assert last.choices[0].finish_reason == "content_filter", (disguised, received)
            ext = last.model_extra["hegui"]
            assert ext["retract"] is True and ext["risks"] == ["A1h"]
            shown = received[: len(received) - len(ext["replacement"])]
            assert text.startswith(shown) and len(shown) < text.index(disguised) + len(disguised)


def digits_of(text: str) -> str:
    return re.sub(r"[^0-9Xx]", "", normalize(text).text)


@pytest.mark.parametrize("number", IDS)
def test_resident_ids_never_reach_the_client(env: Env, number: str) -> None:
    for disguised in id_disguises(number):
        for text in shifted(disguised, 12):
            received, last = env.stream(text)
            assert number not in digits_of(received), f"{number} leaked in {received!r}"
            assert received.startswith(FILLER[:3]) and received.endswith(TAIL), received  # masked, not cut
            assert last.choices[0].finish_reason == "stop"
            out = last.model_extra["hegui"]["decisions"]["output"]
            row = env.ledger.decisions(decision_id=out, kind="decision")[0]
            assert row.action == "mask" and "PI" in row.risks
            assert number not in digits_of(row.excerpt)


def test_a_clean_text_streams_through_unchanged(env: Env) -> None:
    text = FILLER * 5 + TAIL
    received, last = env.stream(text)
    assert received == text and last.choices[0].finish_reason == "stop"


# -- identifiers in groups (issue 16): every kind, the way forms print them ------------------------


def _grouped_identifiers() -> list[tuple[str, str]]:
    """``(context, value)``: a grouped identifier of every kind, after its context word where the
    kind needs one (permits and passports have no checksum; USCC in groups needs one too)."""
    from stdnum import luhn
    from stdnum.cn import uscc

    rid, rid2, rid3 = IDS
    card = "622202" + "3" * 12
    card += luhn.calc_check_digit(card)
    code = "91110000600037341"
    code += uscc.calc_check_digit(code + "0")
    return [
        ("身份证", " ".join(rid[i : i + 4] for i in range(0, 18, 4))),
        ("", "-".join(rid2[i : i + 6] for i in range(0, 18, 6))),
        ("证件", "\u2014".join([rid3[:6], rid3[6:14], rid3[14:]])),
        ("号码", " ".join(rid)),
        ("旧身份证", "110105 780928 946"),
        ("手机", "1380 013 8000"),
        ("电话", "138.0013.8000"),
        ("", "+86 138\u20130013\u20138000"),
        ("办公电话", "0755.8888.6666"),
        ("卡号", ".".join(card[i : i + 4] for i in range(0, 19, 4))),
        ("统一社会信用代码", " ".join(code[i : i + 4] for i in range(0, 18, 4))),
        ("护照", "E 1234 5678"),
        ("港澳通行证", "C 1234 5678"),
        ("回乡证", "H 1234 5678 01"),
        ("台胞证", "1234 5678"),
        ("往来台湾通行证", "L-1234-5678"),
        ("车牌", "京A-12345"),
    ]


GROUPED = _grouped_identifiers()
GROUPED_SHIFTS = 12  # 5 already cut every value at every position; more give other cuts too


def test_the_shifts_split_every_grouped_identifier_at_every_position() -> None:
    for context, value in GROUPED:
        seen: set[int] = set()
        for text in shifted(context + value, GROUPED_SHIFTS):
            seen |= split_points(text, value)
        assert seen == set(range(1, len(value))), (value, sorted(set(range(1, len(value))) - seen))


@pytest.mark.parametrize(("context", "value"), GROUPED, ids=[v for _, v in GROUPED])
def test_grouped_identifiers_never_reach_the_client(env: Env, context: str, value: str) -> None:
    assert not re.search(r"\d", FILLER + context + TAIL)  # every digit is the identifier's
    for text in shifted(context + value, GROUPED_SHIFTS):
        received, last = env.stream(text)
        assert not re.search(r"\d", normalize(received).text), f"{value!r} leaked in {received!r}"
        before = text[: text.index(value)]
        assert received.startswith(before) and received.endswith(TAIL), received  # masked, not cut
        assert last.choices[0].finish_reason == "stop"
        out = last.model_extra["hegui"]["decisions"]["output"]
        row = env.ledger.decisions(decision_id=out, kind="decision")[0]
        assert row.action == "mask" and "PI" in row.risks
        assert not re.search(r"\d", normalize(row.excerpt).text), row.excerpt
        if value.startswith("京"):
            assert "京A" not in received and "京A" not in row.excerpt


# -- identifiers next to each other: a run of numbers split into identifiers ------------------------


def _adjacent_identifiers() -> list[tuple[str, str]]:
    """``(context, value)``: two or three identifiers with one space (or hyphen) between them."""
    from stdnum import luhn

    rid, rid2, _ = IDS
    card = "622202" + "3" * 12
    card += luhn.calc_check_digit(card)
    card2 = "621700" + "5" * 12
    card2 += luhn.calc_check_digit(card2)

    def fours(number: str) -> str:
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4))

    return [
        ("电话", "13800138000 13900139000"),
        ("手机", "138 0013 8000 139 0013 9000 186 1234 5678"),
        ("", "13800138000-13900139000"),
        ("电话", "010-62345678 021-62345678"),
        ("卡号", f"{fours(card)} {fours(card2)}"),
        ("", f"{rid} 13800138000 {rid2}"),
        ("联系", f"13800138000 {fours(card)} 0755-88886666"),
    ]


ADJACENT = _adjacent_identifiers()
ADJACENT_SHIFTS = 16


def test_the_shifts_split_every_adjacent_run_at_every_position() -> None:
    for context, value in ADJACENT:
        seen: set[int] = set()
        for text in shifted(context + value, ADJACENT_SHIFTS):
            seen |= split_points(text, value)
        assert seen == set(range(1, len(value))), (value, sorted(set(range(1, len(value))) - seen))


@pytest.mark.parametrize(("context", "value"), ADJACENT, ids=[v for _, v in ADJACENT])
def test_adjacent_identifiers_never_reach_the_client(env: Env, context: str, value: str) -> None:
    """Over HTTP with the OpenAI client, every cut: none of the digits reach the client or the ledger."""
    assert not re.search(r"\d", FILLER + context + TAIL)  # every digit is an identifier's
    for text in shifted(context + value, ADJACENT_SHIFTS):
        received, last = env.stream(text)
        assert not re.search(r"\d", normalize(received).text), f"{value!r} leaked in {received!r}"
        before = text[: text.index(value)]
        assert received.startswith(before) and received.endswith(TAIL), received  # masked, not cut
        assert last.choices[0].finish_reason == "stop"
        out = last.model_extra["hegui"]["decisions"]["output"]
        row = env.ledger.decisions(decision_id=out, kind="decision")[0]
        assert row.action == "mask" and "PI" in row.risks
        assert not re.search(r"\d", normalize(row.excerpt).text), row.excerpt
