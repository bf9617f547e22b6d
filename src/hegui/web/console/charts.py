"""Server-side SVG charts for the console: stacked bars, horizontal bars, lines.

SVG rather than a script library: the console's CSP forbids scripts, the page needs no JavaScript,
and a chart costs a few KB inline instead of about 1 MB of ECharts (numbers in docs/console.md).

Each chart is an ``<svg role="img">`` with a ``<title>``; each series is a ``<g data-series=…
data-values=…>`` holding its numbers (a test or a screen reader can read them back), each mark has
its own ``<title>`` (the browser's tooltip). The page puts a table of the same numbers under a
``<details>``. Every text and attribute value is escaped here; colours are SVG presentation
attributes, not ``style`` (which the CSP would block).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 44
PALETTE = {
    "allow": "#2da44e", "flag": "#d4a72c", "mask": "#218bff", "refuse": "#cf222e", "block": "#82071e",
    "input": "#0b3d68", "output": "#bf3989",
}
FALLBACK = ("#6e7781", "#8250df", "#1b7c83", "#953800", "#57606a")
FONT = 'font-family="system-ui, WenQuanYi Micro Hei, sans-serif"'


def colour(name: str, i: int) -> str:
    return PALETTE.get(name, FALLBACK[i % len(FALLBACK)])


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _values(values: Sequence[float | None], digits: int = 0) -> str:
    return ",".join("" if v is None else (str(int(v)) if digits == 0 else f"{v:.{digits}f}") for v in values)


def _nice_max(top: float) -> float:
    if top <= 0:
        return 1.0
    step = 10 ** len(str(int(top))) / 10
    for m in (1, 2, 2.5, 5, 10):
        if top <= m * step:
            return m * step
    return top


def _open(chart_id: str, title: str, height: int = HEIGHT) -> list[str]:
    t = escape(title)
    return [f'<svg class="chart" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
            f'aria-labelledby="{escape(chart_id)}-title" {FONT} font-size="11">',
            f'<title id="{escape(chart_id)}-title">{t}</title>']


def _y_axis(top: float, plot_h: int, fmt: str = "{}") -> list[str]:
    out = []
    for i in range(5):
        v = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_num(y)}" y2="{_num(y)}" stroke="#d0d7de" '
                   f'stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 6}" y="{_num(y + 4)}" text-anchor="end" fill="#57606a">'
                   f'{escape(fmt.format(_num(v)))}</text>')
    return out


def _x_labels(labels: Sequence[str], step_w: float) -> list[str]:
    every = max(1, -(-len(labels) // 12))  # at most 12 labels
    y = HEIGHT - BOTTOM + 16
    return [f'<text x="{_num(LEFT + step_w * (i + 0.5))}" y="{y}" text-anchor="middle" fill="#57606a">'
            f'{escape(label)}</text>' for i, label in enumerate(labels) if i % every == 0]


def _legend(names: Sequence[str], display: dict[str, str] | None = None) -> list[str]:
    out, x = [], LEFT
    for i, name in enumerate(names):
        label = (display or {}).get(name, name)
        out.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{colour(name, i)}"/>'
                   f'<text x="{x + 14}" y="17" fill="#1b1f24">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    return out


def stacked_bars(chart_id: str, title: str, labels: Sequence[str], series: dict[str, list[int]],
                 display: dict[str, str] | None = None) -> Markup:
    """One bar per label, the series stacked in the order given."""
    plot_h = HEIGHT - TOP - BOTTOM
    step_w = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    totals = [sum(s[i] for s in series.values()) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    parts = _open(chart_id, title) + _y_axis(top, plot_h)
    base = [0.0] * len(labels)
    for k, (name, values) in enumerate(series.items()):
        parts.append(f'<g class="series" data-series="{escape(name)}" data-values="{_values(values)}" '
                     f'fill="{colour(name, k)}">')
        for i, v in enumerate(values):
            if v <= 0:
                continue
            h = plot_h * v / top
            y = TOP + plot_h - base[i] - h
            parts.append(f'<rect x="{_num(LEFT + step_w * i + step_w * 0.15)}" y="{_num(y)}" '
                         f'width="{_num(step_w * 0.7)}" height="{_num(h)}">'
                         f'<title>{escape(labels[i])} · {escape((display or {}).get(name, name))}: {v}</title>'
                         f'</rect>')
            base[i] += h
        parts.append("</g>")
    parts += _x_labels(labels, step_w) + _legend(list(series), display) + ["</svg>"]
    return Markup("".join(parts))


def horizontal_bars(chart_id: str, title: str, items: Sequence[tuple[str, int]]) -> Markup:
    """One bar per item, longest first as given (the top risks)."""
    row_h = 24
    height = TOP + row_h * max(1, len(items)) + 12
    label_w = 150
    top = _nice_max(max((v for _, v in items), default=0))
    plot_w = WIDTH - label_w - RIGHT - 60
    parts = _open(chart_id, title, height)
    parts.append(f'<g class="series" data-series="decisions" data-labels="{escape(",".join(k for k, _ in items))}" '
                 f'data-values="{_values([v for _, v in items])}" fill="{colour("refuse", 0)}">')
    for i, (name, v) in enumerate(items):
        y = TOP + row_h * i
        w = plot_w * v / top
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" fill="#1b1f24">{escape(name)}</text>'
                     f'<rect x="{label_w}" y="{y + 4}" width="{_num(max(w, 1))}" height="{row_h - 8}">'
                     f'<title>{escape(name)}: {v}</title></rect>'
                     f'<text x="{_num(label_w + w + 6)}" y="{y + 16}" fill="#1b1f24">{v}</text>')
    parts.append("</g>")
    if not items:
        parts.append(f'<text x="{WIDTH // 2}" y="{TOP + 16}" text-anchor="middle" fill="#57606a">'
                     f'{escape("没有数据 / no data")}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def lines(chart_id: str, title: str, labels: Sequence[str], series: dict[str, list[float | None]],
          display: dict[str, str] | None = None) -> Markup:
    """Rates in [0, 1] drawn as percentages; a bucket with no decisions is a gap, not a zero."""
    plot_h = HEIGHT - TOP - BOTTOM
    step_w = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    peak = max((v for s in series.values() for v in s if v is not None), default=0.0)
    top = _nice_max(peak * 100) / 100
    parts = _open(chart_id, title) + _y_axis(top * 100, plot_h, "{}%")
    for k, (name, values) in enumerate(series.items()):
        c = colour(name, k)
        parts.append(f'<g class="series" data-series="{escape(name)}" data-values="{_values(values, 4)}" '
                     f'stroke="{c}" fill="{c}">')
        run: list[str] = []
        points: list[str] = []
        for i, v in enumerate(values):
            if v is None:
                if len(run) > 1:
                    points.append(f'<polyline fill="none" stroke-width="2" points="{" ".join(run)}"/>')
                run = []
                continue
            x, y = LEFT + step_w * (i + 0.5), TOP + plot_h - plot_h * v / top
            run.append(f"{_num(x)},{_num(y)}")
            points.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3">'
                          f'<title>{escape(labels[i])} · {escape((display or {}).get(name, name))}: '
                          f'{v * 100:.1f}%</title></circle>')
        if len(run) > 1:
            points.append(f'<polyline fill="none" stroke-width="2" points="{" ".join(run)}"/>')
        parts += [*points, "</g>"]
    parts += _x_labels(labels, step_w) + _legend(list(series), display) + ["</svg>"]
    return Markup("".join(parts))
