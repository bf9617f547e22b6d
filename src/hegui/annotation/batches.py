"""Annotation batches: import with role separation and qualification checks, the functional check
sample, the checker's results, and the acceptance rules of GB/T 45654 §5.3.

- **Import** stores a batch in one transaction, or nothing: a task whose annotator is also its
  reviewer, or a worker without a current qualification for their role, refuses the whole file.
- **Functional batches** are ``open`` until their check sample is drawn (``in_review``). The
  checker's results mark items ``ok``, ``error`` or ``illegal``; errors must be re-annotated (records
  ``re-annotated``); the batch is ``accepted`` once every sampled item is checked and no error is
  outstanding, and ``discarded`` as soon as any item is found illegal.
- **Safety batches** are ``accepted`` only when every item is approved by at least one reviewer;
  otherwise ``in_review``, and further reviews can be imported with the same ``check`` command.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from hegui.annotation.annotators import AnnotatorState, load_states
from hegui.annotation.config import AnnotationConfig
from hegui.annotation.formats import TaskIn, guess_format, read_rows, read_tasks, read_text
from hegui.annotation.models import AnnotationBatch, AnnotationReview, AnnotationTask
from hegui.annotation.rules import KINDS, get_rules
from hegui.errors import UserError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
CHECK_RESULTS: tuple[str, ...] = ("ok", "error", "illegal", "re-annotated")

_batches = Base.metadata.tables[AnnotationBatch.__tablename__]
_tasks = Base.metadata.tables[AnnotationTask.__tablename__]
_reviews = Base.metadata.tables[AnnotationReview.__tablename__]


class BatchError(UserError):
    pass


@dataclass(frozen=True)
class BatchState:
    batch_id: str
    kind: str
    rules_version: str
    status: str
    items: int
    sampled: int
    checked: int
    errors: int
    re_annotated: int
    outstanding_errors: int
    illegal_found: int
    reviewed_items: int
    approved_items: int
    discarded_reason: str | None
    imported_at: datetime
    workers: frozenset[str]

    @property
    def lacking_approval(self) -> int:
        return self.items - self.approved_items

    def to_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "kind": self.kind, "rules_version": self.rules_version,
                "status": self.status, "items": self.items, "sampled": self.sampled, "checked": self.checked,
                "errors": self.errors, "re_annotated": self.re_annotated,
                "outstanding_errors": self.outstanding_errors, "illegal_found": self.illegal_found,
                "reviewed_items": self.reviewed_items, "approved_items": self.approved_items,
                "discarded_reason": self.discarded_reason, "imported_at": self.imported_at.isoformat()}


def _require_role(states: dict[str, AnnotatorState], handle: str, role: str, batch_id: str, cfg: AnnotationConfig,
                  today: date, where: str) -> None:
    who = "annotator" if role == "annotate" else "reviewer"
    state = states.get(handle)
    if state is None:
        raise BatchError(f"batch {batch_id}: {who} {handle} is not on record ({where}); nothing imported")
    if not state.current_for(role, cfg, today):
        raise BatchError(f"batch {batch_id}: {who} {handle} has no current qualification to {role} "
                         f"({state.why_not(role, cfg, today)}; {where}); nothing imported")


def _digest_ids(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def batch_state(conn: Connection, batch_id: str) -> BatchState:
    b = conn.execute(sa.select(_batches).where(_batches.c.id == batch_id)).one_or_none()
    if b is None:
        raise BatchError(f"batch {batch_id!r} not found")
    tasks = conn.execute(sa.select(_tasks).where(_tasks.c.batch_id == batch_id)).all()
    reviews = conn.execute(sa.select(_reviews.c.item_id, _reviews.c.reviewer, _reviews.c.verdict)
                           .where(_reviews.c.batch_id == batch_id)).all()
    reviewed = {r.item_id for r in reviews}
    approved = {r.item_id for r in reviews if r.verdict == "approved"}
    workers = {h for t in tasks for h in (t.annotators or [])} | {r.reviewer for r in reviews}
    workers |= {t.checker for t in tasks if t.checker}
    return BatchState(
        batch_id=b.id, kind=b.kind, rules_version=b.rules_version, status=b.status, items=len(tasks),
        sampled=sum(1 for t in tasks if t.sampled),
        checked=sum(1 for t in tasks if t.check_result is not None),
        errors=sum(1 for t in tasks if t.error), re_annotated=sum(1 for t in tasks if t.re_annotated),
        outstanding_errors=sum(1 for t in tasks if t.error and not t.re_annotated),
        illegal_found=sum(1 for t in tasks if t.illegal),
        reviewed_items=len(reviewed), approved_items=len(approved), discarded_reason=b.discarded_reason,
        imported_at=b.imported_at, workers=frozenset(workers))


def _settle(conn: Connection, batch_id: str, actor: str, now: datetime) -> BatchState:
    """Recompute a batch's status from its items after a change (discarded stays discarded)."""
    st = batch_state(conn, batch_id)
    if st.status == "discarded":
        return st
    reason: str | None = None
    if st.kind == "functional":
        if st.illegal_found:
            first = conn.execute(sa.select(_tasks.c.item_id).where(_tasks.c.batch_id == batch_id, _tasks.c.illegal)
                                 .order_by(_tasks.c.item_id).limit(1)).scalar_one()
            status, reason = "discarded", f"illegal content found (item {first}); the whole batch is discarded"
        elif st.sampled == 0:
            status = "open"
        elif st.checked < st.sampled or st.outstanding_errors:
            status = "in_review"
        else:
            status = "accepted"
    else:
        status = "accepted" if st.approved_items == st.items else "in_review"
    if status != st.status:
        conn.execute(sa.update(_batches).where(_batches.c.id == batch_id)
                     .values(status=status, discarded_reason=reason, updated_at=now))
        data: dict[str, Any] = {"batch": batch_id, "from": st.status, "to": status}
        if reason:
            data["reason"] = reason
        append_event(conn, f"annotation.batch_{status}", None, actor, data, created_at=now)
        st = batch_state(conn, batch_id)
    return st


