"""What the annotation records show, as :class:`~hegui.annotation.summary.AnnotationSummary`, with
the problems the officer should see: what GB/T 45654 §5.3 asks that the records do not show."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from hegui.annotation.annotators import load_states
from hegui.annotation.batches import BatchState, batch_state
from hegui.annotation.config import AnnotationConfig
from hegui.annotation.rules import list_rules
from hegui.annotation.summary import AnnotationSummary, AnnotatorStats, BatchInfo, RuleSetInfo
from hegui.ledger.models import Base, utcnow

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

_batches = Base.metadata.tables["annotation_batches"]


def build_summary(ledger: Ledger, cfg: AnnotationConfig | None = None, *,
                  clock: Callable[[], datetime] = utcnow) -> AnnotationSummary:
    import sqlalchemy as sa

    cfg = cfg or AnnotationConfig()
    now = clock()
    today = now.date()
    rules = list_rules(ledger)
    with ledger.engine.connect() as conn:
        states = load_states(conn)
        ids = [r[0] for r in conn.execute(sa.select(_batches.c.id).order_by(_batches.c.imported_at, _batches.c.id))]
        batches: list[BatchState] = [batch_state(conn, i) for i in ids]
    problems: list[str] = []

    infos = [RuleSetInfo(name=r.name, kind=r.kind, version=r.version, published_at=r.published_at,  # type: ignore[arg-type]
                         sha256=r.sha256, risks_covered=r.risks_covered, missing_risks=r.missing_risks)
             for r in rules]
    for kind in ("functional", "safety"):
        if not any(r.kind == kind for r in rules):
            problems.append(f"no {kind} annotation rules published (`hegui annotation rules publish --kind {kind}`)")
    latest_safety = [r for r in rules if r.kind == "safety"]
    if latest_safety and latest_safety[-1].missing_risks:
        r = latest_safety[-1]
        problems.append(f"the latest safety rules ({r.version}) miss {len(r.missing_risks)} of the 31 risks: "
                        f"{', '.join(r.missing_risks)}")
    incomplete = {r.version for r in rules if r.kind == "safety" and not r.complete}

    statuses = {h: s.status(cfg, today) for h, s in states.items()}
    if not states:
        problems.append("no annotators on record (trained, examined and qualified)")
    for h, status in sorted(statuses.items()):
        if status == "recheck_overdue":
            problems.append(f"annotator {h}: re-check overdue since {states[h].recheck_due(cfg)}; "
                            "the qualification has lapsed")

    infos_b: list[BatchInfo] = []
    for b in batches:
        infos_b.append(BatchInfo(
            batch_id=b.batch_id, kind=b.kind, rules_version=b.rules_version,  # type: ignore[arg-type]
            items=b.items, sampled=b.sampled if b.kind == "functional" else b.reviewed_items,
            errors=b.errors, re_annotated=b.re_annotated, illegal_found=b.illegal_found,
            status=b.status, approved_items=b.approved_items))  # type: ignore[arg-type]
        if b.kind == "safety" and b.rules_version in incomplete:
            problems.append(f"batch {b.batch_id}: annotated under safety rules {b.rules_version}, "
                            "which miss some of the 31 risks")
        if b.status == "discarded":
            continue
        if b.kind == "functional":
            if b.sampled == 0:
                problems.append(f"batch {b.batch_id}: functional batch never sampled for the manual check "
                                f"(`hegui annotation batches sample {b.batch_id}`)")
            elif b.checked < b.sampled:
                problems.append(f"batch {b.batch_id}: {b.sampled - b.checked} of {b.sampled} sampled items "
                                "not checked")
            if b.outstanding_errors:
                problems.append(f"batch {b.batch_id}: {b.outstanding_errors} error(s) not re-annotated")
        elif b.lacking_approval:
            problems.append(f"batch {b.batch_id}: {b.lacking_approval} of {b.items} items lack a reviewer's approval")
        if b.status != "accepted":
            lapsed = sorted(h for h in b.workers if statuses.get(h, "unqualified") != "qualified")
            if lapsed:
                problems.append(f"batch {b.batch_id}: still in work by {', '.join(lapsed)} without a current "
                                "qualification")

    stats = AnnotatorStats(
        total=len(states),
        qualified=sum(1 for s in statuses.values() if s == "qualified"),
        revoked=sum(1 for s in statuses.values() if s == "revoked"),
        recheck_overdue=sum(1 for s in statuses.values() if s == "recheck_overdue"))
    return AnnotationSummary(generated_at=now, rules=infos, annotators=stats, batches=infos_b, problems=problems)
