"""``hegui annotation …`` through typer's CliRunner on SQLite and PostgreSQL: the whole life from the
starter rules to a clean report; refusals are one line and exit 2; ``report --strict`` exits 1 when
the records show problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hegui.cli import app
from hegui.ledger.store import Ledger

runner = CliRunner()


@pytest.fixture()
def url(migrated_ledger_url: str) -> str:
    return migrated_ledger_url


def ok(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def fails(*args: str, code: int = 2) -> str:
    """Exit ``code`` with one line starting ``error:`` and no traceback; returns that line."""
    res = runner.invoke(app, list(args))
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


def person(url: str, handle: str, roles: str) -> None:
    ok("annotation", "annotators", "add", handle, "--name", "标注组", "--url", url)
    ok("annotation", "annotators", "train", handle, "--course", "安全性标注规则", "--date", "2026-01-05", "--url", url)
    ok("annotation", "annotators", "exam", handle, "--score", "88", "--passed", "--url", url)
    out = ok("annotation", "annotators", "qualify", handle, "--roles", roles, "--url", url)
    assert out.startswith(f"qualified {handle} for")


def test_the_whole_life_through_the_cli(url: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    ok("annotation", "rules", "starter", "--out", str(rules))
    assert sorted(p.name for p in rules.iterdir()) == ["functional-rules.md", "safety-rules.md"]
    line = fails("annotation", "rules", "starter", "--out", str(rules))
    assert "exists; not overwritten" in line
    out = ok("annotation", "rules", "publish", str(rules / "safety-rules.md"), "--kind", "safety",
             "--version", "starter-1", "--url", url, "--actor", "cli:officer")
    assert "covers all 31 risks" in out
    ok("annotation", "rules", "publish", str(rules / "functional-rules.md"), "--kind", "functional",
       "--version", "starter-1", "--url", url)
    listed = json.loads(ok("annotation", "rules", "list", "--json", "--url", url))
    assert [(r["kind"], r["complete"], r["publisher"]) for r in listed] == [
        ("functional", True, listed[0]["publisher"]),
        ("safety", True, "cli:officer")]

    person(url, "ann-1", "annotate")
    person(url, "rev-1", "review")
    ok("annotation", "annotators", "add", "newbie", "--url", url)
    line = fails("annotation", "annotators", "qualify", "newbie", "--roles", "annotate", "--url", url)
    assert "newbie" in line and "no training" in line
    people = {p["handle"]: p["status"] for p in json.loads(ok("annotation", "annotators", "list", "--json",
                                                               "--url", url))}
    assert people == {"ann-1": "qualified", "rev-1": "qualified", "newbie": "unqualified"}

    f = tmp_path / "batch-01.csv"
    f.write_text("item_id,text,labels,annotator,reviewer,verdict\n"
                 + "".join(f"i{i},回答{i},correct,ann-1,,\n" for i in range(8)), encoding="utf-8")
    out = ok("annotation", "batches", "import", str(f), "--kind", "functional", "--rules-version", "starter-1",
             "--url", url)
    assert "batch batch-01 (functional, rules starter-1): 8 items, open" in out
    # the report shows the batch was never sampled; --strict makes that exit 1
    res = runner.invoke(app, ["annotation", "report", "--strict", "--url", url])
    assert res.exit_code == 1 and "never sampled" in res.output
    sample = tmp_path / "sample.csv"
    out = ok("annotation", "batches", "sample", "batch-01", "--size", "3", "--seed", "5", "--out", str(sample),
             "--url", url)
    assert out.startswith("sampled 3 items of batch batch-01")
    lines = sample.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "item_id,result,checker" and len(lines) == 4
    filled = tmp_path / "checked.csv"
    filled.write_text("item_id,result,checker\n" + "".join(f"{ln.split(',')[0]},ok,rev-1\n" for ln in lines[1:]),
                      encoding="utf-8")
    out = ok("annotation", "batches", "check", "batch-01", str(filled), "--url", url)
    assert "8 items, accepted" in out
    summary = json.loads(ok("annotation", "report", "--json", "--url", url))
    assert summary["problems"] == [] and summary["batches"][0]["status"] == "accepted"
    assert summary["annotators"] == {"total": 3, "qualified": 2, "revoked": 0, "recheck_overdue": 0}
    out_file = tmp_path / "out" / "annotation.json"
    res = runner.invoke(app, ["annotation", "report", "--strict", "--out", str(out_file), "--url", url])
    assert res.exit_code == 0, res.output
    assert "No problems" in res.output and json.loads(out_file.read_text(encoding="utf-8"))["problems"] == []
    assert [p.name for p in out_file.parent.iterdir()] == ["annotation.json"]  # no temp file left
    with Ledger.open(url) as ledger:
        assert ledger.verify().ok


def test_refusals_are_one_line_and_exit_2(url: str, tmp_path: Path) -> None:
    partial = tmp_path / "partial.yaml"
    partial.write_text("name: p\nrisks:\n  A1a: 标准\n", encoding="utf-8")
    line = fails("annotation", "rules", "publish", str(partial), "--kind", "safety", "--version", "1", "--url", url)
    assert "miss 30 of the 31 risks" in line and "A1b" in line and "A5b" in line
    out = ok("annotation", "rules", "publish", str(partial), "--kind", "safety", "--version", "1",
             "--allow-incomplete", "--url", url)
    assert "INCOMPLETE" in out
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [unclosed\n", encoding="utf-8")
    assert "bad.yaml:2: invalid YAML" in fails("annotation", "rules", "publish", str(bad_yaml), "--kind",
                                               "functional", "--version", "1", "--url", url)
    person(url, "a1", "annotate,review")
    f = tmp_path / "b7.csv"
    f.write_text("item_id,text,annotator,reviewer,verdict\nt1,文本,a1,a1,approved\n", encoding="utf-8")
    line = fails("annotation", "batches", "import", str(f), "--kind", "safety", "--rules-version", "1", "--url", url)
    assert "batch b7: task t1: a1 is both annotator and reviewer" in line
    f.write_text("item_id,text,annotator,reviewer,verdict\nt1,文本,a1,ghost,approved\n", encoding="utf-8")
    line = fails("annotation", "batches", "import", str(f), "--kind", "safety", "--rules-version", "1", "--url", url)
    assert "batch b7: reviewer ghost is not on record" in line
    assert "batches (import one" in ok("annotation", "batches", "list", "--url", url)
    assert "--date 'yesterday'" in fails("annotation", "annotators", "train", "a1", "--course", "c", "--date",
                                         "yesterday", "--url", url)
    assert "annotator 'zz' not found" in fails("annotation", "annotators", "exam", "zz", "--score", "1",
                                               "--failed", "--url", url)
    ok("annotation", "annotators", "recheck", "a1", "--failed", "--url", url)
    people = json.loads(ok("annotation", "annotators", "list", "--json", "--url", url))
    assert people[0]["status"] == "revoked"
    assert "not found" in fails("annotation", "batches", "sample", "nope", "--url", url)