class BatchStore:
    def __init__(self, ledger: Ledger, cfg: AnnotationConfig | None = None, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.ledger = ledger
        self.cfg = cfg or AnnotationConfig()
        self.clock = clock

    def _excerpt(self, text: str) -> str | None:
        return text[: self.cfg.excerpt_chars] if self.cfg.store_excerpt else None

    def import_batch(self, path: Path, *, kind: str, rules_version: str, actor: str, fmt: str | None = None,
                     batch_id: str | None = None) -> BatchState:
        if kind not in KINDS:
            raise BatchError(f"--kind {kind!r}: one of {', '.join(KINDS)}")
        fmt = fmt or guess_format(path)
        bid = batch_id or path.stem
        if not BATCH_ID.match(bid):
            raise BatchError(f"batch id {bid!r}: 1–128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit "
                             "(give one with --batch)")
        tasks = read_tasks(path, fmt, self.cfg)
        _, raw = read_text(path)
        source_sha = hashlib.sha256(raw).hexdigest()
        now = self.clock()
        today = now.date()

        def change(conn: Connection) -> BatchState:
            if get_rules(conn, kind, rules_version) is None:
                raise BatchError(f"batch {bid}: no {kind} rules version {rules_version!r} published "
                                 "(`hegui annotation rules publish`); nothing imported")
            if conn.execute(sa.select(_batches.c.id).where(_batches.c.id == bid)).first() is not None:
                raise BatchError(f"batch {bid} already exists; give another --batch")
            states = load_states(conn)
            for t in tasks:
                for reviewer, _ in t.reviews:
                    if reviewer in t.annotators:
                        raise BatchError(f"batch {bid}: task {t.item_id}: {reviewer} is both annotator and "
                                         f"reviewer ({t.where}); nothing imported")
                for a in t.annotators:
                    _require_role(states, a, "annotate", bid, self.cfg, today, t.where)
                for reviewer, _ in t.reviews:
                    _require_role(states, reviewer, "review", bid, self.cfg, today, t.where)
            conn.execute(sa.insert(_batches).values(
                id=bid, kind=kind, rules_version=rules_version, status="open", items=len(tasks),
                source_sha256=source_sha, source_format=fmt, imported_by=actor, imported_at=now, updated_at=now))
            conn.execute(sa.insert(_tasks), [self._task_values(bid, t) for t in tasks])
            review_rows = [{"batch_id": bid, "item_id": t.item_id, "reviewer": r, "verdict": v, "recorded_at": now}
                           for t in tasks for r, v in t.reviews]
            if review_rows:
                conn.execute(sa.insert(_reviews), review_rows)
            append_event(conn, "annotation.batch_imported", None, actor,
                         {"batch": bid, "kind": kind, "rules_version": rules_version, "items": len(tasks),
                          "format": fmt, "sha256": source_sha}, created_at=now)
            return _settle(conn, bid, actor, now)

        result: BatchState = self.ledger.transaction(change, "import the annotation batch")
        return result

    def _task_values(self, bid: str, t: TaskIn) -> dict[str, Any]:
        return {"batch_id": bid, "item_id": t.item_id, "text_sha256": hashlib.sha256(t.text.encode("utf-8")).hexdigest(),
                "text_length": len(t.text), "excerpt": self._excerpt(t.text), "labels": t.labels,
                "annotators": t.annotators, "error": t.error, "illegal": t.illegal, "re_annotated": False,
                "sampled": False, "check_result": None, "checker": None}

    def sample(self, batch_id: str, *, size: int | None = None, seed: int | None = None,
               actor: str) -> list[str]:
        """Draw the check sample of a functional batch: ``min(size, items)`` items chosen by a PRNG
        seeded with ``seed`` and the batch id, so the same seed draws the same items again."""
        n = self.cfg.functional_sample_size if size is None else size
        if n < 1:
            raise BatchError(f"--size {n}: at least 1")
        use_seed = self.cfg.sample_seed if seed is None else seed
        now = self.clock()

        def change(conn: Connection) -> list[str]:
            st = batch_state(conn, batch_id)
            if st.kind != "functional":
                raise BatchError(f"batch {batch_id} is a safety batch: every item is reviewed, nothing is sampled")
            if st.sampled:
                raise BatchError(f"batch {batch_id} was sampled already ({st.sampled} items); a sample is drawn "
                                 "once so it cannot be redrawn until it looks good")
            if st.status == "discarded":
                raise BatchError(f"batch {batch_id} is discarded")
            chosen = draw_sample(_item_ids(conn, batch_id), n, use_seed, batch_id)
            conn.execute(sa.update(_tasks).where(_tasks.c.batch_id == batch_id, _tasks.c.item_id.in_(chosen))
                         .values(sampled=True))
            conn.execute(sa.update(_batches).where(_batches.c.id == batch_id)
                         .values(sample_size=len(chosen), sample_seed=use_seed, sampled_at=now, updated_at=now))
            append_event(conn, "annotation.batch_sampled", None, actor,
                         {"batch": batch_id, "size": len(chosen), "seed": use_seed,
                          "items_sha256": _digest_ids(chosen)}, created_at=now)
            _settle(conn, batch_id, actor, now)
            return chosen

        result: list[str] = self.ledger.transaction(change, "sample the annotation batch")
        return result

    def sample_items(self, batch_id: str) -> list[str]:
        with self.ledger.engine.connect() as conn:
            batch_state(conn, batch_id)
            return [r[0] for r in conn.execute(sa.select(_tasks.c.item_id).where(
                _tasks.c.batch_id == batch_id, _tasks.c.sampled).order_by(_tasks.c.item_id))]

    def check(self, batch_id: str, path: Path, *, actor: str, fmt: str | None = None) -> BatchState:
        """Import the checker's results (functional) or further reviews (safety) for a batch."""
        fmt = fmt or guess_format(path)
        rows = read_rows(path, fmt)
        if not rows:
            raise BatchError(f"{path}: no rows")
        now = self.clock()
        today = now.date()

        def change(conn: Connection) -> BatchState:
            st = batch_state(conn, batch_id)
            if st.status in ("discarded", "accepted"):
                raise BatchError(f"batch {batch_id} is {st.status}; nothing more can be recorded on it")
            states = load_states(conn)
            counts: dict[str, int] = {}
            for where, row in rows:
                item = str(row.get("item_id") or "").strip()
                # read per row: an earlier row of the same file may have marked this item an error
                task = conn.execute(sa.select(_tasks).where(_tasks.c.batch_id == batch_id,
                                                            _tasks.c.item_id == item)).one_or_none()
                if task is None:
                    raise BatchError(f"{where}: batch {batch_id} has no item {item!r}; nothing recorded")
                if st.kind == "safety":
                    self._safety_review(conn, batch_id, task, row, where, states, today, now)
                    counts["reviews"] = counts.get("reviews", 0) + 1
                else:
                    result = self._functional_check(conn, batch_id, task, row, where, states, today)
                    counts[result] = counts.get(result, 0) + 1
            append_event(conn, "annotation.batch_checked", None, actor,
                         {"batch": batch_id, "rows": len(rows), **counts}, created_at=now)
            return _settle(conn, batch_id, actor, now)

        result: BatchState = self.ledger.transaction(change, "record the annotation check")
        return result

    def _safety_review(self, conn: Connection, batch_id: str, task: Any, row: dict[str, Any], where: str,
                       states: dict[str, AnnotatorState], today: date, now: datetime) -> None:
        reviewer = str(row.get("reviewer") or "").strip()
        verdict = str(row.get("verdict") or "").strip().lower()
        if not reviewer or verdict not in ("approved", "rejected"):
            raise BatchError(f"{where}: a safety review needs reviewer and verdict (approved or rejected)")
        if reviewer in (task.annotators or []):
            raise BatchError(f"batch {batch_id}: task {task.item_id}: {reviewer} is both annotator and reviewer "
                             f"({where}); nothing recorded")
        _require_role(states, reviewer, "review", batch_id, self.cfg, today, where)
        conn.execute(sa.insert(_reviews).values(batch_id=batch_id, item_id=task.item_id, reviewer=reviewer,
                                                verdict=verdict, recorded_at=now))

    def _functional_check(self, conn: Connection, batch_id: str, task: Any, row: dict[str, Any], where: str,
                          states: dict[str, AnnotatorState], today: date) -> str:
        result = str(row.get("result") or "").strip().lower()
        if result not in CHECK_RESULTS:
            raise BatchError(f"{where}: result {result!r}: one of {', '.join(CHECK_RESULTS)}")
        key = sa.and_(_tasks.c.batch_id == batch_id, _tasks.c.item_id == task.item_id)
        if result == "re-annotated":
            if not task.error:
                raise BatchError(f"{where}: item {task.item_id} of batch {batch_id} is not marked as an error; "
                                 "only errors are re-annotated")
            annotator = str(row.get("annotator") or "").strip()
            if not annotator:
                raise BatchError(f"{where}: a re-annotated record names its annotator")
            _require_role(states, annotator, "annotate", batch_id, self.cfg, today, where)
            values: dict[str, Any] = {"re_annotated": True,
                                      "annotators": [*[a for a in task.annotators if a != annotator], annotator]}
            labels = row.get("labels")
            if labels not in (None, ""):
                values["labels"] = labels if isinstance(labels, list) else [
                    p.strip() for p in str(labels).split("|") if p.strip()]
            conn.execute(sa.update(_tasks).where(key).values(**values))
            return "re_annotated"
        if not task.sampled:
            raise BatchError(f"{where}: item {task.item_id} is not in the check sample of batch {batch_id}")
        checker = str(row.get("checker") or "").strip()
        if not checker:
            raise BatchError(f"{where}: the checker (a handle qualified to review) is missing")
        if checker in (task.annotators or []):
            raise BatchError(f"batch {batch_id}: task {task.item_id}: {checker} annotated it and cannot check it "
                             f"({where}); nothing recorded")
        _require_role(states, checker, "review", batch_id, self.cfg, today, where)
        values = {"check_result": result, "checker": checker}
        if result == "error":
            values["error"] = True
        if result == "illegal":
            values["illegal"] = True
        conn.execute(sa.update(_tasks).where(key).values(**values))
        return result

    def states(self) -> list[BatchState]:
        with self.ledger.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.select(_batches.c.id).order_by(_batches.c.imported_at,
                                                                                 _batches.c.id))]
            return [batch_state(conn, i) for i in ids]

    def get(self, batch_id: str) -> BatchState:
        with self.ledger.engine.connect() as conn:
            return batch_state(conn, batch_id)


def _item_ids(conn: Connection, batch_id: str) -> list[str]:
    return [r[0] for r in conn.execute(sa.select(_tasks.c.item_id).where(_tasks.c.batch_id == batch_id))]


def draw_sample(item_ids: list[str], size: int, seed: int, batch_id: str) -> list[str]:
    """``min(size, len(item_ids))`` ids, the same for the same ids, size, seed and batch (sorted)."""
    pool = sorted(item_ids)
    rng = random.Random(f"{seed}:{batch_id}")
    return sorted(rng.sample(pool, min(size, len(pool))))
