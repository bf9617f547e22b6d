"""The 安全评估报告 (security assessment report) of the filing package: one set of facts
(:func:`build_report`) written as DOCX (python-docx) and PDF (Jinja2 HTML → WeasyPrint).

Chinese must come out as Chinese: the chart registers the CJK font found by
:func:`hegui.cases.report.find_font` with matplotlib, the DOCX sets it as every style's East-Asian
font, the HTML loads it with ``@font-face``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hegui.filing.clauses import SECTIONS, ClauseResult, counts
from hegui.filing.inputs import FilingInputs

TITLE = "生成式人工智能服务安全评估报告"
SIGNATURE_ROLES: tuple[tuple[str, str], ...] = (
    ("legal_representative", "法定代表人"), ("assessment_lead", "评估负责人"), ("legality_lead", "合法性负责人"))
KIND_ZH = {"generated": "生成内容", "should_refuse": "应拒答", "should_not_refuse": "非拒答"}
JUDGE_ZH = {"refusal": "拒答识别", "keyword": "关键词", "classifier": "分类模型", "model": "大模型判定", "manual": "人工"}
VERDICT_ZH = {"PASS": "达标", "FAIL": "不达标", "NOT PROVEN": "未能证明"}


@dataclass
class FilingReport:
    generated_at: datetime
    provider: dict[str, Any]
    service: dict[str, str]
    signatories: list[tuple[str, str]]
    """(role in Chinese, name or "")."""
    clauses: list[ClauseResult]
    metrics: list[dict[str, Any]]
    run: dict[str, Any] | None
    annotation: dict[str, Any] | None
    audit: dict[str, Any] | None
    font: Path
    chart_png: bytes = field(default=b"", repr=False)
    chart_svg: str = field(default="", repr=False)
    run_charts: list[Path] = field(default_factory=list)
    """PNG charts of the run folder, shown after hegui's own chart."""

    @property
    def counts(self) -> dict[str, int]:
        return counts(self.clauses)

    def by_section(self) -> list[tuple[str, str, list[ClauseResult]]]:
        return [(s, name, [c for c in self.clauses if c.section == s]) for s, name in SECTIONS.items()]


def service_facts(inp: FilingInputs) -> dict[str, str]:
    f, t = inp.cfg.filing.service, inp.cfg.portal.texts
    return {
        "name": f.name or t.service_name, "form": f.form or "待确认", "url": f.url or "待确认",
        "entry": f.entry or "待确认", "launch_date": f.launch_date.isoformat() if f.launch_date else "待确认",
        "users": f.users or t.audience, "uses": f.uses or t.uses, "traffic": f.traffic or "待确认",
    }


def build_report(inp: FilingInputs, clauses: list[ClauseResult], font: Path, now: datetime) -> FilingReport:
    cfg = inp.cfg
    sig = cfg.filing.signatories
    metrics = [m.model_dump() for m in inp.run.metrics.metrics] if inp.run else []
    run = None
    if inp.run is not None:
        man = inp.run.manifest
        run = {"run_id": man.run_id, "model": man.model, "target": man.target, "seed": man.seed,
               "started_at": f"{man.started_at:%Y-%m-%d %H:%M}",
               "finished_at": f"{man.finished_at:%Y-%m-%d %H:%M}" if man.finished_at else "未完成",
               "sample_sizes": man.sample_sizes, "answers": len(inp.run.answers), "judges": inp.run.judges()}
    annotation = None
    if inp.annotation is not None:
        s = inp.annotation
        annotation = {
            "generated_at": f"{s.generated_at:%Y-%m-%d}", "source": inp.annotation_source,
            "rules": [f"{r.name}（{'功能性' if r.kind == 'functional' else '安全性'} {r.version}）" for r in s.rules],
            "annotators": s.annotators.model_dump(),
            "batches": len(s.batches), "items_total": sum(b.items for b in s.batches),
            "sampled": sum(b.sampled for b in s.batches), "errors": sum(b.errors for b in s.batches),
            "discarded": sum(b.status == "discarded" for b in s.batches), "problems": list(s.problems)}
    audit = None
    if inp.audit is not None:
        a = inp.audit
        audit = {"audit_id": a.audit_id, "records": a.records, "sources": len(a.sources),
                 "accepted": sum(s.decision == "ACCEPT" for s in a.sources),
                 "rejected": sum(s.decision == "REJECT" for s in a.sources),
                 "automated": a.automated.verdict, "manual": a.manual.verdict}
    report = FilingReport(
        generated_at=now,
        provider={"name": cfg.provider.name, "uscc": cfg.provider.uscc or "待确认", "service_code": cfg.provider.service_code},
        service=service_facts(inp),
        signatories=[(zh, getattr(sig, key)) for key, zh in SIGNATURE_ROLES],
        clauses=clauses, metrics=metrics, run=run, annotation=annotation, audit=audit, font=font,
        run_charts=[p for p in (inp.run.charts if inp.run else []) if p.suffix == ".png"])
    if metrics:
        report.chart_png, report.chart_svg = draw_metrics_chart(metrics, font)
    return report


