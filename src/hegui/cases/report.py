"""The incident report for the authority (Art. 14): one set of facts (:func:`build_report`) written as
JSON, DOCX (python-docx) and PDF (WeasyPrint), with a chart of the related decisions over time.

The report is in Chinese, for the 网信 office it goes to. Chinese must never come out as boxes: the
chart registers a CJK font with matplotlib, the DOCX sets it as the East-Asian font of every style,
and the PDF's HTML loads it with ``@font-face``. The font is ``cases.report_font`` when set, else the
first Chinese font fontconfig knows; without one the report is refused with a line that says how to
get one. :func:`write_report` writes the whole folder into a temporary folder beside the target and
renames it, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hegui import taxonomy
from hegui.cases.incidents import get_incident, incident_decisions
from hegui.errors import UserError
from hegui.ledger.events import events

if TYPE_CHECKING:
    from hegui.config import ProviderConfig
    from hegui.ledger.store import Ledger

FORMATS: tuple[str, ...] = ("json", "docx", "pdf")
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}
REPORT_TITLE = "生成式人工智能服务安全事件报告"
STATUS_ZH = {"open": "已发现", "contained": "已处置（停止生成、传输或消除）", "rectified": "已整改",
             "reported": "已报告主管部门", "closed": "已结案"}
ACTION_ZH = {"allow": "放行", "flag": "标记", "mask": "遮蔽", "refuse": "拒绝", "block": "拦截",
             "pending": "进行中"}
DIRECTION_ZH = {"input": "输入", "output": "输出"}
EVENT_ZH = {"incident.opened": "立案", "incident.decisions_added": "补充相关决定",
            "incident.contained": "停止与消除", "incident.rectified": "模型整改",
            "incident.reported": "向主管部门报告", "incident.closed": "结案",
            "incident.samples_exported": "导出整改训练样本"}
EXCERPT_CHARS = 120
FONT_HINT = ("set cases.report_font to a CJK font file (.ttf/.ttc/.otf), or install one "
             "(Debian: apt install fonts-wqy-microhei)")


class ReportError(UserError):
    pass


# -- the font --------------------------------------------------------------------------------------

def find_font(configured: Path | None = None) -> Path:
    """``configured`` (``cases.report_font``, resolved against the config) or the first font
    ``fc-list :lang=zh file`` names."""
    if configured is not None:
        if not configured.is_file():
            raise ReportError(f"cases.report_font: {configured}: no such font file; {FONT_HINT}")
        return configured
    found = _fontconfig_zh()
    if found is None:
        raise ReportError(f"no Chinese font found for the incident report: {FONT_HINT}")
    return found


@lru_cache(maxsize=1)
def _fontconfig_zh() -> Path | None:
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=20,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.split(":", 1)[0].strip() for line in out.splitlines() if line.strip())
    # prefer the fonts Debian ships for Chinese (WenQuanYi, Noto CJK) over whatever sorts first
    files.sort(key=lambda f: (0 if "wqy" in f.lower() else 1 if "cjk" in f.lower() else 2, f))
    for f in files:
        if Path(f).is_file():
            return Path(f)
    return None


# -- the facts ---------------------------------------------------------------------------------------

@dataclass
class Report:
    """Everything the report says; every writer renders these same facts."""

    generated_at: str
    timezone: str
    provider: dict[str, Any]
    incident: dict[str, Any]
    decisions: list[dict[str, Any]]
    missing_decisions: list[str]
    """Ids the incident names that the ledger no longer holds (pruned after the retention period)."""
    timeline: list[dict[str, Any]]
    counts_by_risk: dict[str, int]
    counts_by_action: dict[str, int]
    chart: dict[str, Any]
    """``bins`` (label, counts by action), ``unit`` (hour or day)."""
    font: str
    chart_png: bytes = field(default=b"", repr=False)
    chart_svg: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"title": REPORT_TITLE, "generated_at": self.generated_at, "timezone": self.timezone,
                "provider": self.provider, "incident": self.incident, "decisions": self.decisions,
                "missing_decisions": self.missing_decisions, "timeline": self.timeline,
                "counts_by_risk": self.counts_by_risk, "counts_by_action": self.counts_by_action,
                "chart": self.chart}


def risk_name(code: str) -> str:
    return taxonomy.BY_CODE[code].name_zh if code in taxonomy.BY_CODE else code


def build_report(ledger: Ledger, incident_id: str, provider: ProviderConfig, font: Path | None,
                 *, timezone: str = "Asia/Shanghai", now: datetime | None = None) -> Report:
    """The facts of one incident's report, with its chart drawn (``font``: see :func:`find_font`)."""
    font_path = find_font(font)
    zone = ZoneInfo(timezone)
    incident = get_incident(ledger, incident_id)
    rows = incident_decisions(ledger, incident)
    found = {r.decision_id for r in rows}

    def local(when: datetime) -> str:
        return when.astimezone(zone).isoformat(timespec="seconds")

    decisions = [{
        "decision_id": r.decision_id, "created_at": local(r.created_at),
        "created_local": r.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"), "direction": r.direction,
        "scene": r.scene, "action": r.action, "risks": list(r.risks),
        "risk_names": [risk_name(c) for c in r.risks],
        "excerpt": "（已应请求删除）" if r.erased_at is not None else r.excerpt[:EXCERPT_CHARS],
        "training_opt_out": r.training_opt_out,
    } for r in rows]
    timeline = [{"at": local(e.created_at), "kind": e.kind, "what": EVENT_ZH.get(e.kind, e.kind),
                 "actor": e.actor, "event_id": e.event_id, "data": e.data}
                for e in events(ledger, kind_prefix="incident.", limit=None) if e.data.get("incident") == incident_id]
    by_risk = Counter(c for r in rows for c in r.risks)
    by_action = Counter(r.action for r in rows)
    inc = incident.to_dict()
    for key in ("opened_at", "updated_at", "closed_at"):
        if inc[key]:
            inc[key] = local(datetime.fromisoformat(inc[key]))
    inc["status_zh"] = STATUS_ZH.get(incident.status, incident.status)
    bins, unit = _bins([r.created_at.astimezone(zone) for r in rows], [r.action for r in rows])
    report = Report(
        generated_at=local(now or datetime.now(UTC)), timezone=timezone,
        provider={"name": provider.name, "uscc": provider.uscc, "service_code": provider.service_code},
        incident=inc, decisions=decisions, missing_decisions=[d for d in incident.decision_ids if d not in found],
        timeline=timeline, counts_by_risk=dict(by_risk.most_common()),
        counts_by_action=dict(by_action.most_common()), chart={"unit": unit, "bins": bins}, font=str(font_path))
    report.chart_png, report.chart_svg = draw_chart(report, font_path)
    return report


