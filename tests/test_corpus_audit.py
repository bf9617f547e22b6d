"""The audit: the 5% rule per source, the checks, resuming after a crash, refusing a resume over
changed settings or sources, the same summary on every engine, and the report.

Corpora are generated with planted harmful lines the default lexicon refuses; expected counts and
decisions are worked out by hand from what was planted (the Wilson bounds are in the comments).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from hegui.corpus import audit
from hegui.corpus.audit import AuditError, Plan, build_scan_settings, run_audit
from hegui.corpus.config import CorpusConfig
from hegui.corpus.engines import DaskEngine, LocalEngine
from hegui.corpus.scan import scan_shard
from hegui.corpus.shards import Shard, ShardResult

HARMFUL = "出售冰毒，量大从优，加微信"
BENIGN = "今天天气很好，我们去公园散步吧，第{}次。"

# source -> (files, records per file, harmful per file)
LAYOUT = {"clean-web": (3, 200, 2), "dirty-forum": (2, 100, 20), "edge-books": (1, 100, 5)}


def write_corpus(root: Path) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for source, (n_files, per_file, harmful) in LAYOUT.items():
        for f in range(n_files):
            path = root / source / f"part-{f}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = [json.dumps({"text": HARMFUL if i < harmful else BENIGN.format(i)}, ensure_ascii=False)
                     for i in range(per_file)]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            files.setdefault(source, []).append(path)
    return files


def standin_plan(files: dict[str, list[Path]]) -> Callable[[Path], Plan]:
    """Planning as the registry would do it (one shard a file), so the audit's own logic is tested
    independently of the registry's format."""
    def plan(_: Path, min_shards: int = 0) -> Plan:
        shards = [Shard(shard_id=f"{src}-{i}", source=src, url=str(p), format="jsonl")
                  for src, paths in files.items() for i, p in enumerate(paths)]
        stamps = {s.url: audit._file_stamp(s.url) for s in shards}
        return Plan(shards, {src: "open_source" for src in files}, {"edge-books": ["licence evidence missing"]},
                    sum(size or 0 for size, _ in stamps.values()), stamps)
    return plan


def counting_scan(shard: Shard, settings: Any, log: str) -> ShardResult:
    """The real scan, plus a line in ``log`` per shard scanned (to prove finished shards are not redone)."""
    result = scan_shard(shard, settings)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(shard.shard_id + "\n")
    return result


class CrashingEngine:
    """Yields ``after`` results, then dies as a killed driver would (nothing after is written)."""

    name = "local"

    def __init__(self, inner: LocalEngine, after: int) -> None:
        self.inner, self.after, self.workers = inner, after, inner.workers

    def map(self, fn: Callable[[Shard], ShardResult], shards: Sequence[Shard]) -> Iterator[ShardResult]:
        for i, r in enumerate(self.inner.map(fn, shards)):
            if i == self.after:
                raise KeyboardInterrupt
            yield r

    def close(self) -> None:
        self.inner.close()


def comparable(summary: Any) -> dict[str, Any]:
    d = summary.model_dump(mode="json")
    for key in ("audit_id", "engine", "started_at", "finished_at", "outputs"):
        d.pop(key)
    return d


@pytest.fixture()
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Path]]:
    files = write_corpus(tmp_path / "data")
    monkeypatch.setattr(audit, "plan_audit", standin_plan(files))
    return files


def run(out: Path, engine: Any, corpus_cfg: CorpusConfig | None = None, log: Path | None = None,
        **kw: Any) -> Any:
    cfg = corpus_cfg or CorpusConfig(manual_sample_size=50)
    settings = build_scan_settings(out, cfg, None)
    fn = partial(counting_scan, settings=settings, log=str(log)) if log else None
    return run_audit(Path("sources.yaml"), out, engine, settings, corpus=cfg, scan_fn=fn, write_report=False, **kw)


