"""Prometheus metrics of one gateway app, in a registry of its own.

With several workers (``hegui serve --workers N``) each worker is a process with its own counters;
prometheus_client's multiprocess mode adds them up. ``hegui serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before the workers start; ``GET /metrics`` then
aggregates the files of all workers (histograms and counters; no gauges are used, so nothing
needs ``mark_process_dead``).

The case gauges (``hegui_cases_open``, ``hegui_cases_overdue``) are not per worker: they are read
from the database at scrape time (at most every :data:`CASE_GAUGE_SECONDS`, in a worker thread) and
appended to the exposition, so every worker answers the same numbers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger("hegui.gateway")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

CASE_GAUGE_SECONDS = 5.0
CASE_KINDS = ("complaint", "report", "pi_request")

_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("hegui_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.request_seconds = Histogram(
            "hegui_request_seconds", "Time to the end of the response, by route", ["route"],
            buckets=_SLOW_BUCKETS, registry=r,
        )
        self.decisions = Counter(
            "hegui_decisions", "Moderation decisions by direction, action and risk (none = no finding)",
            ["direction", "action", "risk"], registry=r,
        )
        self.moderation_seconds = Histogram(
            "hegui_moderation_seconds", "Time spent in moderation per check", ["direction"],
            buckets=_FAST_BUCKETS, registry=r,
        )
        self.ledger_seconds = Histogram(
            "hegui_ledger_write_seconds", "Time to commit one decision record", buckets=_FAST_BUCKETS, registry=r,
        )
        self.upstream_seconds = Histogram(
            "hegui_upstream_seconds", "Upstream time to response headers (stream) or body", ["upstream"],
            buckets=_SLOW_BUCKETS, registry=r,
        )
        self.upstream_errors = Counter(
            "hegui_upstream_errors", "Failed upstream attempts by upstream and kind", ["upstream", "kind"], registry=r,
        )
        self.fail_closed = Counter(
            "hegui_fail_closed", "Requests refused because moderation or the ledger failed", ["reason"], registry=r,
        )
        self.fail_open = Counter(
            "hegui_fail_open", "Requests let through unchecked in a fail-open scene", ["reason"], registry=r,
        )
        self.stream_cuts = Counter("hegui_stream_cuts", "Streams cut by output moderation", registry=r)
        self.verdict_cache_hits = Counter(
            "hegui_verdict_cache_hits", "Request parts whose input verdict came from the cache", registry=r,
        )

    def record_decision(self, direction: str, action: str, risks: list[str]) -> None:
        for risk in sorted(set(risks)) or ["none"]:
            self.decisions.labels(direction, action, risk).inc()

    def exposition(self) -> bytes:
        path = os.environ.get(MULTIPROC_ENV)
        if path and os.path.isdir(path):
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=path)
            return generate_latest(registry)
        return generate_latest(self.registry)


class _CaseCounts(Collector):
    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, what in (("open", "Cases awaiting their reply, by kind"),
                           ("overdue", "Cases awaiting their reply past their due date, by kind")):
            family = GaugeMetricFamily(f"hegui_cases_{name}", what, labels=["kind"])
            kinds = sorted({*CASE_KINDS, *(k.split(":", 1)[1] for k in self.counts if k.startswith(name + ":"))})
            for kind in kinds:
                family.add_metric([kind], self.counts.get(f"{name}:{kind}", 0))
            yield family


class CaseGauges:
    """``hegui_cases_open{kind}`` and ``hegui_cases_overdue{kind}`` from ``counts`` (``CaseStore.counts``
    keys ``open:<kind>``, ``overdue:<kind>``), read at most every ``max_age`` seconds off the event loop."""

    def __init__(self, counts: Callable[[], Mapping[str, int]], max_age: float = CASE_GAUGE_SECONDS) -> None:
        self.counts = counts
        self.max_age = max_age
        self._cached: bytes = b""
        self._at = float("-inf")

    async def exposition(self) -> bytes:
        if time.monotonic() - self._at < self.max_age:
            return self._cached
        try:
            counts = await asyncio.to_thread(self.counts)
        except Exception as exc:  # the scrape still answers; the gauges are missing, and the log says why
            log.warning("case gauges: cannot count cases: %s", exc)
            return b""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_CaseCounts(counts))
        self._cached, self._at = generate_latest(registry), time.monotonic()
        return self._cached
