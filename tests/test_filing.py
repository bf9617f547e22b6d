"""hegui filing export: the package built from a demo provider (run folder, annotation summary, corpus
audit, ledger, config), read back part by part — DOCX through python-docx, PDF through pdftotext,
XLSX through openpyxl, the ZIP against the folder and the manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import docx
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from typer.testing import CliRunner

from filing_support import (
    CLASSIFIER_PASSES,
    CONFIG,
    N_GENERATED,
    N_NOT_REFUSE,
    N_REFUSE,
    RULES_TEXT,
    annotation_summary,
    audit_summary,
    fill_ledger,
    write_rules,
    write_run,
)
from hegui.cli import app

PAGES = Path("/tmp/filing-pages")
VERDICTS = {"符合", "不符合", "不适用", "待确认"}
CLAUSES_SECTIONS = ("第 5 章", "第 6 章", "第 7 章", "第 8 章", "第 9 章")


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def render_pages(pdf: Path, name: str) -> list[Path]:
    """The first two pages as PNG (60 dpi) for the lead to look at."""
    PAGES.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(pdf), str(PAGES / name)], check=True)
    return sorted(PAGES.glob(f"{name}-*.png"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Demo:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.run = write_run(base / "run")
        self.rules = write_rules(base / "rules")
        self.annotation = base / "annotation.json"
        self.annotation.write_text(annotation_summary(self.rules).model_dump_json(), encoding="utf-8")
        self.audit = base / "audit"
        self.audit.mkdir()
        (self.audit / "summary.json").write_text(audit_summary().model_dump_json(), encoding="utf-8")
        self.url = f"sqlite:///{base / 'ledger.db'}"
        fill_ledger(self.url)
        self.config = base / "hegui.yaml"
        self.config.write_text(CONFIG.format(url=self.url), encoding="utf-8")

    def export(self, out: Path, *extra: str) -> Any:
        rules = [a for p in self.rules for a in ("--rules", str(p))]
        return invoke("filing", "export", "--out", str(out), "--run", str(self.run.folder), "--annotation",
                      str(self.annotation), "--corpus-audit", str(self.audit), "--config", str(self.config), *rules,
                      *extra)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return Demo(tmp_path_factory.mktemp("filing"))


@pytest.fixture(scope="module")
def package(demo: Demo) -> Path:
    out = demo.base / "package"
    r = demo.export(out)
    assert r.exit_code == 0, r.output
    return out


def clause_rows(document: Any) -> dict[str, tuple[str, str]]:
    """Clause id → (verdict, evidence cell) from the report's clause tables."""
    out = {}
    for table in document.tables:
        header = [c.text for c in table.rows[0].cells]
        if header != ["条款", "要求", "结论", "证据或理由"]:
            continue
        for row in table.rows[1:]:
            cells = [c.text for c in row.cells]
            out[cells[0].split("\n")[0]] = (cells[2], cells[3])
    return out


def test_every_part_is_there(package: Path) -> None:
    names = {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()}
    required = {"安全评估报告.docx", "安全评估报告.pdf", "拦截关键词列表.xlsx", "评估测试题.xlsx", "服务协议.md", "隐私政策.md",
                "拟公示内容.md", "算法安全自评估报告.docx", "manifest.json", "clauses.json", "评估结果/metrics.json",
                "语料标注/annotation_summary.json", "语料标注/functional-rules-v1.md", "语料标注/safety-rules-v1.md",
                "语料审计/summary.json"}
    assert required <= names
    manifest = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["missing"] == []
    # the rules texts are the files given, byte for byte
    assert (package / "语料标注/safety-rules-v1.md").read_text(encoding="utf-8") == RULES_TEXT["safety"]
    # the published agreements, not the shipped demo texts
    assert "本服务由演示公司提供" in (package / "服务协议.md").read_text(encoding="utf-8")
    assert "我们只收集必要的信息" in (package / "隐私政策.md").read_text(encoding="utf-8")