def _bins(times: Sequence[datetime], actions: Sequence[str]) -> tuple[list[dict[str, Any]], str]:
    """Counts by action per hour when the decisions span two days or less, else per day; empty
    periods in between are kept, so the chart's time axis is honest."""
    if not times:
        return [], "day"
    first, last = min(times), max(times)
    hourly = last - first <= timedelta(days=2)
    step = timedelta(hours=1) if hourly else timedelta(days=1)

    def start(t: datetime) -> datetime:
        return t.replace(minute=0, second=0, microsecond=0) if hourly else \
            t.replace(hour=0, minute=0, second=0, microsecond=0)

    counts: dict[datetime, Counter[str]] = {}
    for t, a in zip(times, actions, strict=True):
        counts.setdefault(start(t), Counter())[a] += 1
    out: list[dict[str, Any]] = []
    cur = start(first)
    while cur <= start(last) and len(out) < 2000:
        label = cur.strftime("%m-%d %H:00") if hourly else cur.strftime("%Y-%m-%d")
        out.append({"start": cur.isoformat(), "label": label, "counts": dict(counts.get(cur, Counter()))})
        cur += step
    return out, "hour" if hourly else "day"


# -- the chart ---------------------------------------------------------------------------------------

def draw_chart(report: Report, font: Path) -> tuple[bytes, str]:
    """Stacked bars of the related decisions per period, by action, as PNG and SVG."""
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    font_manager.fontManager.addfont(str(font))
    prop = font_manager.FontProperties(fname=str(font))
    bins = report.chart["bins"]
    labels = [b["label"] for b in bins] or ["—"]
    actions = sorted({a for b in bins for a in b["counts"]}, key=lambda a: list(ACTION_ZH).index(a)
                     if a in ACTION_ZH else 99)
    fig = Figure(figsize=(7.5, 3.2), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = {"block": "#b71c1c", "refuse": "#e65100", "mask": "#f9a825", "flag": "#1565c0",
               "allow": "#2e7d32", "pending": "#757575"}
    bottom = [0] * len(labels)
    x = list(range(len(labels)))
    for a in actions:
        heights = [b["counts"].get(a, 0) for b in bins]
        ax.bar(x, heights, bottom=bottom, label=f"{ACTION_ZH.get(a, a)} ({a})", color=colours.get(a, "#546e7a"))
        bottom = [p + h for p, h in zip(bottom, heights, strict=True)]
    unit = "每小时" if report.chart["unit"] == "hour" else "每日"
    ax.set_title(f"相关决定数量（{unit}，按处置方式）", fontproperties=prop)
    ax.set_ylabel("决定数", fontproperties=prop)
    every = max(1, len(labels) // 12)
    ax.set_xticks(x[::every], labels[::every], rotation=30, ha="right", fontsize=7)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if actions:
        ax.legend(prop=prop, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    png, svg = io.BytesIO(), io.BytesIO()
    # rc settings only for these two calls: the minus sign as an ASCII hyphen (the CJK font has no U+2212),
    # text in the SVG as paths, so it shows without the font wherever it is opened
    import matplotlib

    with matplotlib.rc_context({"axes.unicode_minus": False, "svg.fonttype": "path", "svg.hashsalt": "hegui"}):
        fig.savefig(png, format="png")
        fig.savefig(svg, format="svg", metadata={"Date": None})
    return png.getvalue(), svg.getvalue().decode("utf-8")


# -- writers -----------------------------------------------------------------------------------------

def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _font_name(font: Path) -> str:
    from matplotlib import font_manager

    return str(font_manager.FontProperties(fname=str(font)).get_name())


def write_docx(report: Report, path: Path) -> None:
    import docx
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt

    name = _font_name(Path(report.font))
    doc = docx.Document()
    for style in doc.styles:
        element = getattr(style, "element", None)
        if element is None or getattr(style, "font", None) is None:
            continue
        style.font.name = name
        rpr = element.get_or_add_rPr()
        rpr.get_or_add_rFonts().set(qn("w:eastAsia"), name)
    doc.styles["Normal"].font.size = Pt(10.5)
    inc, prov = report.incident, report.provider
    title = doc.add_heading(REPORT_TITLE, level=0)
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    doc.add_heading(inc["title"], level=1)
    facts = [("服务提供者", prov["name"]), ("统一社会信用代码", prov["uscc"] or "—"),
             ("事件编号", inc["id"]), ("状态", inc["status_zh"]), ("发现时间", inc["opened_at"]),
             ("关联投诉举报", inc["case_id"] or "—"), ("报告生成时间", report.generated_at)]
    if inc["details"].get("authority"):
        facts.append(("报告对象", f'{inc["details"]["authority"]}（文号 {inc["details"].get("reference", "")}）'))
    table = doc.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for k, v in facts:
        cells = table.add_row().cells
        cells[0].text, cells[1].text = k, str(v)
    for heading, text in (("一、事件概述", inc["summary"] or "—"), ("二、停止生成、传输与消除措施", inc["stopped"] or "（尚未记录）"),
                          ("三、模型优化训练等整改措施", inc["rectification"] or "（尚未记录）")):
        doc.add_heading(heading, level=2)
        doc.add_paragraph(text)
    samples = inc["details"].get("samples")
    if samples:
        doc.add_paragraph(f"整改训练样本：导出 {samples['exported']} 条，因用户选择退出训练而排除 "
                          f"{samples['skipped_opt_out']} 条（{samples['at']}）。")
    doc.add_heading("四、相关决定", level=2)
    doc.add_paragraph(f"共 {len(report.decisions)} 条；按处置方式：" + _counts_zh(report.counts_by_action, ACTION_ZH)
                      + "；按风险类别：" + _counts_zh(report.counts_by_risk, None) + "。")
    doc.add_picture(io.BytesIO(report.chart_png), width=Cm(16))
    rows = doc.add_table(rows=1, cols=6)
    rows.style = "Table Grid"
    for cell, text in zip(rows.rows[0].cells, ("决定编号", "时间", "方向", "处置", "风险", "内容摘录（已遮蔽）"), strict=True):
        cell.text = text
    for d in report.decisions:
        cells = rows.add_row().cells
        values = (d["decision_id"], d["created_local"], DIRECTION_ZH.get(d["direction"], d["direction"]),
                  ACTION_ZH.get(d["action"], d["action"]), "、".join(d["risk_names"]) or "—", d["excerpt"])
        for cell, text in zip(cells, values, strict=True):
            cell.text = text
    if report.missing_decisions:
        doc.add_paragraph("已超过保存期限而删除的决定：" + "、".join(report.missing_decisions))
    doc.add_heading("五、处置过程", level=2)
    steps = doc.add_table(rows=1, cols=3)
    steps.style = "Table Grid"
    for cell, text in zip(steps.rows[0].cells, ("时间", "步骤", "操作人"), strict=True):
        cell.text = text
    for e in report.timeline:
        cells = steps.add_row().cells
        cells[0].text, cells[1].text, cells[2].text = e["at"][:19].replace("T", " "), e["what"], e["actor"]
    doc.save(str(path))


def _counts_zh(counts: dict[str, int], names: dict[str, str] | None) -> str:
    if not counts:
        return "无"
    return "，".join(f"{names.get(k, k) if names else risk_name(k)} {v}" for k, v in counts.items())


def render_html(report: Report) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("hegui.cases", "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("incident_report.html").render(
        r=report, title=REPORT_TITLE, font_url=Path(report.font).resolve().as_uri(),
        chart_src="data:image/svg+xml;base64," + base64.b64encode(report.chart_svg.encode()).decode("ascii"),
        actions=ACTION_ZH, directions=DIRECTION_ZH,
        by_action=_counts_zh(report.counts_by_action, ACTION_ZH), by_risk=_counts_zh(report.counts_by_risk, None))


def write_pdf(report: Report, path: Path) -> None:
    from hegui.pdf import weasyprint_html

    weasyprint_html()(string=render_html(report), base_url=str(Path(report.font).parent)).write_pdf(str(path))


def report_name(report: Report, fmt: str) -> str:
    return f"incident-{report.incident['id']}.{fmt}"


def write_report(report: Report, out: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the report as ``formats`` plus ``chart.png`` and ``chart.svg`` into the folder ``out``
    (which must not exist yet, or be empty): all of it, or nothing."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ReportError(f"--format: {', '.join(unknown) or '(none)'} is not one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReportError(f"{out}: already exists and is not an empty folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ReportError(f"{parent}: no such folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        writers = {"json": write_json, "docx": write_docx, "pdf": write_pdf}
        for fmt in dict.fromkeys(formats):
            writers[fmt](report, tmp / report_name(report, fmt))
        (tmp / "chart.png").write_bytes(report.chart_png)
        (tmp / "chart.svg").write_text(report.chart_svg, encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out.iterdir())


def render(report: Report, fmt: str) -> bytes:
    """One format as bytes (for the HTTP API)."""
    if fmt == "json":
        return (json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="hegui-report-") as d:
        path = Path(d) / report_name(report, fmt)
        {"docx": write_docx, "pdf": write_pdf}[fmt](report, path)
        return path.read_bytes()
