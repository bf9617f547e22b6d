"""Annotation records (Art. 8, GB/T 45654 §5.3) on SQLite and PostgreSQL: rules with the 31-risk
check, annotator qualification and its lapse, batch import with role separation (nothing stored on
a refusal), functional sampling and checks, safety approval, Label Studio import, the summary."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hegui.annotation.annotators import AnnotatorStore
from hegui.annotation.batches import BatchStore, draw_sample
from hegui.annotation.config import AnnotationConfig
from hegui.annotation.models import AnnotationTask
from hegui.annotation.report import build_summary
from hegui.annotation.rules import ALL_RISKS, STARTER_DIR, list_rules, publish_rules, rules_text
from hegui.errors import UserError
from hegui.ledger.events import events
from hegui.ledger.models import Base
from hegui.ledger.store import Ledger

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANNOTATION_TABLES = {"annotation_rule_sets", "annotators", "annotator_records", "annotation_batches",
                     "annotation_tasks", "annotation_reviews"}


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture()
def ledger(migrated_ledger_url: str) -> Iterator[Ledger]:
    led = Ledger.open(migrated_ledger_url)
    yield led
    led.close()


def n_events(ledger: Ledger) -> int:
    return len(events(ledger, kind_prefix="annotation.", limit=None))


def count(ledger: Ledger, table: str) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(Base.metadata.tables[table])).scalar_one())


def safety_yaml(tmp_path: Path, codes: tuple[str, ...] = ALL_RISKS, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text("name: test safety rules\nkind: safety\nrisks:\n"
                 + "".join(f"  {c}: 判断 {c} 的标准\n" for c in codes), encoding="utf-8")
    return p


def functional_md(tmp_path: Path) -> Path:
    p = tmp_path / "f.md"
    p.write_text("---\nname: test functional rules\n---\n# 功能性\n正确、完整。\n", encoding="utf-8")
    return p


def qualify(store: AnnotatorStore, handle: str, roles: list[str]) -> None:
    store.add(handle, name=f"team {handle}", actor="t")
    store.train(handle, course="标注规则培训", on=date(2026, 2, 1), actor="t")
    store.exam(handle, score=92, passed=True, on=date(2026, 2, 2), actor="t")
    store.qualify(handle, roles=roles, actor="t")


def setup(ledger: Ledger, tmp_path: Path, clock: Clock, cfg: AnnotationConfig | None = None) -> AnnotatorStore:
    publish_rules(ledger, safety_yaml(tmp_path), kind="safety", version="s1", publisher="t", now=clock())
    publish_rules(ledger, functional_md(tmp_path), kind="functional", version="f1", publisher="t", now=clock())
    store = AnnotatorStore(ledger, cfg, clock=clock)
    qualify(store, "ann-1", ["annotate"])
    qualify(store, "ann-2", ["annotate"])
    qualify(store, "rev-1", ["review"])
    qualify(store, "rev-2", ["annotate", "review"])
    return store


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    cols = ["item_id", "text", "labels", "annotator", "reviewer", "verdict", "error", "illegal"]
    lines = [",".join(cols)] + [",".join(r.get(c, "") for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def functional_rows(n: int) -> list[dict[str, str]]:
    return [{"item_id": f"it{i:03d}", "text": f"问题{i}的回答", "labels": "correct",
             "annotator": "ann-1" if i % 2 else "ann-2"} for i in range(n)]


# ------------------------------------------------------------------------------------------ schema


def test_migration_matches_models(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert ANNOTATION_TABLES <= names
    mine = [d for d in diffs if any(t in repr(d) for t in ANNOTATION_TABLES)]
    assert mine == []


# ------------------------------------------------------------------------------------------- rules


def test_safety_rules_must_cover_all_31_risks(ledger: Ledger, tmp_path: Path) -> None:
    assert len(ALL_RISKS) == 31
    partial = safety_yaml(tmp_path, tuple(c for c in ALL_RISKS if c not in ("A2d", "A5b")))
    with pytest.raises(UserError) as err:
        publish_rules(ledger, partial, kind="safety", version="v1", publisher="t")
    msg = str(err.value)
    assert "\n" not in msg and "A2d, A5b" in msg and "2 of the 31" in msg
    assert count(ledger, "annotation_rule_sets") == 0 and n_events(ledger) == 0
    row = publish_rules(ledger, partial, kind="safety", version="v1", publisher="t", allow_incomplete=True)
    assert not row.complete and row.missing_risks == ["A2d", "A5b"] and len(row.risks_covered) == 29
    assert row.sha256 == hashlib.sha256(partial.read_bytes()).hexdigest()
    assert rules_text(ledger, "safety", "v1") == partial.read_text(encoding="utf-8")
    # a byte-order mark is not part of the text: the digest is that of what rules_text returns
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + partial.read_bytes())
    row2 = publish_rules(ledger, bom, kind="safety", version="v-bom", publisher="t", allow_incomplete=True)
    assert row2.sha256 == row.sha256 == hashlib.sha256(rules_text(ledger, "safety", "v-bom").encode()).hexdigest()
    ev = events(ledger, kind_prefix="annotation.rules_published")
    assert ev[-1].data["missing_risks"] == ["A2d", "A5b"] and ev[-1].data["complete"] is False
    summary = build_summary(ledger)
    assert any("A2d, A5b" in p for p in summary.problems)
    with pytest.raises(UserError, match="already published"):
        publish_rules(ledger, partial, kind="safety", version="v1", publisher="t", allow_incomplete=True)


def test_markdown_rules_and_the_starter_set(ledger: Ledger, tmp_path: Path) -> None:
    md = tmp_path / "r.md"
    md.write_text("---\nname: md\n---\n## A1a 颠覆\n标准一\n## A1b\n\n## 其他\n说明\n", encoding="utf-8")
    row = publish_rules(ledger, md, kind="safety", version="m1", publisher="t", allow_incomplete=True)
    # A1b has a heading but no criterion under it: not covered
    assert row.risks_covered == ["A1a"] and len(row.missing_risks) == 30
    starter = publish_rules(ledger, STARTER_DIR / "safety-rules.md", kind="safety", version="starter-1",
                            publisher="t")
    assert starter.complete and starter.risks_covered == list(ALL_RISKS)
    publish_rules(ledger, STARTER_DIR / "functional-rules.md", kind="functional", version="starter-1", publisher="t")
    with pytest.raises(UserError, match="says kind 'safety'"):
        publish_rules(ledger, STARTER_DIR / "safety-rules.md", kind="functional", version="starter-1",
                      publisher="t")
    assert [(r.kind, r.version) for r in list_rules(ledger)] == [
        ("functional", "starter-1"), ("safety", "m1"), ("safety", "starter-1")]


# -------------------------------------------------------------------------------------- annotators


def test_qualification_needs_training_and_a_passed_latest_exam(ledger: Ledger) -> None:
    store = AnnotatorStore(ledger, clock=Clock(T0))
    store.add("a1", actor="t")
    with pytest.raises(UserError, match="no training"):
        store.qualify("a1", roles=["annotate"], actor="t")
    store.train("a1", course="c", actor="t")
    with pytest.raises(UserError, match="no exam"):
        store.qualify("a1", roles=["annotate"], actor="t")
    store.exam("a1", score=90, passed=True, on=date(2026, 2, 1), actor="t")
    store.exam("a1", score=40, passed=False, on=date(2026, 2, 10), actor="t")
    with pytest.raises(UserError, match="latest exam was failed"):
        store.qualify("a1", roles=["annotate"], actor="t")
    store.exam("a1", score=85, passed=True, on=date(2026, 2, 20), actor="t")
    with pytest.raises(UserError, match="--roles"):
        store.qualify("a1", roles=["boss"], actor="t")
    store.qualify("a1", roles=["review", "annotate"], actor="t")
    st = store.get("a1")
    assert st.roles == ["annotate", "review"] and st.status(AnnotationConfig(), T0.date()) == "qualified"
    with pytest.raises(UserError, match="already exists"):
        store.add("a1", actor="t")
    with pytest.raises(UserError, match="handle"):
        store.add("张 三", actor="t")


def test_overdue_recheck_lapses_and_a_failed_one_revokes(ledger: Ledger, tmp_path: Path) -> None:
    clock = Clock(T0)
    cfg = AnnotationConfig(recheck_days=30)
    store = setup(ledger, tmp_path, clock, cfg)
    batches = BatchStore(ledger, cfg, clock=clock)
    f = write_csv(tmp_path / "b.csv", functional_rows(2))
    clock.at = T0 + timedelta(days=30)  # the last day the qualification holds
    assert store.get("ann-1").status(cfg, clock().date()) == "qualified"
    clock.at = T0 + timedelta(days=31)
    assert store.get("ann-1").status(cfg, clock().date()) == "recheck_overdue"
    with pytest.raises(UserError) as err:
        batches.import_batch(f, kind="functional", rules_version="f1", actor="t", batch_id="b-late")
    assert "batch b-late" in str(err.value) and "ann-" in str(err.value) and "re-check overdue" in str(err.value)
    summary = build_summary(ledger, cfg, clock=clock)
    assert summary.annotators.recheck_overdue == 4 and summary.annotators.qualified == 0
    # a passed re-check renews from its day; a failed one revokes
    for h in ("ann-1", "ann-2"):
        store.recheck(h, passed=True, actor="t")
    assert store.get("ann-1").recheck_due(cfg) == clock().date() + timedelta(days=30)
    st = batches.import_batch(f, kind="functional", rules_version="f1", actor="t", batch_id="b-ok")
    assert st.status == "open"
    store.recheck("ann-2", passed=False, actor="t")
    assert store.get("ann-2").status(cfg, clock().date()) == "revoked"
    kinds = [e.kind for e in events(ledger, kind_prefix="annotation.annotator_", limit=None)]
    assert kinds.count("annotation.annotator_rechecked") == 3 and kinds[-1] == "annotation.annotator_revoked"
    summary = build_summary(ledger, cfg, clock=clock)
    assert (summary.annotators.total, summary.annotators.qualified, summary.annotators.revoked,
            summary.annotators.recheck_overdue) == (4, 1, 1, 2)
    # the batch is still open and ann-2 no longer holds a qualification
    assert any("b-ok" in p and "ann-2" in p for p in summary.problems)
    store.revoke("ann-1", reason="left the team", actor="t")
    with pytest.raises(UserError, match="no qualification to revoke"):
        store.revoke("ann-1", reason="again", actor="t")
    # qualifying again needs an exam passed after the revocation, not the old one
    with pytest.raises(UserError, match="a passed exam after that"):
        store.qualify("ann-1", roles=["annotate"], actor="t")
    clock.at += timedelta(hours=1)
    store.exam("ann-1", score=95, passed=True, actor="t")
    store.qualify("ann-1", roles=["annotate"], actor="t")
    assert store.get("ann-1").status(cfg, clock().date()) == "qualified"


# ----------------------------------------------------------------------------------------- batches


def test_role_separation_refused_and_nothing_stored(ledger: Ledger, tmp_path: Path) -> None:
    clock = Clock(T0)
    setup(ledger, tmp_path, clock)
    before = (n_events(ledger), count(ledger, "annotation_batches"), count(ledger, "annotation_tasks"),
              count(ledger, "annotation_reviews"))
    rows = [{"item_id": "s1", "text": "有害样本一", "labels": "A1g", "annotator": "ann-1", "reviewer": "rev-1",
             "verdict": "approved"},
            {"item_id": "s2", "text": "有害样本二", "labels": "A2d", "annotator": "rev-2", "reviewer": "rev-2",
             "verdict": "approved"}]
    f = write_csv(tmp_path / "safety-7.csv", rows)
    batches = BatchStore(ledger, clock=clock)
    with pytest.raises(UserError) as err:
        batches.import_batch(f, kind="safety", rules_version="s1", actor="t")
    msg = str(err.value)
    assert "\n" not in msg
    assert "batch safety-7" in msg and "task s2" in msg and "rev-2 is both annotator and reviewer" in msg
    after = (n_events(ledger), count(ledger, "annotation_batches"), count(ledger, "annotation_tasks"),
             count(ledger, "annotation_reviews"))
    assert after == before


@pytest.mark.parametrize("who,field,expect", [
    ("nobody", "reviewer", "reviewer nobody is not on record"),
    ("ann-2", "reviewer", "reviewer ann-2 has no current qualification to review"),
    ("fresh", "annotator", "annotator fresh has no current qualification to annotate (never qualified"),
    ("gone", "annotator", "annotator gone has no current qualification to annotate (qualification revoked"),
])
def test_missing_qualification_refused_naming_batch_and_person(ledger: Ledger, tmp_path: Path, who: str,
                                                               field: str, expect: str) -> None:
    clock = Clock(T0)
    store = setup(ledger, tmp_path, clock)
    store.add("fresh", actor="t")
    qualify(store, "gone", ["annotate"])
    store.revoke("gone", reason="quality", actor="t")
    row = {"item_id": "x1", "text": "文本", "annotator": "ann-1", "reviewer": "rev-1", "verdict": "approved"}
    row[field] = who
    f = write_csv(tmp_path / "b.csv", [row])
    before = n_events(ledger)
    with pytest.raises(UserError) as err:
        BatchStore(ledger, clock=clock).import_batch(f, kind="safety", rules_version="s1", actor="t", batch_id="bq")
    assert "batch bq" in str(err.value) and expect in str(err.value)
    assert count(ledger, "annotation_batches") == 0 and n_events(ledger) == before


def test_import_needs_published_rules_of_that_kind(ledger: Ledger, tmp_path: Path) -> None:
    clock = Clock(T0)
    setup(ledger, tmp_path, clock)
    f = write_csv(tmp_path / "b.csv", functional_rows(1))
    with pytest.raises(UserError, match="no functional rules version 's1'"):
        BatchStore(ledger, clock=clock).import_batch(f, kind="functional", rules_version="s1", actor="t")


def test_functional_sampling_size_and_determinism(ledger: Ledger, tmp_path: Path) -> None:
    ids = [f"i{i}" for i in range(100)]
    a = draw_sample(ids, 10, 7, "b1")
    assert a == draw_sample(list(reversed(ids)), 10, 7, "b1")  # the order of the file does not matter
    assert len(a) == 10 and len(set(a)) == 10 and set(a) <= set(ids)
    assert a != draw_sample(ids, 10, 8, "b1") and a != draw_sample(ids, 10, 7, "b2")
    assert draw_sample(ids[:3], 10, 7, "b1") == sorted(ids[:3])

    clock = Clock(T0)
    setup(ledger, tmp_path, clock)
    cfg = AnnotationConfig(functional_sample_size=6, sample_seed=3)
    batches = BatchStore(ledger, cfg, clock=clock)
    batches.import_batch(write_csv(tmp_path / "f1.csv", functional_rows(40)), kind="functional",
                         rules_version="f1", actor="t")
    chosen = batches.sample("f1", actor="t")
    assert chosen == draw_sample([f"it{i:03d}" for i in range(40)], 6, 3, "f1")
    assert batches.sample_items("f1") == chosen and batches.get("f1").status == "in_review"
    with pytest.raises(UserError, match="sampled already"):
        batches.sample("f1", actor="t")
    ev = events(ledger, kind_prefix="annotation.batch_sampled")[-1]
    assert ev.data["size"] == 6 and ev.data["seed"] == 3
    assert ev.data["items_sha256"] == hashlib.sha256("\n".join(chosen).encode()).hexdigest()


def _check_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_errors_are_re_annotated_and_an_illegal_item_discards_the_batch(ledger: Ledger, tmp_path: Path) -> None:
    clock = Clock(T0)
    setup(ledger, tmp_path, clock)
    batches = BatchStore(ledger, AnnotationConfig(functional_sample_size=3), clock=clock)
    for name in ("fa", "fb"):
        batches.import_batch(write_csv(tmp_path / f"{name}.csv", functional_rows(10)), kind="functional",
                             rules_version="f1", actor="t")
    sa_ = batches.sample("fa", actor="t")
    annotated_by = {f"it{i:03d}": ("ann-1" if i % 2 else "ann-2") for i in range(10)}
    # the checker may not check an item they annotated
    with pytest.raises(UserError, match=f"task {sa_[0]}: {annotated_by[sa_[0]]} annotated it"):
        batches.check("fa", _check_file(tmp_path / "c0.jsonl", [
            {"item_id": sa_[0], "result": "ok", "checker": annotated_by[sa_[0]]}]), actor="t")
    st = batches.check("fa", _check_file(tmp_path / "c1.jsonl", [
        {"item_id": sa_[0], "result": "ok", "checker": "rev-1"},
        {"item_id": sa_[1], "result": "error", "checker": "rev-1"},
        {"item_id": sa_[2], "result": "ok", "checker": "rev-2"}]), actor="t")
    assert (st.status, st.checked, st.errors, st.outstanding_errors) == ("in_review", 3, 1, 1)
    not_sampled = next(i for i in annotated_by if i not in sa_)
    with pytest.raises(UserError, match="not in the check sample"):
        batches.check("fa", _check_file(tmp_path / "c2.jsonl", [
            {"item_id": not_sampled, "result": "ok", "checker": "rev-1"}]), actor="t")
    with pytest.raises(UserError, match="not marked as an error"):
        batches.check("fa", _check_file(tmp_path / "c3.jsonl", [
            {"item_id": sa_[0], "result": "re-annotated", "annotator": "ann-1"}]), actor="t")
    st = batches.check("fa", _check_file(tmp_path / "c4.jsonl", [
        {"item_id": sa_[1], "result": "re-annotated", "annotator": "ann-1", "labels": ["partially_correct"]}]),
        actor="t")
    assert (st.status, st.re_annotated, st.outstanding_errors) == ("accepted", 1, 0)
    with ledger.engine.connect() as conn:
        fixed = conn.execute(sa.text("select labels, annotators from annotation_tasks where batch_id = 'fa' "
                                     "and item_id = :i"), {"i": sa_[1]}).one()
    labels, annotators = (json.loads(v) if isinstance(v, str) else v for v in fixed)
    assert labels == ["partially_correct"] and annotators[-1] == "ann-1"

    sb = batches.sample("fb", actor="t")
    st = batches.check("fb", _check_file(tmp_path / "d1.jsonl", [
        {"item_id": sb[0], "result": "ok", "checker": "rev-1"},
        {"item_id": sb[1], "result": "illegal", "checker": "rev-1"}]), actor="t")
    assert st.status == "discarded" and st.illegal_found == 1 and sb[1] in (st.discarded_reason or "")
    with pytest.raises(UserError, match="discarded"):
        batches.check("fb", _check_file(tmp_path / "d2.jsonl", [
            {"item_id": sb[2], "result": "ok", "checker": "rev-1"}]), actor="t")
    kinds = [e.kind for e in events(ledger, kind_prefix="annotation.batch_", limit=None)]
    assert "annotation.batch_accepted" in kinds and "annotation.batch_discarded" in kinds
    assert ledger.verify().ok


def test_safety_batch_needs_an_approval_for_every_item(ledger: Ledger, tmp_path: Path) -> None:
    clock = Clock(T0)
    setup(ledger, tmp_path, clock)
    p = tmp_path / "s1.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"item_id": "a", "text": "样本A", "labels": ["A1f"], "annotator": "ann-1",
         "reviews": [{"reviewer": "rev-1", "verdict": "rejected"}, {"reviewer": "rev-2", "verdict": "approved"}]},
        {"item_id": "b", "text": "样本B", "labels": ["A4e"], "annotator": "ann-2", "reviewer": "rev-1",
         "verdict": "rejected"},
        {"item_id": "c", "text": "样本C", "labels": ["safe"], "annotator": "ann-2"},
    ]) + "\n", encoding="utf-8")
    batches = BatchStore(ledger, clock=clock)
    st = batches.import_batch(p, kind="safety", rules_version="s1", actor="t")
    # a: approved by rev-2; b: only rejected; c: never reviewed
    assert (st.status, st.items, st.reviewed_items, st.approved_items, st.lacking_approval) == \
        ("in_review", 3, 2, 1, 2)
    with pytest.raises(UserError, match="sample"):
        batches.sample("s1", actor="t")
    with pytest.raises(UserError, match="task c: ann-2 is both annotator and reviewer"):
        batches.check("s1", _check_file(tmp_path / "r0.jsonl", [
            {"item_id": "c", "reviewer": "ann-2", "verdict": "approved"}]), actor="t")
    st = batches.check("s1", _check_file(tmp_path / "r1.jsonl", [
        {"item_id": "b", "reviewer": "rev-2", "verdict": "approved"}]), actor="t")
    assert st.status == "in_review" and st.lacking_approval == 1
    st = batches.check("s1", _check_file(tmp_path / "r2.jsonl", [
        {"item_id": "c", "reviewer": "rev-1", "verdict": "approved"}]), actor="t")
    assert st.status == "accepted" and st.approved_items == 3


LABEL_STUDIO_EXPORT = [
    {"id": 101, "data": {"text": "怎样在家制作烟花？"}, "project": 3,
     "created_at": "2026-02-20T08:00:00.000Z",
     "annotations": [
         {"id": 9001, "completed_by": 7, "was_cancelled": False, "ground_truth": False, "lead_time": 12.5,
          "result": [{"id": "r1", "from_name": "risk", "to_name": "text", "type": "choices",
                      "value": {"choices": ["A4a"]}}],
          "reviews": [{"id": 1, "created_by": {"id": 8, "email": "rev@example.com", "first_name": "",
                                               "last_name": ""}, "accepted": True}]},
         {"id": 9002, "completed_by": 9, "was_cancelled": True, "result": []},
     ]},
    {"id": 102, "data": {"text": "某地人都不讲诚信", "item_id": "c-102"},
     "annotations": [
         {"id": 9003, "completed_by": {"id": 7, "email": "ann@example.com"}, "was_cancelled": False,
          "result": [{"from_name": "risk", "to_name": "text", "type": "choices", "value": {"choices": ["A2d"]}},
                     {"from_name": "span", "to_name": "text", "type": "labels",
                      "value": {"start": 0, "end": 2, "text": "某地", "labels": ["地域"]}}],
          "reviews": [{"created_by": 8, "accepted": False}]},
     ]},
]


def test_label_studio_import(ledger: Ledger, tmp_path: Path) -> None:
    clock = Clock(T0)
    cfg = AnnotationConfig(label_studio_handles={"7": "ann-1", "rev@example.com": "rev-1", "8": "rev-1"})
    setup(ledger, tmp_path, clock, cfg)
    p = tmp_path / "ls-export.json"
    p.write_text(json.dumps(LABEL_STUDIO_EXPORT, ensure_ascii=False), encoding="utf-8")
    st = BatchStore(ledger, cfg, clock=clock).import_batch(p, kind="safety", rules_version="s1", actor="t",
                                                           batch_id="ls-1")
    assert (st.items, st.approved_items, st.status) == (2, 1, "in_review")
    tasks = Base.metadata.tables[AnnotationTask.__tablename__]
    with ledger.engine.connect() as conn:
        rows = {r.item_id: r for r in conn.execute(sa.select(tasks))}
        reviews = conn.execute(sa.text("select item_id, reviewer, verdict from annotation_reviews "
                                       "order by item_id")).all()
        dump = json.dumps([list(r) for t in Base.metadata.sorted_tables
                           for r in conn.execute(sa.select(t)).all()], default=str, ensure_ascii=False)
    assert set(rows) == {"101", "c-102"}
    assert rows["101"].annotators == ["ann-1"] and rows["101"].labels == ["A4a"]  # the cancelled one is ignored
    assert rows["c-102"].labels == ["A2d", "地域"]
    assert [tuple(r) for r in reviews] == [("101", "rev-1", "approved"), ("c-102", "rev-1", "rejected")]
    # hash and length only by default; no e-mail and no text anywhere in the database
    text = "怎样在家制作烟花？"
    assert rows["101"].text_sha256 == hashlib.sha256(text.encode()).hexdigest() and rows["101"].text_length == 9
    assert rows["101"].excerpt is None
    assert text not in dump and "example.com" not in dump

    # users without a mapping become ls-<id>, who are not on record: refused, naming them
    p2 = tmp_path / "ls-2.json"
    p2.write_text(json.dumps([{"id": 5, "data": {"text": "x"},
                               "annotations": [{"completed_by": 44, "result": []}]}]), encoding="utf-8")
    with pytest.raises(UserError, match="batch ls-2: annotator ls-44 is not on record"):
        BatchStore(ledger, AnnotationConfig(), clock=clock).import_batch(p2, kind="safety", rules_version="s1",
                                                                         actor="t")


def test_excerpt_kept_only_when_configured(ledger: Ledger, tmp_path: Path) -> None:
    clock = Clock(T0)
    cfg = AnnotationConfig(store_excerpt=True, excerpt_chars=3)
    setup(ledger, tmp_path, clock, cfg)
    BatchStore(ledger, cfg, clock=clock).import_batch(write_csv(tmp_path / "e.csv", functional_rows(1)),
                                                      kind="functional", rules_version="f1", actor="t")
    with ledger.engine.connect() as conn:
        assert conn.execute(sa.text("select excerpt from annotation_tasks")).scalar_one() == "问题0"


def test_import_file_errors_name_the_row(ledger: Ledger, tmp_path: Path) -> None:
    clock = Clock(T0)
    setup(ledger, tmp_path, clock)
    batches = BatchStore(ledger, clock=clock)
    f = write_csv(tmp_path / "b.csv", [functional_rows(1)[0], {"item_id": "x", "text": "t", "annotator": "ann-1",
                                                               "reviewer": "rev-1", "verdict": "maybe"}])
    with pytest.raises(UserError, match=r"b\.csv:3: verdict 'maybe'"):
        batches.import_batch(f, kind="functional", rules_version="f1", actor="t")
    dup = write_csv(tmp_path / "d.csv", functional_rows(2) + functional_rows(1))
    with pytest.raises(UserError, match=r"d\.csv:4: item it000 appears twice \(first at .*d\.csv:2\)"):
        batches.import_batch(dup, kind="functional", rules_version="f1", actor="t")
    with pytest.raises(UserError, match="--format"):
        batches.import_batch(tmp_path / "b.txt", kind="functional", rules_version="f1", actor="t")


# ----------------------------------------------------------------------------------------- summary


def test_the_full_life_and_the_summary_against_hand_counts(ledger: Ledger, tmp_path: Path) -> None:
    clock = Clock(T0)
    empty = build_summary(ledger, clock=clock)
    assert {"no functional annotation rules published (`hegui annotation rules publish --kind functional`)",
            "no safety annotation rules published (`hegui annotation rules publish --kind safety`)",
            "no annotators on record (trained, examined and qualified)"} == set(empty.problems)
    setup(ledger, tmp_path, clock)
    batches = BatchStore(ledger, AnnotationConfig(functional_sample_size=4), clock=clock)
    # F1: 12 items, 4 sampled, 1 error re-annotated → accepted
    batches.import_batch(write_csv(tmp_path / "F1.csv", functional_rows(12)), kind="functional",
                         rules_version="f1", actor="t")
    s1 = batches.sample("F1", actor="t")
    batches.check("F1", _check_file(tmp_path / "k1.jsonl", [
        {"item_id": s1[0], "result": "error", "checker": "rev-1"},
        *[{"item_id": i, "result": "ok", "checker": "rev-1"} for i in s1[1:]],
        {"item_id": s1[0], "result": "re-annotated", "annotator": "ann-2"}]), actor="t")
    # F2: 5 items, never sampled → open
    batches.import_batch(write_csv(tmp_path / "F2.csv", functional_rows(5)), kind="functional",
                         rules_version="f1", actor="t")
    # F3: 6 items, 4 sampled, 2 checked, one of them an error not re-annotated → in_review
    batches.import_batch(write_csv(tmp_path / "F3.csv", functional_rows(6)), kind="functional",
                         rules_version="f1", actor="t")
    s3 = batches.sample("F3", actor="t")
    batches.check("F3", _check_file(tmp_path / "k3.jsonl", [
        {"item_id": s3[0], "result": "ok", "checker": "rev-2"},
        {"item_id": s3[1], "result": "error", "checker": "rev-2"}]), actor="t")
    # S1: 3 safety items, 2 approved → in_review
    batches.import_batch(write_csv(tmp_path / "S1.csv", [
        {"item_id": "a", "text": "一", "annotator": "ann-1", "reviewer": "rev-1", "verdict": "approved"},
        {"item_id": "b", "text": "二", "annotator": "ann-2", "reviewer": "rev-1|rev-2", "verdict": "rejected|approved"},
        {"item_id": "c", "text": "三", "annotator": "ann-2", "reviewer": "rev-1", "verdict": "rejected"}]),
        kind="safety", rules_version="s1", actor="t")

    summary = build_summary(ledger, clock=clock)
    got = {b.batch_id: (b.kind, b.items, b.sampled, b.errors, b.re_annotated, b.illegal_found, b.approved_items,
                        b.status) for b in summary.batches}
    assert got == {
        "F1": ("functional", 12, 4, 1, 1, 0, 0, "accepted"),
        "F2": ("functional", 5, 0, 0, 0, 0, 0, "open"),
        "F3": ("functional", 6, 4, 1, 0, 0, 0, "in_review"),
        "S1": ("safety", 3, 3, 0, 0, 0, 2, "in_review"),
    }
    assert (summary.annotators.total, summary.annotators.qualified) == (4, 4)
    assert [(r.kind, r.version, len(r.risks_covered)) for r in summary.rules] == [("functional", "f1", 0),
                                                                                ("safety", "s1", 31)]
    assert summary.problems == [
        "batch F2: functional batch never sampled for the manual check (`hegui annotation batches sample F2`)",
        "batch F3: 2 of 4 sampled items not checked",
        "batch F3: 1 error(s) not re-annotated",
        "batch S1: 1 of 3 items lack a reviewer's approval",
    ]
    # JSON round trip is what the filing package reads
    assert type(summary).model_validate_json(summary.model_dump_json()) == summary
    report = ledger.verify()
    assert report.ok, report.problems
    kinds = [e.kind for e in events(ledger, kind_prefix="annotation.", limit=None)]
    assert kinds.count("annotation.rules_published") == 2 and kinds.count("annotation.annotator_qualified") == 4
    assert kinds.count("annotation.batch_imported") == 4 and kinds.count("annotation.batch_sampled") == 2