def test_docx_has_every_clause_with_a_verdict_and_evidence_or_reason(package: Path) -> None:
    from hegui.filing.clauses import CLAUSE_IDS

    d = docx.Document(str(package / "安全评估报告.docx"))
    rows = clause_rows(d)
    assert list(rows) == list(CLAUSE_IDS)
    for cid, (verdict, evidence) in rows.items():
        assert verdict in VERDICTS, cid
        assert evidence.strip(), cid
        if verdict != "符合":
            assert "理由：" in evidence, cid  # 不符合 / 待确认 / 不适用 say why
    manifest = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    assert {c["id"]: c["verdict"] for c in manifest["clauses"]} == {k: v for k, (v, _) in rows.items()}


def test_docx_verdicts_worked_out_by_hand(package: Path) -> None:
    rows = clause_rows(docx.Document(str(package / "安全评估报告.docx")))
    v = {k: verdict for k, (verdict, _) in rows.items()}
    # the run: keyword 1000/1000 passes; classifier 880/1000 has its whole interval under 90%; no manual judge
    assert v["9-output-keyword"] == "符合"
    assert v["9-output-classifier"] == "不符合"
    assert v["9-output-manual"] == "不符合"
    assert v["9-should-refuse"] == "符合" and v["9-should-not-refuse"] == "符合"
    # the audit: automated check PASS, manual verdicts not imported yet
    assert v["9-data-automated"] == "符合" and v["9-data-manual"] == "待确认"
    assert v["5.1-source-vetting"] == "符合"
    # not_applicable from the config, with its reason in the evidence cell
    assert v["7-minors"] == "不适用"
    assert "服务仅面向企业员工" in rows["7-minors"][1]
    # a filing number the provider typed in is not something hegui checked
    assert v["6-base-model"] == "待确认"
    # no bank given and the run names none: the §8 bank sizes are unknown
    assert v["8-generated-bank"] == v["8-refusal-bank"] == v["8-non-refusal-bank"] == "待确认"
    # hegui's starter lexicon is far below 10,000 keywords
    assert v["8-keywords"] == "不符合"
    # IP screening is the provider's to show
    assert v["5.2-ip"] == "待确认"
    # the evidence names the figure: 880 of 1000
    assert "880/1000" in rows["9-output-classifier"][1]


def test_docx_signature_blocks(package: Path) -> None:
    d = docx.Document(str(package / "安全评估报告.docx"))
    paras = [p.text for p in d.paragraphs]
    assert "法定代表人：张三" in paras
    assert "评估负责人：李四" in paras
    # no legality lead configured: a blank line to fill in by hand
    blank = [p for p in paras if p.startswith("合法性负责人：")]
    assert blank and "＿" in blank[0]
    assert sum(p.startswith("签字：") for p in paras) == 3
    # the cover names the provider and the service
    assert "服务提供者：演示智能科技有限公司" in paras and "服务名称：演示助手" in paras
    assert any("批次 3 个，共 1,200 条，抽检 390 条" in p for p in paras)


def test_pdf_text_is_chinese_and_pages_render(package: Path) -> None:
    text = pdf_text(package / "安全评估报告.pdf")
    for s in ("生成式人工智能服务安全评估报告", "演示智能科技有限公司", "一、评估概述", "二、逐条评估",
              "三、评估测试结果", "五、签字", "法定代表人：张三", "评估负责人：李四", "合法性负责人", *CLAUSES_SECTIONS):
        assert s in text, s
    clauses = json.loads((package / "clauses.json").read_text(encoding="utf-8"))
    n = Counter(c["verdict"] for c in clauses)
    flat = "".join(text.split())  # the summary sentence wraps across lines
    assert f"符合{n['符合']}条" in flat and f"待确认{n['待确认']}条" in flat
    assert "批次3个，共1200条，抽检390条" in flat  # the annotation batches: 500 + 400 + 300 items, 50 + 40 + 300 checked
    assert "\ufffd" not in text and "□" not in text
    pages = render_pages(package / "安全评估报告.pdf", "filing-report")
    assert len(pages) == 2 and all(p.stat().st_size > 2000 for p in pages)


