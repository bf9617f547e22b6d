"""The review queue: flagged and refused decisions a reviewer has not judged yet (only their stored,
masked excerpt is shown), and the two judgements.

*Confirm* adds the phrase the reviewer picked (prefilled from the finding's span in the excerpt) to
the staff block list with its risk, in force on every gateway within ``lexicon.db_sync_seconds``, and
makes the decision a rectification sample. *Clear* adds an allow-list phrase and makes it a
false-positive sample. Either writes the review mark and a ``review.*`` event (actor ``staff:<id>``);
storage is in :mod:`hegui.web.console.samples`.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hegui import taxonomy
from hegui.cases.lexicon_entries import EntryRefused, ListName, add_entry, remove_entry, text_sha256
from hegui.detectors.lexicon_files import known_code
from hegui.ledger.models import utcnow
from hegui.ledger.records import DecisionRow
from hegui.web.console.base import PAGE_HEADERS, Console, ConsoleRoute, Staff
from hegui.web.console.lexicon_pages import refresh_lexicon
from hegui.web.console.samples import (
    DIRECTIONS,
    REVIEWABLE_ACTIONS,
    SAMPLE_VERDICT,
    AlreadyReviewed,
    NotReviewable,
    QueueFilter,
    SampleKind,
    Verdict,
    queue,
    record_review,
    reviewable,
    samples_jsonl,
)

PERIODS: dict[str, timedelta | None] = {"24h": timedelta(hours=24), "7d": timedelta(days=7),
                                        "30d": timedelta(days=30), "all": None}
_RISK_FILTER = re.compile(r"^[A-Z][A-Za-z0-9]{0,5}$")
NOTICES = {
    "confirmed": "已确认 Confirmed: the phrase is on the block list (in force on every gateway within seconds).",
    "confirmed_dup": "已确认 Confirmed: the phrase was already on the block list.",
    "cleared": "已排除 Cleared: the phrase is on the allow list; a false-positive sample was recorded.",
    "cleared_dup": "已排除 Cleared: the phrase was already on the allow list.",
    "cleared_plain": "已排除 Cleared: a false-positive sample was recorded (no allow-list phrase given).",
    "already": "该决定已审核 This decision was already reviewed; nothing was changed.",
}


class FilterError(ValueError):
    pass


def parse_filter(params: Any) -> tuple[QueueFilter, int | None, dict[str, str]]:
    """The queue's filters from the query string; raises :class:`FilterError` naming the bad one."""
    chosen = {k: str(params.get(k, "")).strip() for k in ("direction", "action", "risk", "period", "before")}
    if chosen["direction"] and chosen["direction"] not in DIRECTIONS:
        raise FilterError(f"direction: must be one of {', '.join(DIRECTIONS)}")
    if chosen["action"] and chosen["action"] not in REVIEWABLE_ACTIONS:
        raise FilterError(f"action: must be one of {', '.join(REVIEWABLE_ACTIONS)}")
    if chosen["risk"] and not _RISK_FILTER.match(chosen["risk"]):
        raise FilterError("risk: a risk code or category such as A1 or A2f")
    period = chosen["period"] or "all"
    if period not in PERIODS:
        raise FilterError(f"period: must be one of {', '.join(PERIODS)}")
    before: int | None = None
    if chosen["before"]:
        if not chosen["before"].isdigit() or len(chosen["before"]) > 18:
            raise FilterError("before: must be a sequence number")
        before = int(chosen["before"])
    span = PERIODS[period]
    flt = QueueFilter(direction=chosen["direction"] or None, action=chosen["action"] or None,
                      risk=chosen["risk"] or None, since=utcnow() - span if span else None)
    return flt, before, {**chosen, "period": period}


def suggested_phrase(row: DecisionRow) -> str:
    """The text of the first finding's span, read from the excerpt, when the excerpt still lines up
    with the checked text: not when personal data was masked in it (the masks shift the offsets)."""
    excerpt = row.excerpt or ""
    if row.erased_at is not None or any(f.get("risk") == "PI" for f in row.findings):
        return ""
    for f in row.findings:
        start, end, where = f.get("start"), f.get("end"), f.get("where")
        if not isinstance(start, int) or not isinstance(end, int):
            continue
        offset = 0
        if where:
            prefix = f"[{where}] "
            if not excerpt.startswith(prefix):
                continue
            offset = len(prefix)
        if 0 <= start < end and offset + end <= len(excerpt):
            phrase = excerpt[offset + start:offset + end].strip()
            if phrase:
                return phrase
    return ""


def suggested_risk(row: DecisionRow) -> str:
    """The first of the decision's risks a keyword can carry (A1a…A2i); the reviewer names one otherwise
    (a jailbreak or personal-data finding is no lexicon risk)."""
    for code in [str(f.get("risk", "")) for f in row.findings] + list(row.risks):
        known = known_code(code) if code else None
        if known in taxonomy.KEYWORD_RISKS:
            return known
    return ""


class ReviewPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ledger = console.gw.ledger

    async def page(self, request: Request, *, status: int = 200, errors: dict[str, str] | None = None,
                   values: dict[str, dict[str, str]] | None = None) -> Response:
        try:
            flt, before, chosen = parse_filter(request.query_params)
        except FilterError as exc:
            return self.console.render(request, "message.html", 400, title="筛选无效 / Bad filter", text=str(exc))
        rows, next_before = await asyncio.to_thread(queue, self.ledger, flt, before_seq=before)
        filters = {k: v for k, v in chosen.items() if v and k != "before" and not (k == "period" and v == "all")}
        items = []
        for r in rows:
            typed = (values or {}).get(r.decision_id, {})
            items.append({"row": r, "erased": r.erased_at is not None,
                          "phrase": typed.get("phrase", suggested_phrase(r)),
                          "risk": typed.get("risk", suggested_risk(r)),
                          "allow": typed.get("allow", suggested_phrase(r)),
                          "note": typed.get("note", ""),
                          "error": (errors or {}).get(r.decision_id)})
        done = request.query_params.get("done", "")
        return self.console.render(
            request, "review.html", status, items=items, chosen=chosen, directions=DIRECTIONS,
            actions=REVIEWABLE_ACTIONS, periods=list(PERIODS), notice=NOTICES.get(done),
            notice_decision=request.query_params.get("d", "")[:64] if done in NOTICES else "",
            next_url=("/console/review?" + urlencode({**filters, "before": next_before})) if next_before else None,
            first_url=("/console/review?" + urlencode(filters)) if before is not None else None,
            may_review=bool(request.state.staff and request.state.staff.may("reviewer")))

    async def queue_page(self, request: Request) -> Response:
        return await self.page(request)

    def _back(self, request: Request, done: str, decision_id: str) -> Response:
        return RedirectResponse("/console/review?" + urlencode({"done": done, "d": decision_id}),
                                status_code=303, headers=PAGE_HEADERS)

    async def _judge(self, request: Request, verdict: Verdict) -> Response:
        staff: Staff | None = await self.console.current(request)
        assert staff is not None  # behind the reviewer guard
        decision_id = request.path_params["decision_id"]
        form = await request.form()
        typed = {k: str(form.get(k, "")).strip() for k in ("phrase", "risk", "allow", "note")}
        try:
            row = await asyncio.to_thread(reviewable, self.ledger, decision_id)
        except AlreadyReviewed:
            return self._back(request, "already", decision_id)
        except NotReviewable as exc:
            return self.console.render(request, "message.html", 404, title="找不到 / Not found", text=str(exc))
        list_name: ListName = "block" if verdict == "confirmed" else "allow"
        text = typed["phrase"] if verdict == "confirmed" else typed["allow"]
        note = typed["note"] or f"review of decision {decision_id}"
        entry: str | None = None
        duplicate = False
        if verdict == "confirmed" and not text:
            return await self.page(request, status=400, errors={decision_id: "phrase: give the text to block"},
                                   values={decision_id: typed})
        if text:
            try:
                entry = await asyncio.to_thread(
                    add_entry, self.ledger, list=list_name, text=text,
                    risk=typed["risk"] if list_name == "block" else None, note=note, actor=staff.actor)
            except EntryRefused as exc:
                if "already has it" not in str(exc):
                    return await self.page(request, status=400, errors={decision_id: str(exc)},
                                           values={decision_id: typed})
                duplicate = True
        details: dict[str, Any] = {"list": list_name if text else None, "entry": entry,
                                   "entry_risk": known_code(typed["risk"]) if list_name == "block" else None,
                                   "text_sha256": text_sha256(text) if text else None,
                                   "sample": "rectification" if verdict == "confirmed" else "false_positive"}
        try:
            await asyncio.to_thread(record_review, self.ledger, row, verdict, staff_id=staff.id, details=details)
        except AlreadyReviewed:
            if entry is not None:  # a second reviewer got there first: take back what this one added
                await asyncio.to_thread(remove_entry, self.ledger, entry, actor=staff.actor)
            return self._back(request, "already", decision_id)
        if entry is not None:
            await refresh_lexicon(request)
        if verdict == "confirmed":
            done = "confirmed_dup" if duplicate else "confirmed"
        else:
            done = "cleared_dup" if duplicate else "cleared" if text else "cleared_plain"
        return self._back(request, done, decision_id)

    async def confirm(self, request: Request) -> Response:
        return await self._judge(request, "confirmed")

    async def clear(self, request: Request) -> Response:
        return await self._judge(request, "cleared")

    async def download(self, request: Request) -> Response:
        kind = request.query_params.get("kind", "")
        if kind not in SAMPLE_VERDICT:
            return self.console.render(request, "message.html", 400, title="参数无效 / Bad request",
                                       text=f"kind: must be one of {', '.join(SAMPLE_VERDICT)}")
        sample_kind: SampleKind = "rectification" if kind == "rectification" else "false_positive"
        body = await asyncio.to_thread(samples_jsonl, self.ledger, sample_kind)
        return Response(body, media_type="application/x-ndjson; charset=utf-8", headers={
            **PAGE_HEADERS, "Content-Disposition": f'attachment; filename="hegui-{kind}-samples.jsonl"'})


def routes(console: Console) -> list[ConsoleRoute]:
    pages = ReviewPages(console)
    return [
        ConsoleRoute("/console/review", pages.queue_page, ("GET",), "viewer"),
        ConsoleRoute("/console/review/samples.jsonl", pages.download, ("GET",), "reviewer"),
        ConsoleRoute("/console/review/{decision_id}/confirm", pages.confirm, ("POST",), "reviewer"),
        ConsoleRoute("/console/review/{decision_id}/clear", pages.clear, ("POST",), "reviewer"),
    ]
