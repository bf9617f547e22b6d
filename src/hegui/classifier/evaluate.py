"""Detector evaluation: precision, recall, F1 and false-positive rate, overall and per group.

Any judge works: a function from an example to an :class:`Outcome` (flagged or not, the risks
reported, the time taken). ``hegui eval-detector`` judges with the :class:`~hegui.moderation.Moderator`
("flagged" = the verdict is not *allow*); the classifier's training report judges with the model.
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hegui import taxonomy
from hegui.classifier.data import Example
from hegui.classifier.train import metrics_from_counts


@dataclass(frozen=True, slots=True)
class Outcome:
    flagged: bool
    risks: tuple[str, ...] = ()
    seconds: float = 0.0
    detector_ms: dict[str, float] = field(default_factory=dict)
    action: str = ""
    failed: tuple[str, ...] = ()
    """Detectors that failed on this case (the verdict then follows the policy's fail mode)."""


Judge = Callable[[Example], Outcome]


@dataclass
class _Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, label: int, flagged: bool) -> None:
        if label and flagged:
            self.tp += 1
        elif label:
            self.fn += 1
        elif flagged:
            self.fp += 1
        else:
            self.tn += 1

    def metrics(self) -> dict[str, float | int]:
        return metrics_from_counts(self.tp, self.fp, self.fn, self.tn)


@dataclass
class Evaluation:
    """Accumulates outcomes; :meth:`report` gives the JSON-ready summary."""

    slowest_n: int = 10
    overall: _Counts = field(default_factory=_Counts)
    groups: dict[str, dict[str, _Counts]] = field(
        default_factory=lambda: {"source": defaultdict(_Counts), "kind": defaultdict(_Counts),
                                 "risk": defaultdict(_Counts)})
    risk_hits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Per risk code: unsafe rows flagged with a matching risk (right category or code)."""
    chars: int = 0
    seconds: float = 0.0
    detector_ms: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    actions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _slow: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    _seq: int = 0

    def add(self, ex: Example, out: Outcome) -> None:
        self.overall.add(ex.label, out.flagged)
        self.groups["source"][ex.source or "(none)"].add(ex.label, out.flagged)
        self.groups["kind"][ex.kind or "(none)"].add(ex.label, out.flagged)
        for code in ex.codes:
            self.groups["risk"][code].add(ex.label, out.flagged)
            if ex.label and out.flagged and any(taxonomy.matches(code, r) for r in out.risks):
                self.risk_hits[code] += 1
        n = len(ex.text)
        self.chars += n
        self.seconds += out.seconds
        for name, ms in out.detector_ms.items():
            self.detector_ms[name] += ms
        if out.action:
            self.actions[out.action] += 1
        for name in out.failed:
            self.failed[name] += 1
        self._seq += 1
        case = {"id": ex.id, "source": ex.source, "chars": n, "ms": round(out.seconds * 1000, 3),
                "label": ex.label, "flagged": out.flagged}
        item = (out.seconds, self._seq, case)
        if self.slowest_n <= 0:
            return
        if len(self._slow) < self.slowest_n:
            heapq.heappush(self._slow, item)
        elif item[:2] > self._slow[0][:2]:
            heapq.heapreplace(self._slow, item)

    def report(self) -> dict[str, Any]:
        per_k = 1000.0 / self.chars if self.chars else 0.0
        groups: dict[str, Any] = {}
        for gname, table in self.groups.items():
            groups[gname] = {}
            for key in sorted(table):
                m = table[key].metrics()
                if gname == "risk" and table[key].tp:
                    m["risk_match"] = round(self.risk_hits[key] / table[key].tp, 4)
                groups[gname][key] = m
        c = self.overall
        return {
            "overall": c.metrics(),
            "confusion": {"labels": ["unsafe", "safe"],
                          "matrix": [[c.tp, c.fn], [c.fp, c.tn]],
                          "note": "rows: true label; columns: flagged, not flagged"},
            **groups,
            "actions": dict(sorted(self.actions.items())),
            "failed": dict(sorted(self.failed.items())),
            "speed": {
                "cases": c.tp + c.fp + c.fn + c.tn,
                "chars": self.chars,
                "seconds": round(self.seconds, 3),
                "ms_per_1k_chars": round(self.seconds * 1000 * per_k, 4),
                "detector_ms_per_1k_chars": {k: round(v * per_k, 4) for k, v in sorted(self.detector_ms.items())},
            },
            "slowest": [case for _, _, case in sorted(self._slow, key=lambda t: (-t[0], t[1]))],
        }


def evaluate(examples: Iterable[Example], judge: Judge, *, slowest_n: int = 10,
             on_case: Callable[[], None] | None = None) -> dict[str, Any]:
    ev = Evaluation(slowest_n=slowest_n)
    for ex in examples:
        ev.add(ex, judge(ex))
        if on_case is not None:
            on_case()
    return ev.report()


def model_judge(model: Any, threshold: float) -> Judge:
    """Judge with a :class:`~hegui.classifier.model.RiskModel` alone (for training reports)."""

    def judge(ex: Example) -> Outcome:
        t0 = time.perf_counter()
        pred = model.predict(ex.text)
        return Outcome(flagged=pred.score >= threshold, risks=(pred.risk,), seconds=time.perf_counter() - t0)

    return judge