def test_tests_workbook_rows_equal_the_answers(demo: Demo, package: Path) -> None:
    ws = load_workbook(package / "评估测试题.xlsx")["评估测试题"]
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    header, body = rows[0], rows[1:]
    assert header == ["编号", "题库类型", "测试题", "风险类别", "回答", "回答状态",
                      "判定：拒答识别", "判定：关键词", "判定：分类模型"]
    assert len(body) == N_GENERATED + N_REFUSE + N_NOT_REFUSE
    assert [(r[0], r[2], r[4]) for r in body] == [(a.item_id, a.question, a.answer) for a in demo.run.answers]
    by_col = {h: Counter(r[i] for r in body) for i, h in enumerate(header)}
    # the classifier fails g0880..g0999; the keyword judge passes all; refusal judge only on the refusal banks
    assert by_col["判定：分类模型"]["不合格"] == N_GENERATED - CLASSIFIER_PASSES
    assert by_col["判定：关键词"]["合格"] == N_GENERATED
    assert by_col["判定：拒答识别"]["未判定"] == N_GENERATED
    first = body[0]
    assert first[3] == "违反社会主义核心价值观 / 煽动颠覆国家政权、推翻社会主义制度" or first[3].endswith("推翻社会主义制度")


def test_keyword_list_is_what_lexicon_export_writes(demo: Demo, package: Path, tmp_path: Path) -> None:
    r = invoke("lexicon", "export", str(tmp_path / "kw.xlsx"), "--config", str(demo.config))
    assert r.exit_code == 0, r.output

    def read(p: Path) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in load_workbook(p).active.iter_rows(values_only=True)]

    ours = read(package / "拦截关键词列表.xlsx")
    assert ours[0] == ("关键词", "一级分类", "二级分类")
    assert ours == read(tmp_path / "kw.xlsx") and len(ours) > 100


def test_zip_holds_the_same_files_with_matching_hashes(package: Path) -> None:
    manifest = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    on_disk = {p.relative_to(package).as_posix(): sha(p) for p in package.rglob("*") if p.is_file()}
    # the manifest lists every file but itself, with its digest
    assert listed == {k: v for k, v in on_disk.items() if k != "manifest.json"}
    with zipfile.ZipFile(package.with_name(package.name + ".zip")) as zf:
        in_zip = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist()}
    assert in_zip == on_disk


def test_algorithm_outline_and_public_display(demo: Demo, package: Path) -> None:
    d = docx.Document(str(package / "算法安全自评估报告.docx"))
    heads = [p.text for p in d.paragraphs if p.style is not None and str(p.style.name).startswith("Heading")]
    for h in ("一、算法情况", "（一）算法流程", "（二）数据", "（三）模型", "（四）干预策略", "（五）结果标识", "二、服务情况",
              "三、风险分析与防范措施"):
        assert h in heads, h
    detectors = next(t for t in d.tables if t.rows[0].cells[0].text == "检测器")
    assert {r.cells[0].text: r.cells[1].text for r in detectors.rows[1:]} == {
        "lexicon": "启用", "pii": "启用", "injection": "启用", "classifier": "启用", "guard": "未启用"}
    public = (package / "拟公示内容.md").read_text(encoding="utf-8")
    assert "【AI生成】" in public and "15 个工作日" in public and "基于大语言模型的文本生成" in public


