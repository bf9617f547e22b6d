"""Prometheus metrics of one gateway app, in a registry of its own.

With several workers (``hegui serve --workers N``) each worker is a process with its own counters;
prometheus_client's multiprocess mode adds them up. ``hegui serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before the workers start; ``GET /metrics`` then
aggregates the files of all workers (histograms and counters; no gauges are used, so nothing
needs ``mark_process_dead``).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

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