def test_the_five_percent_rule_and_the_checks(tmp_path: Path, corpus: dict[str, list[Path]]) -> None:
    with LocalEngine(workers=2) as engine:
        s = run(tmp_path / "out", engine)
    by = {v.source: v for v in s.sources}
    # clean-web: 6/600 = 1%, Wilson upper ≈ 2.2% ≤ 5% → ACCEPT
    assert (by["clean-web"].records, by["clean-web"].flagged, by["clean-web"].decision) == (600, 6, "ACCEPT")
    # dirty-forum: 40/200 = 20%, Wilson lower ≈ 15% > 5% → REJECT
    assert (by["dirty-forum"].records, by["dirty-forum"].flagged, by["dirty-forum"].decision) == (200, 40, "REJECT")
    # edge-books: 5/100 = 5%, interval ≈ 2.2%–11% straddles 5% → NOT PROVEN
    assert (by["edge-books"].flagged, by["edge-books"].decision) == (5, "NOT PROVEN")
    assert by["edge-books"].ci_low is not None and by["edge-books"].ci_low < 0.05 < (by["edge-books"].ci_high or 0)
    assert by["dirty-forum"].by_risk == {"A1h": 40}
    assert by["edge-books"].provenance_problems == ["licence evidence missing"]
    assert s.records == 900 and s.shards == 6
    # automated check: required is 10% of 900; passed = sampled minus the flagged ones in the sample
    assert s.automated.required == 90
    results = list(audit.iter_results(tmp_path / "out"))
    assert s.automated.sampled == sum(r.auto_sampled for r in results)
    assert s.automated.passed == sum(r.auto_passed for r in results) <= s.automated.sampled
    # manual: the 50 smallest ranks over all shards' candidates, PENDING until reviewed
    ranks = sorted(c["rank"] for r in results for c in r.manual_candidates)[:50]
    sample = audit.read_manual_sample(tmp_path / "out")
    assert [c["rank"] for c in sample] == ranks
    assert (s.manual.sampled, s.manual.required, s.manual.verdict) == (50, 50, "PENDING")
    # 51 of 900 records are harmful (5.7%), so about 94% of the sample passes: under 98%, FAIL when
    # even the interval's top is under it (by the Wilson formula written out here), else NOT PROVEN
    k, n, z = s.automated.passed, s.automated.sampled, 1.959964
    p = k / n
    top = (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
    assert s.automated.verdict == ("FAIL" if top < 0.98 else "NOT PROVEN")
    expected = [f"source `dirty-forum` REJECT: 40/200 flagged, interval "
                f"{by['dirty-forum'].ci_low:.2%}–{by['dirty-forum'].ci_high:.2%} wholly above the threshold"]
    if top < 0.98:
        expected.append(f"automated check FAIL: {k}/{n} passed, below 98%")
    assert audit.failures(s) == expected
    csv_text = (tmp_path / "out" / "sources.csv").read_text(encoding="utf-8-sig")
    assert "dirty-forum,open_source,200,40,0.200000" in csv_text


def test_resume_after_a_crash_redoes_only_unfinished_shards(tmp_path: Path, corpus: dict[str, list[Path]]) -> None:
    with LocalEngine(workers=2) as engine:
        whole = run(tmp_path / "whole", engine)
    log = tmp_path / "scans.log"
    out = tmp_path / "out"
    with LocalEngine(workers=1, in_flight=1) as inner, pytest.raises(KeyboardInterrupt):
        run(out, CrashingEngine(inner, after=2), log=log)
    finished = sorted(p.name for p in (out / "shards").glob("*.json"))
    assert len(finished) == 2
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.json")}
    log.write_text("", encoding="utf-8")
    with LocalEngine(workers=2) as engine:
        resumed = run(out, engine, log=log)
    rescanned = sorted(log.read_text(encoding="utf-8").split())
    assert len(rescanned) == 4 and not {f"{r}.json" for r in rescanned} & set(finished)
    assert {p: (out / "shards" / p).stat().st_mtime_ns for p in finished} == {p: mtimes[p] for p in finished}
    assert comparable(resumed) == comparable(whole)


def test_a_resume_over_changed_settings_or_sources_refuses(tmp_path: Path, corpus: dict[str, list[Path]]) -> None:
    out = tmp_path / "out"
    with LocalEngine(workers=2) as engine:
        run(out, engine)
        with pytest.raises(AuditError, match=r"other settings.*--restart"):
            run(out, engine, CorpusConfig(manual_sample_size=50, seed="other"))
        changed = corpus["edge-books"][0]
        changed.write_text(changed.read_text(encoding="utf-8") + json.dumps({"text": HARMFUL}) + "\n",
                           encoding="utf-8")
        with pytest.raises(AuditError, match=r"source `edge-books` changed since this shard was scanned"):
            run(out, engine)
        again = run(out, engine, restart=True)
    assert {v.source: v.flagged for v in again.sources}["edge-books"] == 6


def test_local_and_dask_engines_give_the_same_summary(tmp_path: Path, corpus: dict[str, list[Path]]) -> None:
    with LocalEngine(workers=2) as local:
        a = run(tmp_path / "a", local)
    with DaskEngine(workers=2) as dask:
        b = run(tmp_path / "b", dask)
    assert b.engine == "dask" and a.engine == "local"
    assert comparable(a) == comparable(b)
    assert audit.read_manual_sample(tmp_path / "a") == audit.read_manual_sample(tmp_path / "b")


def test_the_report_shows_every_source_and_decision(tmp_path: Path, corpus: dict[str, list[Path]]) -> None:
    from hegui.cases.report import find_font
    from hegui.corpus.report import render_html, write_audit_report

    try:
        font = find_font(None)
    except Exception:
        pytest.skip("no CJK font")
    with LocalEngine(workers=2) as engine:
        s = run(tmp_path / "out", engine)
    html = render_html(s, font)
    for name in LAYOUT:
        assert name in html
    assert html.count("不得采集/不得训练（REJECT）") == 1 and "尚不能确定（NOT PROVEN）" in html
    assert html.count("data:image/svg+xml;base64,") == 3
    paths = write_audit_report(tmp_path / "out", s, font)
    pdf = Path(paths["report_pdf"]).read_bytes()
    assert pdf.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", paths["report_pdf"], "-"], capture_output=True, text=True,
                              check=True).stdout
        assert "训练数据安全评估报告" in text and "dirty-forum" in text