def metric_label(m: dict[str, Any]) -> str:
    return f"{KIND_ZH.get(m['kind'], m['kind'])}·{JUDGE_ZH.get(m['judge'], m['judge'])}"


def draw_metrics_chart(metrics: list[dict[str, Any]], font: Path) -> tuple[bytes, str]:
    """Each metric's rate with its interval and threshold (drawn from metrics.json, so the report
    never depends on the run's own chart files)."""
    import matplotlib
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    font_manager.fontManager.addfont(str(font))
    prop = font_manager.FontProperties(fname=str(font))
    fig = Figure(figsize=(7.2, 0.5 * len(metrics) + 1.2), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = {"PASS": "#2e7d32", "FAIL": "#b71c1c", "NOT PROVEN": "#f9a825"}
    for i, m in enumerate(metrics):
        rate = m["rate"] if m["rate"] is not None else 0.0
        ax.barh(i, rate * 100, color=colours.get(m["verdict"], "#757575"), height=0.55)
        if m["ci_low"] is not None and m["ci_high"] is not None:
            ax.plot([m["ci_low"] * 100, m["ci_high"] * 100], [i, i], color="black", linewidth=1.2)
        ax.plot([m["threshold"] * 100] * 2, [i - 0.38, i + 0.38], color="#1565c0", linewidth=2)
        ax.text(101, i, f"{rate * 100:.1f}%  {VERDICT_ZH.get(m['verdict'], m['verdict'])}", va="center",
                fontproperties=prop, fontsize=8)
    ax.set_yticks(range(len(metrics)), [metric_label(m) for m in metrics], fontproperties=prop, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 125)
    ax.set_xticks([0, 20, 40, 60, 80, 100])
    ax.set_xlabel("比率（%）；黑线为置信区间，蓝线为要求", fontproperties=prop, fontsize=8)
    ax.set_title("评估测试结果", fontproperties=prop)
    fig.tight_layout()
    png, svg = io.BytesIO(), io.BytesIO()
    with matplotlib.rc_context({"axes.unicode_minus": False, "svg.fonttype": "path", "svg.hashsalt": "hegui"}):
        fig.savefig(png, format="png")
        fig.savefig(svg, format="svg", metadata={"Date": None})
    return png.getvalue(), svg.getvalue().decode("utf-8")


def evidence_text(c: ClauseResult) -> str:
    """The evidence cell: figures, files, the command to verify; or the reason and what to supply."""
    lines = list(c.evidence)
    if c.files:
        lines.append("文件：" + "、".join(c.files))
    if c.verify:
        lines.append("验证：" + c.verify)
    if c.reason:
        lines.append(("不适用理由：" if c.verdict == "不适用" else "理由：") + c.reason)
    if c.todo:
        lines.append("待补充：" + c.todo)
    return "\n".join(lines)


# -- DOCX ---------------------------------------------------------------------------------------------

def font_name(font: Path) -> str:
    from matplotlib import font_manager

    return str(font_manager.FontProperties(fname=str(font)).get_name())


def new_document(font: Path) -> Any:
    """A python-docx document whose every style uses ``font`` for Chinese."""
    import docx
    from docx.oxml.ns import qn
    from docx.shared import Pt

    name = font_name(font)
    doc = docx.Document()
    for style in doc.styles:
        element = getattr(style, "element", None)
        if element is None or getattr(style, "font", None) is None:
            continue
        style.font.name = name
        element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), name)
    doc.styles["Normal"].font.size = Pt(10.5)
    return doc


def _table(doc: Any, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Any:
    table = doc.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header, strict=True):
        cell.text = text
    for row in rows:
        for cell, text in zip(table.add_row().cells, row, strict=True):
            cell.text = text
    return table


