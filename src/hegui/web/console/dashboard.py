"""``GET /console``: the dashboard (viewer). Cards and three charts for a period (24 h, 7 d, 30 d):
decisions by action over time, top risks, refusal rate of inputs and outputs; stream cuts, detector
failures, open and overdue cases, enforcement steps. The numbers come from the hourly rollups
(:mod:`hegui.web.console.aggregates`), brought up to date at each render."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from hegui.cases.store import CaseStore
from hegui.ledger.models import utcnow
from hegui.web.console import charts
from hegui.web.console.aggregates import PERIODS, Period, Rollup, Summary, case_counts, summarize
from hegui.web.console.base import Console, ConsoleRoute

ACTION_LABELS = {"allow": "放行 allow", "flag": "标记 flag", "mask": "遮盖 mask", "refuse": "拒绝 refuse",
                 "block": "阻断 block"}
DIRECTION_LABELS = {"input": "输入 input", "output": "输出 output"}


class Dashboard:
    def __init__(self, console: Console) -> None:
        self.console = console
        gw = console.gw
        self.rollup = Rollup(gw.ledger)
        self.zone = ZoneInfo(gw.cfg.accounts.timezone)
        self.cases = CaseStore(gw.ledger, gw.cfg.cases, gw.cfg.accounts.timezone)
        self._catching_up = threading.Lock()
        """One catch-up per process at a time (others would only lose the compare-and-set)."""

    def numbers(self, period_name: str) -> tuple[Summary, int, int]:
        with self._catching_up:
            self.rollup.catch_up()
        now = utcnow()
        summary = summarize(self.rollup.ledger, Period.of(period_name, now, self.zone))
        open_n, overdue = case_counts(self.cases.counts(self.cases.today(now)))
        return summary, open_n, overdue

    async def page(self, request: Request) -> Response:
        period_name = request.query_params.get("period", "24h")
        if period_name not in PERIODS:
            return self.console.render(request, "message.html", 400, title="参数无效 / Bad request",
                                       text=f"period must be one of {', '.join(PERIODS)}, not {period_name[:40]!r}")
        summary, open_n, overdue = await asyncio.to_thread(self.numbers, period_name)
        return self.console.render(request, "dashboard.html", period_name=period_name, periods=PERIODS,
                                   s=summary, open_cases=open_n, overdue_cases=overdue,
                                   action_labels=ACTION_LABELS, direction_labels=DIRECTION_LABELS,
                                   **self.charts(summary))

    @staticmethod
    def charts(s: Summary) -> dict[str, Any]:
        labels = s.period.labels
        rates = {d: s.rate_series(d) for d in ("input", "output")}
        return {
            "rates": rates,
            "chart_actions": charts.stacked_bars("chart-actions", "决定（按处置）/ Decisions by action", labels,
                                                 s.by_action, ACTION_LABELS),
            "chart_risks": charts.horizontal_bars("chart-risks", "主要风险 / Top risks", s.top_risks),
            "chart_refusals": charts.lines("chart-refusals", "拒绝率 / Refusal rate", labels, rates,
                                           DIRECTION_LABELS),
        }


def routes(console: Console) -> list[ConsoleRoute]:
    dash = Dashboard(console)
    return [ConsoleRoute("/console", dash.page, ("GET",), "viewer")]
