"""Why the console draws its charts as server-side SVG: page weight and time to the load event in
Debian chromium, for the dashboard's three charts (24 stacked bars of four series, ten risk bars, two
rate lines) drawn by hegui's own SVG builder and by ECharts (its SVG renderer, animation off).

ECharts is not shipped with hegui; fetch the file yourself and pass it::

    npm pack echarts@5.6.0 && tar xzf echarts-5.6.0.tgz package/dist/echarts.min.js
    python bench/console_charts.py --echarts package/dist/echarts.min.js

Both pages are loaded from files, alternately, so the browser's own start-up cost hits both alike.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from pathlib import Path

from hegui.web.console import charts

CSS = Path(__file__).resolve().parents[1] / "src" / "hegui" / "web" / "static" / "console.css"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def pages(echarts_js: str) -> tuple[str, str, str]:
    rng = random.Random(1)
    hours = [f"{h:02d}:00" for h in range(24)]
    series = {a: [rng.randint(0, 400) for _ in hours] for a in ("allow", "mask", "flag", "refuse")}
    risks = [(f"A1{c}", rng.randint(10, 300)) for c in "abcdefghij"]
    rates: dict[str, list[float | None]] = {d: [rng.random() * 0.2 for _ in hours] for d in ("input", "output")}
    css = CSS.read_text(encoding="utf-8")
    svg = (str(charts.stacked_bars("by-action", "决定 Decisions", hours, series))
           + str(charts.horizontal_bars("top-risks", "风险 Top risks", risks))
           + str(charts.lines("refusal", "拒绝率 Refusal rate", hours, rates)))
    svg_page = f"<!doctype html><html><head><meta charset=utf-8><style>{css}</style></head><body>{svg}</body></html>"
    opts = [
        {"title": {"text": "决定 Decisions"}, "xAxis": {"type": "category", "data": hours},
         "yAxis": {"type": "value"}, "legend": {}, "animation": False,
         "series": [{"name": k, "type": "bar", "stack": "a", "data": v} for k, v in series.items()]},
        {"title": {"text": "风险 Top risks"}, "yAxis": {"type": "category", "data": [r for r, _ in risks]},
         "xAxis": {"type": "value"}, "animation": False, "series": [{"type": "bar", "data": [n for _, n in risks]}]},
        {"title": {"text": "拒绝率 Refusal rate"}, "xAxis": {"type": "category", "data": hours},
         "yAxis": {"type": "value"}, "legend": {}, "animation": False,
         "series": [{"name": k, "type": "line", "data": v} for k, v in rates.items()]},
    ]
    divs = "".join(f'<div id="c{i}" style="width:760px;height:260px"></div>' for i in range(3))
    run = "".join(f"echarts.init(document.getElementById('c{i}'),null,{{renderer:'svg'}})"
                  f".setOption({json.dumps(o, ensure_ascii=False)});" for i, o in enumerate(opts))
    head = f"<!doctype html><html><head><meta charset=utf-8><style>{css}</style></head><body>{divs}"
    ech_page = f"{head}<script>{echarts_js}</script><script>{run}</script></body></html>"
    ech_cached = f"{head}<script src='echarts.min.js'></script><script>{run}</script></body></html>"
    return svg_page, ech_page, ech_cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--echarts", type=Path, required=True, help="echarts.min.js (from the npm registry)")
    ap.add_argument("--runs", type=int, default=20, help="loads of each page (after 2 unmeasured)")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    js = a.echarts.read_text(encoding="utf-8")
    svg_page, ech_page, ech_cached = pages(js)
    folder = Path(tempfile.mkdtemp(prefix="hegui-charts-"))
    (folder / "echarts.min.js").write_text(js, encoding="utf-8")
    # "echarts" is a first visit (the script parsed from scratch, as inline scripts always are);
    # "echarts-cached" loads it as a file the browser keeps between visits
    files = {"svg": folder / "svg.html", "echarts": folder / "echarts.html",
             "echarts-cached": folder / "echarts-cached.html"}
    files["svg"].write_text(svg_page, encoding="utf-8")
    files["echarts"].write_text(ech_page, encoding="utf-8")
    files["echarts-cached"].write_text(ech_cached, encoding="utf-8")
    times: dict[str, list[float]] = {name: [] for name in files}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        for i in range(a.runs + 2):
            for name, f in files.items():
                page = browser.new_page()
                page.goto(f.as_uri())
                page.wait_for_load_state("load")
                # the load event comes after the SVG is parsed, and after ECharts' synchronous setOption
                t = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
                if i >= 2:
                    times[name].append(float(t))
                page.close()
        browser.close()
    for name in files:
        kb = len(files[name].read_bytes()) / 1024 + (len(js.encode()) / 1024 if name == "echarts-cached" else 0)
        v = sorted(times[name])
        print(f"{name:15s} page {kb:7.1f} KB   load p50 {statistics.median(v):6.1f} ms   "
              f"p90 {v[int(len(v) * 0.9) - 1]:6.1f} ms")
    svg_kb, ech_kb = (len(files[n].read_bytes()) for n in ("svg", "echarts"))
    p50 = {name: statistics.median(v) for name, v in times.items()}
    print(f"ratio echarts/svg: weight {ech_kb / svg_kb:.1f}x, load p50 first visit {p50['echarts'] / p50['svg']:.2f}x, "
          f"script cached {p50['echarts-cached'] / p50['svg']:.2f}x")


if __name__ == "__main__":
    main()
