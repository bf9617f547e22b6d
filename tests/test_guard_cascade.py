"""The cascade: the built-in classifier first, the guard model only for the classifier's grey band."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from pydantic import ValidationError

from hegui.config import HeguiConfig
from hegui.detectors.classifier import ClassifierDetector
from hegui.detectors.guard import (
    CascadeConfig,
    CascadeDetector,
    GuardConfig,
    MockBackend,
    MockConfig,
    MockRule,
    OpenAIBackend,
    detector_for,
    with_cascade,
)
from hegui.moderation import Moderator
from hegui.policy import Action, Policy, Rule
from hegui.text import normalize

# Scores the stub classifier gives: a marker word sets the score of the text that carries it.
SCORES = {"低分": 0.1, "灰色": 0.5, "偏高": 0.7, "危险": 0.95}
UNSAFE = "Safety: Unsafe\nCategories: Violent"


class StubModel:
    threshold = 0.6

    class featurizer:  # mirrors the attribute name of RiskModel
        @staticmethod
        def transform_one(text: str) -> tuple[str, None]:
            return text, None

    @staticmethod
    def score_vector(ind: str, val: None) -> float:
        return max((s for w, s in SCORES.items() if w in ind), default=0.0)

    @staticmethod
    def top_risk(ind: str, val: None) -> tuple[str, float]:
        return "A1h", 0.9


POLICY = Policy(rules=[Rule(risks=["A1", "A2"], action=Action.REFUSE)], default_action=Action.FLAG)


def make(rules: list[MockRule] | None = None, *, fail: bool = False, latency_ms: float = 0.0,
         low: float = 0.3, high: float = 0.9) -> tuple[Moderator, MockBackend, CascadeDetector]:
    clf = ClassifierDetector(model=StubModel(), threshold=0.6)  # type: ignore[arg-type]
    backend = MockBackend(MockConfig(rules=rules or [], fail=fail, latency_ms=latency_ms))
    cascade = CascadeDetector(classifier=clf, guard=detector_for(backend), low=low, high=high)
    return Moderator([cascade], POLICY), backend, cascade


def test_only_grey_band_texts_reach_the_guard() -> None:
    m, backend, cascade = make([MockRule(contains="灰色", output=UNSAFE)])
    assert m.check("低分的一句话", "output").action is Action.ALLOW
    assert backend.calls == 0
    v = m.check("危险的一句话", "output")
    assert v.action is Action.REFUSE and [f.detector for f in v.findings] == ["classifier"]
    assert backend.calls == 0, "above high the classifier's finding stands without the guard"
    v = m.check("灰色的一句话", "output")
    assert v.action is Action.REFUSE and [f.detector for f in v.findings] == ["guard"]
    assert backend.calls == 1
    assert cascade.routes == {"safe": 1, "classifier": 1, "guard": 1}


def test_guard_overrules_the_classifier_in_the_band() -> None:
    # 0.7 is above the classifier's own threshold (0.6): alone it would refuse; the guard says safe.
    m, backend, _ = make()
    v = m.check("偏高的一句话", "output")
    assert v.action is Action.ALLOW and v.findings == []
    assert backend.calls == 1
    alone = Moderator([ClassifierDetector(model=StubModel(), threshold=0.6)], POLICY)  # type: ignore[arg-type]
    assert alone.check("偏高的一句话", "output").action is Action.REFUSE


def test_guard_error_in_the_band_fails_closed_and_outside_it_costs_nothing() -> None:
    m, backend, _ = make(fail=True)
    v = m.check("灰色的一句话", "output")
    assert v.action is Action.REFUSE
    assert v.failed_detectors == ["cascade"]
    assert v.refusal == POLICY.error_refusal
    ok = m.check("低分的一句话", "output")
    assert ok.action is Action.ALLOW and ok.failed_detectors == []
    assert backend.calls == 1


def test_async_path_routes_the_same_and_waits_only_in_the_band() -> None:
    m, backend, _ = make([MockRule(contains="灰色", output=UNSAFE)], latency_ms=40)

    async def run() -> tuple[float, float, list[Action]]:
        t0 = time.perf_counter()
        v1 = await m.acheck("低分的一句话", "output")
        t1 = time.perf_counter()
        v2 = await m.acheck("灰色的一句话", "output")
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, [v1.action, v2.action]

    fast, slow, actions = asyncio.run(run())
    assert actions == [Action.ALLOW, Action.REFUSE]
    assert backend.calls == 1
    assert slow >= 0.04
    assert fast < 0.04


def test_cascade_in_a_stream_escalates_segments() -> None:
    m, backend, _ = make([MockRule(contains="灰色", output=UNSAFE)])
    sm = m.stream("output")
    text = "这是第一句低分的话，内容完全正常没有问题。这是第二句灰色的话，需要让守卫模型来判断一下。"
    stopped = False
    for i in range(0, len(text), 4):
        if sm.feed(text[i:i + 4]).stopped:
            stopped = True
            break
    if not stopped:
        stopped = sm.finish().stopped
    assert stopped
    assert backend.calls >= 1
    # Every text the guard saw was a grey-band segment.
    assert sm.final is not None and [f.detector for f in sm.final.findings] == ["guard"]


def test_guard_reads_the_question_with_an_answer() -> None:
    m, backend, _ = make()
    m.check("灰色的回答", "output", context="灰色的问题")
    m.check("灰色的回答", "output")
    assert backend.contexts == ["灰色的问题", None]


def test_openai_backend_sends_question_and_answer_as_a_chat() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": "Safety: Safe\nCategories: None"}}]})

    backend = OpenAIBackend("http://guard.test/v1", "guard", transport=httpx.MockTransport(handler))
    backend.classify("回答", "问题")
    backend.classify("只有文本")
    assert seen[0]["messages"] == [{"role": "user", "content": "问题"}, {"role": "assistant", "content": "回答"}]
    assert seen[1]["messages"] == [{"role": "user", "content": "只有文本"}]
    backend.close()


def test_from_config_wraps_classifier_and_guard_only_when_asked() -> None:
    on = HeguiConfig(guard=GuardConfig(enabled=True, backend="mock", cascade=CascadeConfig(enabled=True)))
    names = [d.name for d in Moderator.from_config(on).detectors]
    assert "cascade" in names and "classifier" not in names and "guard" not in names
    assert names.index("cascade") > names.index("lexicon")
    off = HeguiConfig(guard=GuardConfig(enabled=True, backend="mock"))
    names = [d.name for d in Moderator.from_config(off).detectors]
    assert "classifier" in names and "guard" in names and "cascade" not in names
    # Without a classifier there is nothing to cascade from: the guard runs on every text.
    dets = Moderator.from_config(on, only=["guard"]).detectors
    assert [d.name for d in with_cascade(dets, on.guard)] == ["guard"]


def test_cascade_bounds_are_validated() -> None:
    with pytest.raises(ValidationError, match="must not exceed"):
        CascadeConfig(low=0.8, high=0.5)


def test_mock_latency_applies_to_sync_calls() -> None:
    backend = MockBackend(MockConfig(latency_ms=30))
    t0 = time.perf_counter()
    backend.classify("文本")
    assert time.perf_counter() - t0 >= 0.03
    det = detector_for(backend)
    assert det.detect(normalize("")) == [] and backend.calls == 1
