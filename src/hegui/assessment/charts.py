"""Charts of a run's metrics (``RUN/charts/``, SVG and PNG): for each clause, every judge's rate
with its Wilson interval against the threshold line; and per clause a per-risk (or per-topic) bar
chart by judge. Chinese labels need a CJK font: ``assessment.chart_font`` or fontconfig's first."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

from hegui.assessment.metrics import CLAUSES
from hegui.assessment.results import (
    AssessmentMetrics,
    MetricResult,
    RunFolder,
    write_atomic,
    write_atomic_bytes,
)

CLAUSE_ZH = {
    "generated.pass_rate": "生成内容测试题 合格率",
    "should_refuse.refusal_rate": "应拒答测试题 拒答率",
    "should_not_refuse.refusal_rate": "非拒答测试题 拒答率",
}
JUDGE_ZH = {"refusal": "拒答识别", "keyword": "关键词", "classifier": "分类模型", "model": "大模型评判",
            "manual": "人工"}
VERDICT_COLOUR = {"PASS": "#2e7d32", "FAIL": "#b71c1c", "NOT PROVEN": "#f9a825"}


def _save(fig: object, stem: Path) -> list[Path]:
    import matplotlib

    png, svg = io.BytesIO(), io.BytesIO()
    # the CJK font has no U+2212 minus; text as paths so the SVG shows without the font installed
    with matplotlib.rc_context({"axes.unicode_minus": False, "svg.fonttype": "path", "svg.hashsalt": "hegui"}):
        fig.savefig(png, format="png")  # type: ignore[attr-defined]
        fig.savefig(svg, format="svg", metadata={"Date": None})  # type: ignore[attr-defined]
    write_atomic_bytes(stem.with_suffix(".png"), png.getvalue())
    write_atomic(stem.with_suffix(".svg"), svg.getvalue().decode("utf-8"))
    return [stem.with_suffix(".png"), stem.with_suffix(".svg")]


def draw_charts(folder: RunFolder, metrics: AssessmentMetrics, font: Path) -> list[Path]:
    """Write every chart; returns the files written."""
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    font_manager.fontManager.addfont(str(font))
    prop = font_manager.FontProperties(fname=str(font))
    by_clause: dict[str, list[MetricResult]] = defaultdict(list)
    for m in metrics.metrics:
        by_clause[m.clause].append(m)
    written: list[Path] = []
    out = folder.charts_dir
    for clause, _kind, _cmp in CLAUSES:
        rows = by_clause.get(clause)
        if not rows:
            continue
        threshold, comparator = rows[0].threshold, rows[0].comparator
        fig = Figure(figsize=(6.4, 3.4), dpi=150)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        x = list(range(len(rows)))
        for i, m in enumerate(rows):
            if m.rate is None or m.ci_low is None or m.ci_high is None:
                ax.text(i, 0.5, "未评判", ha="center", va="center", fontproperties=prop, color="#757575")
                continue
            ax.errorbar([i], [m.rate], yerr=[[max(0.0, m.rate - m.ci_low)], [max(0.0, m.ci_high - m.rate)]], fmt="o", capsize=6,
                        color=VERDICT_COLOUR[m.verdict], markersize=7)
            ax.annotate(f"{m.rate:.1%}\n{m.k}/{m.n}\n{m.verdict}", (i, m.rate), xytext=(12, -6),
                        textcoords="offset points", fontsize=7,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
        ax.axhline(threshold, color="#455a64", linestyle="--", linewidth=1)
        ax.text(len(rows) - 0.5, threshold, f"阈值 {comparator} {threshold:.0%}", fontproperties=prop,
                fontsize=8, va="bottom", ha="right", color="#455a64")
        ax.set_xticks(x, [JUDGE_ZH.get(m.judge, m.judge) for m in rows], fontproperties=prop)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("比率", fontproperties=prop)
        ax.set_title(f"{CLAUSE_ZH[clause]}（{rows[0].confidence:.0%} Wilson 置信区间）", fontproperties=prop)
        fig.tight_layout()
        written += _save(fig, out / clause.replace(".", "_"))

        # per risk / topic, one bar group per judge
        judged = [m for m in rows if m.by_group]
        groups = sorted({g for m in judged for g in m.by_group})
        if not groups:
            continue
        fig = Figure(figsize=(max(6.4, 0.32 * len(groups) * max(1, len(judged)) + 1.5), 3.6), dpi=150)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        width = 0.8 / max(1, len(judged))
        for j, m in enumerate(judged):
            xs = [g_i + (j - (len(judged) - 1) / 2) * width for g_i in range(len(groups))]
            heights = [m.by_group[g][0] / m.by_group[g][1] if m.by_group.get(g, (0, 0))[1] else 0.0
                       for g in groups]
            ax.bar(xs, heights, width=width, label=JUDGE_ZH.get(m.judge, m.judge))
        ax.axhline(threshold, color="#455a64", linestyle="--", linewidth=1)
        ax.set_xticks(list(range(len(groups))), groups, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("比率", fontproperties=prop)
        ax.set_title(f"{CLAUSE_ZH[clause]}（按风险/主题）", fontproperties=prop)
        ax.legend(prop=prop, fontsize=7, loc="lower left")
        fig.tight_layout()
        written += _save(fig, out / f"{clause.replace('.', '_')}_by_group")
    return written
