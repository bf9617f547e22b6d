"""``hegui corpus …`` end to end: exit codes, the review round trip, and an audit killed with SIGKILL
mid-run that resumes to the same summary without scanning its finished shards again."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HEGUI = [sys.executable, "-c", "from hegui.cli import main; main()"]
HARMFUL = "出售冰毒，量大从优，加微信"

REGISTRY = """sources:
  - name: {name}
    type: open_source
    licence: CC-BY-4.0
    licence_evidence: https://example.org/licence
    pi_basis: none_present
    ip_owner: Example Lab
    languages: [zh]
    locations: {loc}
"""


def write_source(root: Path, name: str, files: int, per_file: int, harmful: int) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for f in range(files):
        lines = [json.dumps({"text": HARMFUL if i < harmful else f"第{f}卷第{i}段：今天天气很好，我们去公园散步。"},
                            ensure_ascii=False) for i in range(per_file)]
        (folder / f"part-{f:02d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def hegui(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HEGUI, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HEGUI_PII_SALT": "test-salt"})


def comparable(out: Path) -> dict[str, object]:
    d = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for key in ("audit_id", "started_at", "finished_at", "outputs"):
        d.pop(key)
    return d


def test_a_clean_corpus_passes_with_exit_0_and_the_review_round_trip(tmp_path: Path) -> None:
    write_source(tmp_path, "books", files=2, per_file=1000, harmful=0)
    (tmp_path / "sources.yaml").write_text(REGISTRY.format(name="books", loc="books"), encoding="utf-8")
    (tmp_path / "hegui.yaml").write_text("corpus:\n  manual_sample_size: 40\n", encoding="utf-8")
    r = hegui("corpus", "audit", "sources.yaml", "--out", "out", "--workers", "2", "--config", "hegui.yaml",
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # no harmful record in about 220 sampled: the interval's bottom is ~98.3%, so PASS
    assert "ACCEPT     books: 0/2000 flagged" in r.stdout and "PASS       automated check" in r.stdout
    assert "PENDING    manual check: 0/40" in r.stdout
    r = hegui("corpus", "review", "export", "out", "--out", "review.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with (tmp_path / "review.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 41
    header = rows[0]
    for row in rows[1:39]:
        row[header.index("审核结论")] = "合格"
    for row in rows[39:]:
        row[header.index("审核结论")] = "不合格"
        row[header.index("风险类别")] = "A1h"
    with (tmp_path / "review.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    r = hegui("corpus", "review", "import", "out", "review.csv", "--config", "hegui.yaml", "--strict", cwd=tmp_path)
    # 38/40 = 95%: under 96%, but with 40 records the interval (≈83%–99%) straddles it
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("NOT PROVEN manual check: 38/40 passed 95.00%")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["manual"]["verdict"] == "NOT PROVEN" and summary["manual"]["passed"] == 38
    (tmp_path / "out" / "report.pdf").unlink()
    r = hegui("corpus", "report", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "report.pdf").read_bytes().startswith(b"%PDF")


def test_a_rejected_source_exits_1_and_says_why(tmp_path: Path) -> None:
    write_source(tmp_path, "forum", files=1, per_file=200, harmful=40)
    (tmp_path / "sources.yaml").write_text(REGISTRY.format(name="forum", loc="forum"), encoding="utf-8")
    r = hegui("corpus", "audit", "sources.yaml", "--out", "out", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 1
    assert "failed: source `forum` REJECT: 40/200 flagged" in r.stderr


def test_sources_check_strict(tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text("sources:\n  - name: crawl\n    type: self_collected\n"
                                           "    locations: data\n", encoding="utf-8")
    r = hegui("corpus", "sources", "check", "sources.yaml", cwd=tmp_path)
    assert r.returncode == 0 and "robots_txt_respected" in r.stdout
    r = hegui("corpus", "sources", "check", "sources.yaml", "--strict", cwd=tmp_path)
    assert r.returncode == 1
    r = hegui("corpus", "audit", "missing.yaml", "--out", "out", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "missing.yaml" in r.stderr


def test_an_audit_killed_mid_run_resumes_without_redoing_finished_shards(tmp_path: Path) -> None:
    write_source(tmp_path, "web", files=10, per_file=3000, harmful=60)
    (tmp_path / "sources.yaml").write_text(REGISTRY.format(name="web", loc="web"), encoding="utf-8")
    whole = hegui("corpus", "audit", "sources.yaml", "--out", "whole", "--workers", "1", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr

    proc = subprocess.Popen([*HEGUI, "corpus", "audit", "sources.yaml", "--out", "out", "--workers", "1"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "HEGUI_PII_SALT": "test-salt"})
    shards = tmp_path / "out" / "shards"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(shards.glob("*.json"))) < 3:
            assert proc.poll() is None, "the audit finished before it could be killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        # the killed driver's worker processes are in its session: end them too
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.json")}
    assert 3 <= len(before) < 10
    assert not (tmp_path / "out" / "summary.json").exists()

    again = hegui("corpus", "audit", "sources.yaml", "--out", "out", "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    after = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.json")}
    assert len(after) == 10
    assert {k: after[k] for k in before} == before  # the finished shards were not scanned again
    assert comparable(tmp_path / "out") == comparable(tmp_path / "whole")


@pytest.mark.parametrize("engine", ["dask"])
def test_the_dask_engine_from_the_command_line(tmp_path: Path, engine: str) -> None:
    write_source(tmp_path, "web", files=3, per_file=300, harmful=3)
    (tmp_path / "sources.yaml").write_text(REGISTRY.format(name="web", loc="web"), encoding="utf-8")
    a = hegui("corpus", "audit", "sources.yaml", "--out", "a", "--workers", "2", cwd=tmp_path)
    b = hegui("corpus", "audit", "sources.yaml", "--out", "b", "--workers", "2", "--engine", engine, cwd=tmp_path)
    assert a.returncode == b.returncode
    da, db = comparable(tmp_path / "a"), comparable(tmp_path / "b")
    assert (da.pop("engine"), db.pop("engine")) == ("local", "dask")
    assert da == db
