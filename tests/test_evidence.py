"""hegui evidence export (Art. 19): counts over the ledger in a date range equal a hand count of the
decisions the test wrote, days are the provider's, a tampered ledger shows a failed verification,
bad dates name the option."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from typer.testing import CliRunner

from filing_support import (
    CONFIG,
    DECISIONS,
    LADDER_EVENTS,
    annotation_summary,
    audit_summary,
    fill_ledger,
    write_rules,
)
from hegui.cli import app
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger

PAGES = Path("/tmp/filing-pages")
# 2026-11-30 17:30 UTC is 2026-12-01 01:30 in Shanghai: a day of its own in the provider's zone
EDGE = datetime(2026, 11, 30, 17, 30, tzinfo=UTC)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def provider(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    fill_ledger(url)
    with Ledger.open(url) as ledger:
        ledger.record_decision(DecisionRecord(
            decision_id="dc_edge", request_id="rq_edge", account_id=None, api_key_id=None, model="m", direction="input",
            scene="minor", action="block", risks=["A1d"], findings=[], detector_ms={}, excerpt="", created_at=EDGE))
    (tmp_path / "hegui.yaml").write_text(CONFIG.format(url=url), encoding="utf-8")
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "summary.json").write_text(audit_summary().model_dump_json(), encoding="utf-8")
    (tmp_path / "annotation.json").write_text(annotation_summary(write_rules(tmp_path / "rules")).model_dump_json(),
                                              encoding="utf-8")
    (tmp_path / "sources.csv").write_text("name,source_type,licence\nwiki-zh,open_source,CC-BY-SA\n"
                                          "forum-crawl,self_collected,robots.txt\nvendor-a,commercial,contract\n",
                                          encoding="utf-8")
    return tmp_path


def export(base: Path, out: str, start: str, end: str, *extra: str) -> Any:
    return invoke("evidence", "export", "--out", str(base / out), "--from", start, "--to", end,
                  "--config", str(base / "hegui.yaml"), *extra)


def hand_count(first_offset: int, last_offset: int) -> dict[str, Counter[str]]:
    """Counts over DECISIONS whose day offset is in the range, plus the edge decision on offset 0."""
    rows = [(o, d, a, r, "default") for o, d, a, r in DECISIONS if first_offset <= o <= last_offset]
    if first_offset <= 0 <= last_offset:
        rows.append((0, "input", "block", ["A1d"], "minor"))
    return {"action": Counter(a for _, _, a, _, _ in rows), "direction": Counter(d for _, d, _, _, _ in rows),
            "risk": Counter(x for _, _, _, r, _ in rows for x in r), "scene": Counter(s for *_, s in rows),
            "day": Counter(f"2026-12-{1 + o:02d}" for o, *_ in rows)}


def test_counts_equal_a_hand_count(provider: Path) -> None:
    r = export(provider, "ev", "2026-12-01", "2026-12-03", "--corpus-audit", str(provider / "audit"),
               "--sources", str(provider / "sources.csv"), "--annotation", str(provider / "annotation.json"))
    assert r.exit_code == 0, r.output
    ev = json.loads((provider / "ev" / "evidence.json").read_text(encoding="utf-8"))
    want = hand_count(0, 2)
    d = ev["decisions"]
    assert d["total"] == sum(want["action"].values()) == 9  # 8 of DECISIONS + the edge one; no stream_open row
    assert d["by_action"] == dict(want["action"])
    assert d["by_direction"] == dict(want["direction"])
    assert d["by_risk"] == dict(want["risk"])
    assert d["by_scene"] == dict(want["scene"])
    assert {day: v["total"] for day, v in d["by_day"].items()} == dict(want["day"])
    assert d["by_day"]["2026-12-01"]["block"] == 2  # A1a at noon and the edge decision at 01:30
    ladder = Counter(k for o, k in LADDER_EVENTS if 0 <= o <= 2)
    assert ev["enforcement"] == {"total": sum(ladder.values()), "by_kind": dict(ladder)}
    assert ev["verification"]["ok"] is True and ev["verification"]["rows_checked"] > 0
    # training data: the audit's scale and types, and the registry
    td = ev["training_data"]
    assert td["audit"]["records"] == 60_000 and td["audit"]["records_by_type"] == {"open_source": 40_000,
                                                                                  "self_collected": 20_000}
    assert td["registry_by_type"] == {"open_source": 1, "self_collected": 1, "commercial": 1}
    assert [x["kind"] for x in ev["annotation_rules"]] == ["functional", "safety"]
    assert ev["mechanism"]["labels"]["text_prefix"] == "【AI生成】"
    assert "9 decisions" in r.output

    wb = load_workbook(provider / "ev" / "evidence.xlsx")
    days = [tuple(x) for x in wb["按日"].iter_rows(values_only=True)]
    assert days[0][:2] == ("日期", "合计")
    assert {row[0]: row[1] for row in days[1:]} == dict(want["day"])
    risks = {row[0]: row[1] for row in list(wb["按风险"].iter_rows(values_only=True))[1:]}
    assert risks == dict(want["risk"])
    sources = [row[0] for row in list(wb["训练数据来源"].iter_rows(values_only=True))[1:]]
    assert sources == ["wiki-zh", "forum-crawl", "wiki-zh", "forum-crawl", "vendor-a"]

    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(provider / "ev" / "evidence.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    for s in ("生成式人工智能服务监督检查材料", "演示智能科技有限公司", "台账哈希链校验", "通过", "一、训练数据来源、规模与类型",
              "五、违规处置"):
        assert s in text, s
    PAGES.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(provider / "ev" / "evidence.pdf"),
                    str(PAGES / "evidence")], check=True)

    manifest = json.loads((provider / "ev" / "manifest.json").read_text(encoding="utf-8"))
    files = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert set(files) == {"evidence.json", "evidence.xlsx", "evidence.pdf"}
    for name, digest in files.items():
        assert hashlib.sha256((provider / "ev" / name).read_bytes()).hexdigest() == digest
    with zipfile.ZipFile(provider / "ev.zip") as zf:
        assert sorted(zf.namelist()) == sorted([*files, "manifest.json"])


def test_one_day_range_and_an_empty_one(provider: Path) -> None:
    r = export(provider, "one", "2026-12-06", "2026-12-06")
    assert r.exit_code == 0, r.output
    ev = json.loads((provider / "one" / "evidence.json").read_text(encoding="utf-8"))
    assert ev["decisions"]["total"] == sum(hand_count(5, 5)["action"].values()) == 1
    r = export(provider, "none", "2025-01-01", "2025-01-31")
    ev = json.loads((provider / "none" / "evidence.json").read_text(encoding="utf-8"))
    assert ev["decisions"]["total"] == 0 and ev["enforcement"]["total"] == 0


def test_a_tampered_ledger_shows_a_failed_verification(provider: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{provider / 'ledger.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET action = 'allow' WHERE seq = 3"))
    engine.dispose()
    r = export(provider, "ev", "2026-12-01", "2026-12-03", "--strict")
    assert r.exit_code == 1
    assert "FAILED verification" in r.output
    ev = json.loads((provider / "ev" / "evidence.json").read_text(encoding="utf-8"))
    assert ev["verification"]["ok"] is False
    assert any(p["seq"] == 3 and p["what"] == "edited" for p in ev["verification"]["problems"])
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(provider / "ev" / "evidence.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    assert "未通过" in text


@pytest.mark.parametrize(("start", "end", "needle"), [
    ("2026-13-01", "2026-12-03", "--from: '2026-13-01' is not a date (YYYY-MM-DD)"),
    ("2026-12-01", "yesterday", "--to: 'yesterday' is not a date (YYYY-MM-DD)"),
    ("2026-12-05", "2026-12-01", "--to: 2026-12-01 is before --from 2026-12-05"),
])
def test_bad_dates_name_the_option(provider: Path, start: str, end: str, needle: str) -> None:
    r = export(provider, "bad", start, end)
    assert r.exit_code == 2
    assert r.output.strip() == f"error: {needle}"
    assert not (provider / "bad").exists()


def test_bad_sources_file_names_the_file(provider: Path) -> None:
    (provider / "sources.json").write_text('{"sources": [1, 2]}', encoding="utf-8")
    r = export(provider, "x", "2026-12-01", "2026-12-03", "--sources", str(provider / "sources.json"))
    assert r.exit_code == 2 and "--sources" in r.output and "sources.json" in r.output


def test_counts_on_sqlite_and_postgresql(migrated_ledger_url: str, tmp_path: Path) -> None:
    fill_ledger(migrated_ledger_url)
    (tmp_path / "hegui.yaml").write_text(CONFIG.format(url=migrated_ledger_url), encoding="utf-8")
    r = export(tmp_path, "ev", "2026-11-28", "2026-12-02")
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "ev" / "evidence.json").read_text(encoding="utf-8"))
    want = [(o, d, a, rk) for o, d, a, rk in DECISIONS if -3 <= o <= 1]
    assert ev["decisions"]["by_action"] == dict(Counter(a for _, _, a, _ in want))
    assert ev["decisions"]["by_day"]["2026-11-28"] == {"total": 1, "refuse": 1}
    assert ev["enforcement"]["by_kind"] == {"ladder.warned": 1}
    assert ev["verification"]["ok"] is True


def test_a_missing_ledger_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "hegui.yaml").write_text(f"ledger: {{url: 'sqlite:///{tmp_path}/nope.db'}}\n", encoding="utf-8")
    r = export(tmp_path, "ev", "2026-12-01", "2026-12-01")
    assert r.exit_code == 2
    assert r.output.startswith("error: no ledger database at") and "--url" in r.output
    assert len(r.output.strip().splitlines()) == 1