def test_missing_evidence_is_never_met(demo: Demo, tmp_path: Path) -> None:
    cfg = tmp_path / "hegui.yaml"
    cfg.write_text("provider: {name: 空白公司}\n", encoding="utf-8")
    out = tmp_path / "bare"
    r = invoke("filing", "export", "--out", str(out), "--config", str(cfg), "--no-ledger", "--strict")
    assert r.exit_code == 1, r.output  # --strict: clauses are open
    clauses = {c["id"]: c for c in json.loads((out / "clauses.json").read_text(encoding="utf-8"))}
    needs_inputs = [cid for cid in clauses if cid.startswith(("5.", "9-", "8-generated", "8-refusal", "8-non-refusal"))]
    needs_inputs += ["6-input-check", "6-monitoring", "7-logs", "7-agreements", "6-base-model", "7-minors",
                     "7-training-opt-out", "7-monitoring-team", "7-refusal-policy"]
    for cid in needs_inputs:
        assert clauses[cid]["verdict"] in ("不符合", "待确认"), cid
        assert clauses[cid]["reason"] and clauses[cid]["todo"], cid
    assert not any(c["verdict"] == "不适用" for c in clauses.values())
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert any(m.startswith("评估测试题.xlsx") for m in manifest["missing"])
    assert not (out / "评估测试题.xlsx").exists()
    # the shipped demo agreements go in, marked as not published
    assert "尚未以 hegui agreements publish 发布" in (out / "服务协议.md").read_text(encoding="utf-8")


def test_a_tampered_ledger_fails_the_log_clauses(demo: Demo, tmp_path: Path) -> None:
    db = tmp_path / "tampered.db"
    shutil.copy(demo.base / "ledger.db", db)
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET action = 'allow' WHERE seq = 3"))
    engine.dispose()
    out = tmp_path / "pkg"
    r = demo.export(out, "--url", f"sqlite:///{db}")
    assert r.exit_code == 0, r.output
    clauses = {c["id"]: c for c in json.loads((out / "clauses.json").read_text(encoding="utf-8"))}
    assert clauses["7-logs"]["verdict"] == "不符合"
    assert clauses["6-monitoring"]["verdict"] == "不符合"


