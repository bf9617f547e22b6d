"""The filing package from a real assessment: `hegui assess run` on hegui's starter banks against the
demo upstream over HTTP, then `hegui filing export --run`; the test-results workbook equals the run's
answers, the §8 bank clauses read the banks the run names, the run's own charts go in."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import docx
from openpyxl import load_workbook
from typer.testing import CliRunner

from gateway_support import serve
from hegui.assessment.bank_io import starter_paths
from hegui.assessment.results import RunFolder
from hegui.cli import app
from hegui.gateway.demo_upstream import create_demo_app

SAMPLE = {"generated": 20, "should_refuse": 12, "should_not_refuse": 12}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_package_from_a_real_run_on_the_demo_upstream(tmp_path: Path) -> None:
    cfg = tmp_path / "hegui.yaml"
    cfg.write_text("assessment: {min_sample: {generated: 20, should_refuse: 12, should_not_refuse: 12}}\n"
                   "provider: {name: 演示公司}\n", encoding="utf-8")
    banks = [a for p in starter_paths() for a in ("--bank", str(p))]
    with serve(create_demo_app()) as url:
        r = invoke("assess", "run", *banks, "--out", str(tmp_path / "run"), "--model", url + "/v1", "--model-name",
                   "hegui-demo", "--sample", ",".join(f"{k}={v}" for k, v in SAMPLE.items()), "--seed", "3",
                   "--config", str(cfg))
    assert r.exit_code == 0, r.output
    run = RunFolder(tmp_path / "run")
    answers = run.answers()
    assert len(answers) == sum(SAMPLE.values())

    out = tmp_path / "package"
    r = invoke("filing", "export", "--out", str(out), "--run", str(tmp_path / "run"), "--config", str(cfg),
               "--no-ledger")
    assert r.exit_code == 0, r.output

    ws = load_workbook(out / "评估测试题.xlsx")["评估测试题"]
    rows = [list(x) for x in ws.iter_rows(values_only=True)]
    header, body = rows[0], rows[1:]
    # every answer of the run, once, with its question and answer text
    assert sorted((b[0], b[2], b[4]) for b in body) == sorted((a.item_id, a.question, a.answer) for a in answers.values())
    assert Counter(b[1] for b in body) == {"生成内容": 20, "应拒答": 12, "非拒答": 12}
    judged = {j.judge for j in run.judgements()}
    assert {h.removeprefix("判定：") for h in header[6:]} == {
        {"refusal": "拒答识别", "keyword": "关键词", "classifier": "分类模型", "model": "大模型判定", "manual": "人工"}[j]
        for j in judged}

    clauses = {c["id"]: c for c in json.loads((out / "clauses.json").read_text(encoding="utf-8"))}
    # the run names the starter banks: their coverage is read (93 generated items are short of 2,000)
    gen = clauses["8-generated-bank"]
    assert gen["verdict"] == "不符合"
    assert any("93 题" in e for e in gen["evidence"])
    assert any("与评估运行所用题库一致" in e for e in gen["evidence"])
    # 20 generated items: far under the standard's 1,000 — never 符合
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    for cid, judge in (("9-output-keyword", "keyword"), ("9-output-classifier", "classifier")):
        m = next(x for x in metrics if x["kind"] == "generated" and x["judge"] == judge)
        expected = {"PASS": "符合", "FAIL": "不符合", "NOT PROVEN": "待确认"}[m["verdict"]]
        assert clauses[cid]["verdict"] == expected, cid
    # the run's own PNG charts are in the folder and in the report
    charts = sorted(p.name for p in (tmp_path / "run" / "charts").glob("*.png"))
    assert charts and sorted(p.name for p in (out / "评估结果" / "charts").glob("*.png")) == charts
    d = docx.Document(str(out / "安全评估报告.docx"))
    assert len(d.inline_shapes) == 1 + len(charts)  # hegui's metrics chart plus the run's
