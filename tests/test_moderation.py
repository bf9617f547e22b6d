"""Moderator and StreamModerator, with small detectors defined here so the tests pin the
moderation logic itself (hold-back, masking, fail-closed) independently of the real detectors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

import pytest

from hegui import masking
from hegui.detectors.base import Detector, Finding
from hegui.errors import UserError
from hegui.moderation import Moderator
from hegui.policy import Action, Policy, Rule
from hegui.text import NormalizedText, normalize


@dataclass
class WordDetector(Detector):
    """Exact words in the normalised text (a miniature lexicon)."""

    words: dict[str, str] | None = None
    name: ClassVar[str] = "words"

    def detect(self, text: NormalizedText) -> list[Finding]:
        out = []
        for word, risk in (self.words or {}).items():
            i = text.text.find(word)
            while i >= 0:
                s, e = text.to_original(i, i + len(word))
                out.append(Finding(risk, s, e, 1.0, self.name, f"words:{word}"))
                i = text.text.find(word, i + 1)
        return out

    def holdback(self) -> int:
        return max(len(w) for w in self.words or {"": ""})


@dataclass
class Broken(Detector):
    name: ClassVar[str] = "broken"

    def detect(self, text: NormalizedText) -> list[Finding]:
        raise RuntimeError("model file missing")


@dataclass
class SentenceFlag(Detector):
    """A segment detector that fires on a sentence containing a marker."""

    name: ClassVar[str] = "sentence"
    stream_mode: ClassVar = "segment"
    calls: int = 0

    def detect(self, text: NormalizedText) -> list[Finding]:
        self.calls += 1
        i = text.text.find("危险")
        return [Finding("A1d", 0, len(text.original), 0.9, self.name, "sentence")] if i >= 0 else []


POLICY = Policy(
    rules=[
        Rule(risks=["PI"], action=Action.MASK),
        Rule(risks=["A1a"], direction="input", action=Action.BLOCK, message="封禁"),
        Rule(risks=["A1", "A2"], action=Action.REFUSE, message="拒绝"),
    ],
    default_action=Action.FLAG,
)


def moderator(*extra: Detector, words: dict[str, str] | None = None) -> Moderator:
    words = words or {"赌博": "A1h", "颠覆": "A1a", "13800138000": "PI"}
    return Moderator([WordDetector(words=words), *extra], POLICY)


def test_allow_flag_refuse_block_mask() -> None:
    m = moderator()
    assert m.check("今天天气不错").action is Action.ALLOW
    v = m.check("我想去赌博", direction="output")
    assert v.action is Action.REFUSE and v.text == "拒绝" and not v.allowed
    assert [(f.risk, f.start, f.end) for f in v.findings] == [("A1h", 3, 5)]
    v = m.check("颠覆", direction="input")
    assert v.action is Action.BLOCK and v.escalate
    v = m.check("电话13800138000谢谢", direction="output")
    assert v.action is Action.MASK and v.allowed
    assert "13800138000" not in v.text and v.text.startswith("电话") and v.text.endswith("谢谢")
    assert "13800138000" not in v.redacted
    assert v.decision_id and v.decision_id != m.check("x").decision_id


def test_detector_failure_fails_closed_and_names_detector() -> None:
    m = moderator(Broken())
    v = m.check("今天天气不错")
    assert v.action is Action.REFUSE
    assert v.failed_detectors == ["broken"]
    assert v.text == POLICY.error_refusal


def test_fail_open_scene_passes_but_reports() -> None:
    policy = POLICY.model_copy(deep=True)
    policy.scenes["lab"] = policy.scenes["default"].model_copy(update={"fail_mode": "open"})
    m = Moderator([Broken()], policy)
    v = m.check("今天天气不错", scene="lab")
    assert v.action is Action.ALLOW and v.failed_detectors == ["broken"]


def test_unknown_scene_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown scene 'kids'"):
        moderator().check("x", scene="kids")


def test_acheck_matches_check() -> None:
    m = moderator()
    text = "不要赌博，打电话13800138000"
    a = asyncio.run(m.acheck(text, direction="output"))
    b = m.check(text, direction="output")
    assert (a.action, a.text, a.risks) == (b.action, b.text, b.risks)


def run_stream(m: Moderator, chunks: list[str]) -> tuple[str, bool]:
    sm = m.stream(direction="output")
    sent = ""
    for c in chunks:
        step = sm.feed(c)
        sent += step.emit
        if step.stopped:
            return sent, True
    step = sm.finish()
    sent += step.emit
    return sent, step.stopped


def splits(text: str) -> list[list[str]]:
    out = [[text], list(text)]
    for i in range(1, len(text)):
        out.append([text[:i], text[i:]])
        for j in range(i + 1, len(text)):
            out.append([text[:i], text[i:j], text[j:]])
    return out


@pytest.mark.parametrize("word", ["赌博", "赌 博", "赌*博", "赌\u200b博", "赌" + " " * 30 + "博", "赌 * - 博"])
def test_stream_never_leaks_a_word_split_anywhere(word: str) -> None:
    m = moderator()
    text = f"好的，下面告诉你怎么{word}赢钱。"
    for chunks in splits(text):
        sent, stopped = run_stream(m, chunks)
        assert stopped, chunks
        assert "赌博" not in normalize(sent).text, (chunks, sent)
        assert "赌" not in sent.split("怎么")[-1], (chunks, sent)


def test_stream_masks_pii_in_place_and_keeps_the_rest() -> None:
    m = moderator()
    text = "请拨打13800138000咨询，谢谢。" * 3
    for chunks in ([text], list(text), [text[:7], text[7:20], text[20:]]):
        sent, stopped = run_stream(m, chunks)
        assert not stopped
        assert "13800138000" not in sent
        assert sent == text.replace("13800138000", masking.mask("13800138000", [Finding("PI", 0, 11, 1.0, "w", "w")]))


def test_stream_clean_text_is_sent_whole_and_early() -> None:
    m = moderator()
    text = "这是一段很长的普通回答，" * 10
    sm = m.stream()
    early = sm.feed(text).emit
    assert len(early) >= len(text) - m.holdback() - 2  # only the hold-back is kept
    rest = sm.finish()
    assert early + rest.emit == text
    assert rest.verdict is not None and rest.verdict.action is Action.ALLOW


def test_stream_segment_detector_stops_after_sentence() -> None:
    seg = SentenceFlag()
    m = moderator(seg)
    sm = m.stream()
    first = sm.feed("第一句话是完全正常的内容，没有任何问题的。")
    assert not first.stopped
    step = sm.feed("第二句话非常危险，应当被拦截下来才对的内容。")
    assert step.stopped and step.verdict is not None
    assert step.verdict.action is Action.REFUSE and step.verdict.text == "拒绝"
    assert seg.calls >= 1
    assert sm.feed("more").stopped  # nothing more once stopped


def test_stream_detector_failure_stops() -> None:
    m = moderator(Broken())
    sm = m.stream()
    step = sm.feed("正常内容")
    assert step.stopped and step.emit == ""
    assert step.verdict is not None and step.verdict.failed_detectors == ["broken"]


def test_async_stream_matches_sync() -> None:
    m = moderator(SentenceFlag())
    text = "正常开头的一句话，内容完全没有问题的啊。然后说赌博"

    async def go() -> tuple[str, bool]:
        sm = m.stream()
        sent = ""
        for ch in text:
            step = await sm.afeed(ch)
            sent += step.emit
            if step.stopped:
                return sent, True
        step = await sm.afinish()
        return sent + step.emit, step.stopped

    sent, stopped = asyncio.run(go())
    assert stopped and "赌博" not in sent
    assert (sent, stopped) == run_stream(m, list(text))


def test_stream_rescans_what_context_detectors_read() -> None:
    """A permit number counts as PII only after a context word up to 24 characters earlier; the
    stream must re-read that much sent text so it masks what the whole check masks."""
    from hegui.config import load_config

    m = Moderator.from_config(load_config(None, environ={}))
    text = "港澳通行证，号码写在下面了，请你查收一下：C12345678。谢谢你的帮助，祝你一切顺利。"
    whole = m.check(text, direction="output")
    assert whole.action is Action.MASK and "C12345678" not in whole.text
    sent, stopped = run_stream(m, list(text))
    assert not stopped
    assert "C12345678" not in sent
    assert sent == whole.text