def test_config_errors_are_one_line(demo: Demo, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("filing:\n  not_applicable: {7-no-such-clause: 无}\n", encoding="utf-8")
    r = invoke("filing", "export", "--out", str(tmp_path / "x"), "--config", str(bad), "--no-ledger")
    assert r.exit_code == 2
    assert "filing.not_applicable.7-no-such-clause: unknown clause id" in r.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.zip").exists()
    empty = tmp_path / "empty.yaml"
    empty.write_text("filing:\n  not_applicable: {7-minors: '  '}\n", encoding="utf-8")
    r = invoke("filing", "export", "--out", str(tmp_path / "y"), "--config", str(empty), "--no-ledger")
    assert r.exit_code == 2 and "empty.yaml:2" in r.output and "needs a reason" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_existing_out_and_bad_run_are_refused(demo: Demo, package: Path, tmp_path: Path) -> None:
    r = demo.export(package)
    assert r.exit_code == 2 and "already exists" in r.output
    r = invoke("filing", "export", "--out", str(tmp_path / "z"), "--run", str(tmp_path), "--no-ledger")
    assert r.exit_code == 2 and "manifest.json is missing" in r.output
    broken = tmp_path / "broken"
    shutil.copytree(demo.run.folder, broken)
    with (broken / "answers.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"item_id": "x"}\n')
    r = invoke("filing", "export", "--out", str(tmp_path / "z"), "--run", str(broken), "--no-ledger")
    assert r.exit_code == 2
    assert f"answers.jsonl:{len(demo.run.answers) + 1}:" in r.output


def test_a_failure_leaves_nothing_half_written(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hegui.filing.package as package_mod

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(package_mod, "write_algorithm_outline", boom)
    out = tmp_path / "half"
    r = demo.export(out)
    assert r.exit_code != 0
    assert list(tmp_path.iterdir()) == []


def test_annotation_summary_and_rules_texts_from_the_ledger(demo: Demo, tmp_path: Path) -> None:
    from hegui.annotation.rules import STARTER_DIR, STARTER_FILES, publish_rules
    from hegui.ledger.store import Ledger

    db = tmp_path / "with-rules.db"
    shutil.copy(demo.base / "ledger.db", db)
    with Ledger.open(f"sqlite:///{db}") as ledger:
        for name in STARTER_FILES:
            publish_rules(ledger, STARTER_DIR / name, kind=name.split("-")[0], version="starter-1", publisher="test")
    out = tmp_path / "pkg"
    r = invoke("filing", "export", "--out", str(out), "--config", str(demo.config), "--url", f"sqlite:///{db}")
    assert r.exit_code == 0, r.output
    for name in STARTER_FILES:
        kind = name.split("-")[0]
        assert (out / "语料标注" / f"{kind}-starter-1.md").read_bytes() == (STARTER_DIR / name).read_bytes()
    summary = json.loads((out / "语料标注" / "annotation_summary.json").read_text(encoding="utf-8"))
    assert sorted(r["kind"] for r in summary["rules"]) == ["functional", "safety"]
    clauses = {c["id"]: c for c in json.loads((out / "clauses.json").read_text(encoding="utf-8"))}
    # both rule sets published, the safety rules cover all 31, the texts match the recorded digests
    assert clauses["5.3-annotation-rules"]["verdict"] == "符合"
    # but no annotators are on record: the records clause says so
    assert clauses["5.3-annotators"]["verdict"] == "不符合"
    assert clauses["5.3-annotation-records"]["verdict"] == "不符合"


def test_ledger_facts_on_sqlite_and_postgresql(demo: Demo, migrated_ledger_url: str, tmp_path: Path) -> None:
    from filing_support import DECISIONS

    fill_ledger(migrated_ledger_url)
    out = tmp_path / "pkg"
    r = invoke("filing", "export", "--out", str(out), "--config", str(demo.config), "--url", migrated_ledger_url)
    assert r.exit_code == 0, r.output
    clauses = {c["id"]: c for c in json.loads((out / "clauses.json").read_text(encoding="utf-8"))}
    inputs = sum(1 for _, direction, _, _ in DECISIONS if direction == "input")
    assert clauses["6-input-check"]["verdict"] == "符合"
    assert any(f"输入检测决定：{inputs:,} 条" in e for e in clauses["6-input-check"]["evidence"])
    assert clauses["7-logs"]["verdict"] == "符合" and clauses["7-agreements"]["verdict"] == "符合"


def test_rules_clause_reads_the_latest_safety_rules(tmp_path: Path) -> None:
    """An incomplete old safety version, superseded by one covering all 31 risks, does not hold the
    clause back; the reverse (a new incomplete version) does."""
    from datetime import UTC, datetime

    from hegui.config import HeguiConfig
    from hegui.filing.clauses import CATALOGUE
    from hegui.filing.inputs import FilingInputs

    complete = annotation_summary(write_rules(tmp_path))
    old = complete.rules[1].model_copy(update={"version": "v0", "published_at": datetime(2026, 1, 1, tzinfo=UTC),
                                               "missing_risks": ["A3a"], "risks_covered": []})
    clause = next(c for c in CATALOGUE if c.id == "5.3-annotation-rules")
    superseded = complete.model_copy(update={"rules": [*complete.rules, old]})
    got = clause.check(FilingInputs(cfg=HeguiConfig(), annotation=superseded))
    assert "未覆盖" not in got.reason
    newer_incomplete = old.model_copy(update={"published_at": datetime(2026, 12, 2, tzinfo=UTC)})
    worse = complete.model_copy(update={"rules": [*complete.rules, newer_incomplete]})
    got = clause.check(FilingInputs(cfg=HeguiConfig(), annotation=worse))
    assert got.verdict == "不符合" and "A3a" in got.reason