def write_docx(r: FilingReport, path: Path) -> None:
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
    from docx.shared import Cm, Pt

    doc = new_document(r.font)
    for _ in range(4):
        doc.add_paragraph()
    title = doc.add_heading(TITLE, level=0)
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    for k, v in (("服务提供者", r.provider["name"]), ("统一社会信用代码", r.provider["uscc"]),
                 ("服务名称", r.service["name"]), ("评估日期", f"{r.generated_at:%Y年%m月%d日}")):
        p = doc.add_paragraph(f"{k}：{v}")
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        p.runs[0].font.size = Pt(14)
    doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)

    doc.add_heading("一、评估概述", level=1)
    n = r.counts
    doc.add_paragraph(f"本报告依据 GB/T 45654-2025 对上述服务逐条自评估，共 {len(r.clauses)} 条：符合 {n['符合']} 条，"
                      f"不符合 {n['不符合']} 条，不适用 {n['不适用']} 条，待确认 {n['待确认']} 条。“符合”仅在 hegui "
                      "掌握证据（文件、数据或可复核的命令）时给出；hegui 无法测量的事项标为“待确认”，由评估负责人补充材料后确认。")
    _table(doc, ("结论", "条数"), [(k, str(v)) for k, v in n.items()])
    s = r.service
    doc.add_heading("服务情况", level=2)
    _table(doc, ("项目", "内容"), [("服务名称", s["name"]), ("服务形式", s["form"]), ("访问地址", s["url"]),
                                 ("入口", s["entry"]), ("上线日期", s["launch_date"]), ("用户", s["users"]),
                                 ("用途", s["uses"]), ("访问量", s["traffic"])])

    doc.add_heading("二、逐条评估", level=1)
    for sec, name, items in r.by_section():
        doc.add_heading(f"第 {sec} 章 {name}", level=2)
        _table(doc, ("条款", "要求", "结论", "证据或理由"),
               [(f"{c.id}\n{c.title}", c.requirement, c.verdict, evidence_text(c)) for c in items])

    doc.add_heading("三、评估测试结果", level=1)
    if r.run:
        run = r.run
        doc.add_paragraph(f"评估运行 {run['run_id']}：模型 {run['model']}（{run['target']}），{run['started_at']} 至 "
                          f"{run['finished_at']}，回答 {run['answers']:,} 条，判定方法："
                          + "、".join(JUDGE_ZH.get(j, j) for j in run["judges"]) + "。")
        _table(doc, ("测试", "样本", "通过", "比率", "置信区间", "要求", "结论"),
               [(metric_label(m), str(m["n"]), str(m["k"]), _pct(m["rate"]), f"{_pct(m['ci_low'])}–{_pct(m['ci_high'])}",
                 f"{m['comparator']} {_pct(m['threshold'])}", VERDICT_ZH.get(m["verdict"], m["verdict"])) for m in r.metrics])
        if r.chart_png:
            doc.add_picture(io.BytesIO(r.chart_png), width=Cm(15))
        for chart in r.run_charts:
            doc.add_picture(str(chart), width=Cm(14))
    else:
        doc.add_paragraph("未提供评估运行（待确认）。")

    doc.add_heading("四、训练数据与标注", level=1)
    if r.annotation:
        a = r.annotation
        ann = a["annotators"]
        doc.add_paragraph(f"标注规则：{'；'.join(a['rules']) or '无'}。标注人员 {ann['total']} 人（合格 {ann['qualified']}，"
                          f"撤销 {ann['revoked']}，复核逾期 {ann['recheck_overdue']}）。批次 {a['batches']} 个，共 "
                          f"{a['items_total']:,} 条，抽检 {a['sampled']:,} 条，错误 {a['errors']:,} 条，废弃批次 {a['discarded']} 个。")
        for p in a["problems"]:
            doc.add_paragraph(p, style="List Bullet")
    else:
        doc.add_paragraph("未提供标注记录摘要（待确认）。")
    if r.audit:
        a = r.audit
        doc.add_paragraph(f"语料审计 {a['audit_id']}：{a['records']:,} 条，来源 {a['sources']} 个（接受 {a['accepted']}，"
                          f"拒绝 {a['rejected']}），技术抽检 {a['automated']}，人工抽检 {a['manual']}。")
    else:
        doc.add_paragraph("未提供语料审计结果（待确认）。")

    doc.add_heading("五、签字", level=1)
    doc.add_paragraph("以上评估内容真实、准确、完整。")
    for role, name in r.signatories:
        doc.add_paragraph(f"{role}：{name or '＿＿＿＿＿＿＿＿'}")
        doc.add_paragraph("签字：＿＿＿＿＿＿＿＿＿＿＿＿    日期：＿＿＿＿年＿＿月＿＿日")
    doc.save(str(path))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


# -- PDF ----------------------------------------------------------------------------------------------

def _env() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("hegui.filing", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["pct"] = _pct
    return env


def render_html(r: FilingReport) -> str:
    chart = "data:image/svg+xml;base64," + base64.b64encode(r.chart_svg.encode()).decode("ascii") if r.chart_svg else ""
    run_charts = ["data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii") for p in r.run_charts]
    return _env().get_template("report.html").render(
        r=r, title=TITLE, font_url=r.font.resolve().as_uri(), chart_src=chart, run_charts=run_charts,
        evidence_text=evidence_text, metric_label=metric_label, verdict_zh=VERDICT_ZH, judge_zh=JUDGE_ZH)


def html_to_pdf(html: str, path: Path, base: Path) -> None:
    from hegui.pdf import weasyprint_html

    weasyprint_html()(string=html, base_url=str(base)).write_pdf(str(path))


def write_pdf(r: FilingReport, path: Path) -> None:
    html_to_pdf(render_html(r), path, r.font.parent)
