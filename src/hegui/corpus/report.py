"""The corpus audit report (Art. 7; TC260-003 §5.1, §9) as HTML and PDF, for the filing package.

One template (Jinja2, autoescaped: source names and excerpts come from the data) renders the HTML
page and, through WeasyPrint, the PDF. Three matplotlib charts, inlined as SVG: each source's
harmful-content rate with its Wilson interval against the 5% line, PII findings by type, and the two
checks' pass rates with intervals against 98% and 96%. Chinese must not come out as boxes: the
charts register the CJK font :func:`hegui.cases.report.find_font` finds (or ``corpus.report_font``),
and the PDF loads it with ``@font-face``; the SVG text is drawn as paths so it shows anywhere.
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any

from hegui import taxonomy
from hegui.corpus.summary import AuditSummary, CheckResult

HTML_NAME = "report.html"
PDF_NAME = "report.pdf"
TITLE = "训练数据安全评估报告"
DECISION_ZH = {"ACCEPT": "可采集/可训练", "REJECT": "不得采集/不得训练", "NOT PROVEN": "尚不能确定"}
VERDICT_ZH = {"PASS": "合格", "FAIL": "不合格", "NOT PROVEN": "尚不能确定", "PENDING": "待人工审核"}
CHECK_ZH = {"automated": "关键词与分类模型抽检", "manual": "人工抽检"}
COLOURS = {"ACCEPT": "#2e7d32", "REJECT": "#b71c1c", "NOT PROVEN": "#f9a825"}


def risk_name(code: str) -> str:
    return f"{code} {taxonomy.get(code).name_zh}" if taxonomy.is_known(code) else code


def _figure(font: Path, width: float, height: float) -> tuple[Any, Any, Any]:
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    font_manager.fontManager.addfont(str(font))
    prop = font_manager.FontProperties(fname=str(font))
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(), prop


def _svg(fig: Any) -> str:
    import matplotlib

    fig.tight_layout()
    buf = io.BytesIO()
    # the CJK font has no U+2212 minus; paths so the SVG shows without the font; no date, so the
    # same audit draws the same bytes
    with matplotlib.rc_context({"axes.unicode_minus": False, "svg.fonttype": "path", "svg.hashsalt": "hegui"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue().decode("utf-8")


def chart_sources(summary: AuditSummary, font: Path, threshold: float) -> str:
    """Each source's rate (dot) and 95% interval (bar), coloured by decision, against the threshold."""
    fig, ax, prop = _figure(font, 7.5, max(1.6, 0.42 * len(summary.sources) + 1.0))
    names = [v.source for v in summary.sources]
    y = list(range(len(names)))
    for i, v in enumerate(summary.sources):
        if v.rate is None:
            continue
        colour = COLOURS[v.decision]
        low, high = v.ci_low or 0.0, v.ci_high or 0.0
        ax.plot([low * 100, high * 100], [i, i], color=colour, linewidth=3, solid_capstyle="butt")
        ax.plot([v.rate * 100], [i], "o", color="black", markersize=4)
    ax.axvline(threshold * 100, color="#b71c1c", linestyle="--", linewidth=1)
    ax.text(threshold * 100, -0.7, f" {threshold:.0%}", color="#b71c1c", fontproperties=prop, va="bottom")
    ax.set_yticks(y, names, fontproperties=prop)
    ax.set_ylim(len(names) - 0.5, -0.9)
    ax.set_xlabel("违法不良信息占比（%，点为样本比例，横条为95%置信区间）", fontproperties=prop)
    ax.set_title("各来源违法不良信息占比与5%阈值", fontproperties=prop)
    ax.set_xlim(left=0)
    return _svg(fig)


def chart_pii(summary: AuditSummary, font: Path) -> str:
    totals: dict[str, int] = {}
    for v in summary.sources:
        for k, n in v.pii.items():
            totals[k] = totals.get(k, 0) + n
    fig, ax, prop = _figure(font, 7.5, max(1.6, 0.35 * len(totals) + 1.0))
    kinds = sorted(totals, key=lambda k: -totals[k])
    ax.barh(range(len(kinds)), [totals[k] for k in kinds], color="#1565c0")
    ax.set_yticks(range(len(kinds)), kinds or [], fontproperties=prop)
    ax.invert_yaxis()
    ax.set_xlabel("发现次数", fontproperties=prop)
    ax.set_title("个人信息（按类型）" + ("" if kinds else "：未发现"), fontproperties=prop)
    return _svg(fig)


def chart_checks(summary: AuditSummary, font: Path) -> str:
    fig, ax, prop = _figure(font, 7.5, 2.0)
    checks: list[CheckResult] = [summary.automated, summary.manual]
    for i, c in enumerate(checks):
        ax.plot([c.threshold * 100], [i], "|", color="#b71c1c", markersize=18, markeredgewidth=2)
        if c.rate is not None:
            ax.plot([(c.ci_low or 0) * 100, (c.ci_high or 0) * 100], [i, i], color="#546e7a", linewidth=3)
            ax.plot([c.rate * 100], [i], "o", color="black", markersize=4)
        else:
            ax.text(c.threshold * 100, i - 0.25, f" {VERDICT_ZH[c.verdict]}", fontproperties=prop, fontsize=8)
    ax.set_yticks([0, 1], [CHECK_ZH[c.name] for c in checks], fontproperties=prop)
    ax.set_ylim(1.6, -0.6)
    lows = [c.ci_low for c in checks if c.ci_low is not None] + [c.threshold for c in checks]
    ax.set_xlim(max(0.0, min(lows) * 100 - 2), 100.5)
    ax.set_xlabel("合格率（%，竖线为合格阈值）", fontproperties=prop)
    ax.set_title("抽检合格率", fontproperties=prop)
    return _svg(fig)


def _data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def render_html(summary: AuditSummary, font: Path, threshold: float = 0.05) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("hegui.corpus", "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("audit_report.html").render(
        s=summary, title=TITLE, font_url=font.resolve().as_uri(), threshold=threshold,
        decisions=DECISION_ZH, verdicts=VERDICT_ZH, checks=CHECK_ZH, risk_name=risk_name,
        chart_sources=_data_uri(chart_sources(summary, font, threshold)),
        chart_pii=_data_uri(chart_pii(summary, font)), chart_checks=_data_uri(chart_checks(summary, font)))


def write_audit_report(out: Path, summary: AuditSummary, font: Path | None = None,
                       threshold: float = 0.05) -> dict[str, str]:
    """Write ``OUT/report.html`` and ``OUT/report.pdf`` (each atomically); returns their paths."""
    from hegui.cases.report import find_font
    from hegui.corpus.audit import write_atomic
    from hegui.pdf import weasyprint_html

    font_path = find_font(font)
    html = render_html(summary, font_path, threshold)
    write_atomic(out / HTML_NAME, html.encode("utf-8"))
    # WeasyPrint logs every CSS property it skips at WARNING; they are not the report's business
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    pdf = weasyprint_html()(string=html, base_url=str(font_path.parent)).write_pdf()
    write_atomic(out / PDF_NAME, pdf or b"")
    return {"report_html": str(out / HTML_NAME), "report_pdf": str(out / PDF_NAME)}
