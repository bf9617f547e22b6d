"""``hegui evidence export``: what Art. 19 lets the authority ask for in an inspection, over a date
range: training-data sources, scale and types; annotation rules; the model and its safety
mechanism; decision statistics and enforcement counts from the ledger; the chain's verification.

Counts come straight from the ledger's rows (decisions of kind ``decision`` only: a stream's opening
and checkpoint rows are not decisions) with days in the provider's time zone (``accounts.timezone``).
Written as JSON, XLSX and a short PDF, with a manifest of SHA-256 digests.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hegui.errors import UserError
from hegui.filing.inputs import detector_summary, digest, dumps, policy_summary

if TYPE_CHECKING:
    from hegui.annotation.summary import AnnotationSummary
    from hegui.config import HeguiConfig
    from hegui.corpus.summary import AuditSummary
    from hegui.ledger.store import Ledger

EVIDENCE_JSON = "evidence.json"
EVIDENCE_XLSX = "evidence.xlsx"
EVIDENCE_PDF = "evidence.pdf"
MANIFEST = "manifest.json"
TITLE = "生成式人工智能服务监督检查材料"


def parse_day(option: str, value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None


def period(start: str, end: str, timezone: str) -> tuple[date, date, datetime, datetime]:
    """The inclusive day range and its UTC bounds [lo, hi)."""
    first, last = parse_day("--from", start), parse_day("--to", end)
    if last < first:
        raise UserError(f"--to: {last} is before --from {first}")
    zone = ZoneInfo(timezone)
    lo = datetime.combine(first, time(0), zone).astimezone(UTC)
    hi = datetime.combine(last + timedelta(days=1), time(0), zone).astimezone(UTC)
    return first, last, lo, hi


def read_sources(path: Path) -> list[dict[str, Any]]:
    """A sources registry: JSON (a list, or ``{"sources": [...]}``), YAML likewise, or CSV with a header."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"--sources {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--sources {path}: cannot read ({exc.__class__.__name__})") from None
    if path.suffix.lower() == ".csv":
        return [dict(r) for r in csv.DictReader(text.splitlines())]
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (ValueError, Exception) as exc:  # json or yaml: both name the line in their message
        raise UserError(f"--sources {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(data, dict):
        data = data.get("sources")
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise UserError(f"--sources {path}: expected a list of sources (mappings)")
    return data


def decision_stats(ledger: Ledger, lo: datetime, hi: datetime, zone: ZoneInfo) -> dict[str, Any]:
    import sqlalchemy as sa

    from hegui.ledger.models import Base

    d = Base.metadata.tables["decisions"]
    q = (sa.select(d.c.created_at, d.c.direction, d.c.action, d.c.scene, d.c.risks)
         .where(d.c.kind == "decision", d.c.created_at >= lo, d.c.created_at < hi).order_by(d.c.seq))
    by_action: Counter[str] = Counter()
    by_direction: Counter[str] = Counter()
    by_scene: Counter[str] = Counter()
    by_risk: Counter[str] = Counter()
    by_day: dict[str, Counter[str]] = {}
    total = 0
    with ledger.engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(q):
            total += 1
            when = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
            day = when.astimezone(zone).date().isoformat()
            by_action[row.action] += 1
            by_direction[row.direction] += 1
            by_scene[row.scene] += 1
            for r in set(row.risks or []):
                by_risk[r] += 1
            by_day.setdefault(day, Counter())[row.action] += 1
    return {"total": total, "by_action": dict(by_action.most_common()), "by_direction": dict(by_direction.most_common()),
            "by_scene": dict(by_scene.most_common()), "by_risk": dict(by_risk.most_common()),
            "by_day": {k: {"total": sum(v.values()), **dict(v)} for k, v in sorted(by_day.items())}}


def enforcement_stats(ledger: Ledger, lo: datetime, hi: datetime) -> dict[str, Any]:
    import sqlalchemy as sa

    from hegui.ledger.models import Base

    e = Base.metadata.tables["events"]
    q = (sa.select(e.c.kind, sa.func.count()).where(e.c.kind.startswith("ladder."), e.c.created_at >= lo,
                                                   e.c.created_at < hi).group_by(e.c.kind))
    with ledger.engine.connect() as conn:
        rows = {str(k): int(n) for k, n in conn.execute(q).all()}
    return {"total": sum(rows.values()), "by_kind": dict(sorted(rows.items()))}


def build_evidence(cfg: HeguiConfig, ledger: Ledger, start: str, end: str, *, audit: AuditSummary | None = None,
                   sources: list[dict[str, Any]] | None = None, annotation: AnnotationSummary | None = None,
                   now: datetime | None = None) -> dict[str, Any]:
    from hegui.ledger.store import redact_url

    tz = cfg.accounts.timezone
    first, last, lo, hi = period(start, end, tz)
    zone = ZoneInfo(tz)
    training: dict[str, Any] = {"audit": None, "registry": sources or []}
    if audit is not None:
        training["audit"] = {
            "audit_id": audit.audit_id, "records": audit.records, "bytes_read": audit.bytes_read,
            "by_type": dict(Counter(s.source_type for s in audit.sources)),
            "records_by_type": {t: sum(s.records for s in audit.sources if s.source_type == t)
                                for t in sorted({s.source_type for s in audit.sources})},
            "sources": [{"source": s.source, "type": s.source_type, "records": s.records, "flagged": s.flagged,
                         "rate": s.rate, "decision": s.decision} for s in audit.sources],
            "automated": audit.automated.model_dump(), "manual": audit.manual.model_dump()}
    if sources:
        training["registry_by_type"] = dict(Counter(str(s.get("source_type") or s.get("type") or "—") for s in sources))
    rules = [r.model_dump(mode="json") for r in annotation.rules] if annotation is not None else []
    lab = cfg.labeling
    verify = ledger.verify()
    return {
        "title": TITLE, "generated_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "period": {"from": first.isoformat(), "to": last.isoformat(), "timezone": tz,
                   "utc_from": lo.isoformat(), "utc_to": hi.isoformat()},
        "provider": {"name": cfg.provider.name, "uscc": cfg.provider.uscc},
        "ledger": redact_url(ledger.url),
        "training_data": training,
        "annotation_rules": rules,
        "mechanism": {"detectors": detector_summary(cfg), "policy": policy_summary(cfg),
                      "labels": {"explicit": lab.explicit, "text_prefix": lab.text.prefix, "text_position": lab.text.position,
                                 "image": lab.image.text, "video": lab.video.text, "audio_cue": lab.audio.cue,
                                 "signed": bool(lab.signing_key)}},
        "decisions": decision_stats(ledger, lo, hi, zone),
        "enforcement": enforcement_stats(ledger, lo, hi),
        "verification": verify.to_dict(),
    }


def write_evidence_xlsx(ev: dict[str, Any], path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("概要")
    ws.append(["项目", "内容"])
    p = ev["period"]
    for row in (("服务提供者", ev["provider"]["name"]), ("期间", f"{p['from']} 至 {p['to']}（{p['timezone']}）"),
                ("决定总数", ev["decisions"]["total"]), ("处置阶梯事件", ev["enforcement"]["total"]),
                ("台账校验", "通过" if ev["verification"]["ok"] else "未通过"),
                ("校验行数", ev["verification"]["rows_checked"])):
        ws.append(list(row))
    actions = sorted({a for v in ev["decisions"]["by_day"].values() for a in v if a != "total"})
    ws = wb.create_sheet("按日")
    ws.append(["日期", "合计", *actions])
    for day, v in ev["decisions"]["by_day"].items():
        ws.append([day, v["total"], *(v.get(a, 0) for a in actions)])
    for name, key in (("按处置", "by_action"), ("按风险", "by_risk"), ("按方向", "by_direction"), ("按场景", "by_scene")):
        ws = wb.create_sheet(name)
        ws.append(["类别", "决定数"])
        for k, n in ev["decisions"][key].items():
            ws.append([k, n])
    ws = wb.create_sheet("处置阶梯")
    ws.append(["事件", "次数"])
    for k, n in ev["enforcement"]["by_kind"].items():
        ws.append([k, n])
    ws = wb.create_sheet("训练数据来源")
    ws.append(["来源", "类型", "条数", "违法不良", "结论"])
    audit = ev["training_data"]["audit"]
    for s in (audit or {}).get("sources", []):
        ws.append([s["source"], s["type"], s["records"], s["flagged"], s["decision"]])
    for s in ev["training_data"]["registry"]:
        ws.append([str(s.get("name") or s.get("source") or ""), str(s.get("source_type") or s.get("type") or ""),
                   "", "", "登记"])
    wb.save(path)


def render_html(ev: dict[str, Any], font: Path) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("hegui.filing", "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("evidence.html").render(ev=ev, font_url=font.resolve().as_uri())


def write_evidence(ev: dict[str, Any], folder: Path, font: Path) -> dict[str, Any]:
    from hegui.filing.report import html_to_pdf

    (folder / EVIDENCE_JSON).write_text(dumps(ev), encoding="utf-8")
    write_evidence_xlsx(ev, folder / EVIDENCE_XLSX)
    html_to_pdf(render_html(ev, font), folder / EVIDENCE_PDF, font.parent)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {"kind": "hegui.evidence.export", "generated_at": ev["generated_at"], "period": ev["period"],
                "verification_ok": ev["verification"]["ok"],
                "files": [{"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size, "sha256": digest(p)}
                          for p in files]}
    (folder / MANIFEST).write_text(dumps(manifest), encoding="utf-8")
    return manifest