def test_without_a_cjk_font_the_audit_stands_and_says_the_report_is_missing(
        tmp_path: Path, corpus: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    from hegui.cases import report as cases_report

    def no_font(configured: Path | None = None) -> Path:
        raise cases_report.ReportError("no Chinese font found for the incident report: install one")

    monkeypatch.setattr(cases_report, "find_font", no_font)
    cfg = CorpusConfig(manual_sample_size=50)
    out = tmp_path / "out"
    with LocalEngine(workers=2) as engine:
        s = run_audit(Path("sources.yaml"), out, engine, build_scan_settings(out, cfg, None), corpus=cfg)
    assert "no Chinese font" in s.outputs["report_error"] and not (out / "report.pdf").exists()
    assert audit.load_summary(out).outputs["report_error"] == s.outputs["report_error"]
    assert {v.source: v.decision for v in s.sources}["dirty-forum"] == "REJECT"


def test_out_must_be_a_folder(tmp_path: Path, corpus: dict[str, list[Path]]) -> None:
    (tmp_path / "out").write_text("x", encoding="utf-8")
    with LocalEngine(workers=1) as engine, pytest.raises(AuditError, match=r"--out .*out: exists and is not a folder"):
        run(tmp_path / "out", engine)


def test_a_shard_whose_file_vanished_stops_the_audit_keeping_the_finished_ones(
        tmp_path: Path, corpus: dict[str, list[Path]]) -> None:
    corpus["edge-books"][0].unlink()
    out = tmp_path / "out"
    with LocalEngine(workers=1, in_flight=1) as engine, \
            pytest.raises(AuditError, match=r"part-0\.jsonl.*of 6 shards are saved in .*rerun to resume"):
        run(out, engine)
