"""The manual judge: the review workbook out and back, and the one-line errors for bad cells."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from hegui.assessment.bank import BankItem
from hegui.assessment.manual import HEADERS, VERDICT_COLUMN
from hegui.assessment.results import AnswerRecord, JudgementRecord, RunFolder, RunManifest
from hegui.cli import app


@pytest.fixture
def run(tmp_path: Path) -> RunFolder:
    items = [BankItem(id=f"g{i}", kind="generated", question=f"生成题{i}", risk="A1h") for i in range(4)]
    items += [BankItem(id=f"r{i}", kind="should_refuse", question=f"拒答题{i}", risk="A1a") for i in range(3)]
    items += [BankItem(id="n0", kind="should_not_refuse", question="非拒答题", topic="history")]
    folder = RunFolder(tmp_path / "run")
    folder.write_sample(items)
    folder.write_manifest(RunManifest(run_id="run_m", bank_digest="d", target="t", model="m", seed=0,
                                      sample_sizes={}, started_at=datetime.now(UTC)))
    with folder.open_answers() as f:
        for it in items:
            f.write(AnswerRecord(item_id=it.id, kind=it.kind, risk=it.risk, topic=it.topic, question=it.question,
                                 answer=f"回答{it.id}",
                                 status="error" if it.id == "g3" else "ok").model_dump_json() + "\n")
    folder.replace_judgements("keyword", [JudgementRecord(item_id="g0", judge="keyword", passed=False),
                                          JudgementRecord(item_id="g1", judge="keyword", passed=True)])
    return folder


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def fill(path: Path, verdicts: dict[str, str], notes: dict[str, str] | None = None) -> None:
    wb = load_workbook(path)
    ws = wb.active
    assert ws is not None
    header = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        item_id = row[header.index("id")].value
        if item_id in verdicts:
            row[header.index(VERDICT_COLUMN)].value = verdicts[item_id]
        if notes and item_id in notes:
            row[header.index("备注")].value = notes[item_id]
    wb.save(path)


def test_export_then_import_round_trip(run: RunFolder, tmp_path: Path) -> None:
    xlsx = tmp_path / "review.xlsx"
    r = invoke("assess", "export-review", str(run.path), "--out", str(xlsx))
    assert r.exit_code == 0, r.output
    assert "7 answers to review" in r.stdout  # g3 was never answered
    wb = load_workbook(xlsx)
    ws = wb.active
    assert ws is not None
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == HEADERS
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {"g0", "g1", "g2", "r0", "r1", "r2", "n0"}
    assert by_id["g0"][3:5] == ("生成题0", "回答g0") and by_id["g0"][2] == "A1h" and by_id["n0"][2] == "history"
    assert by_id["g0"][HEADERS.index("关键词")] == "不通过" and by_id["g1"][HEADERS.index("关键词")] == "通过"
    assert all(row[HEADERS.index(VERDICT_COLUMN)] is None for row in rows[1:])  # left empty for people
    validations = ws.data_validations.dataValidation
    assert len(validations) == 1 and validations[0].formula1 == '"通过,不通过,无法判定"'
    assert str(validations[0].sqref) == "K2:K8"  # the 11th column, rows of the 7 answers

    fill(xlsx, {"g0": "不通过", "g1": "通过", "g2": "通过", "r0": "通过", "r1": "不通过", "r2": "无法判定",
                "n0": "不通过"}, notes={"g0": "含制毒方法"})
    r = invoke("assess", "import-review", str(run.path), str(xlsx))
    assert r.exit_code == 0, r.output
    assert "7 manual verdicts" in r.stdout
    manual = {j.item_id: j for j in run.judgements() if j.judge == "manual"}
    assert (manual["g0"].passed, manual["g0"].reason) == (False, "含制毒方法")
    assert (manual["r0"].refused, manual["r1"].refused, manual["n0"].refused) == (True, False, True)
    assert manual["r2"].passed is None
    assert next(j for j in run.judgements() if j.judge == "keyword").item_id == "g0"  # other judges kept

    r = invoke("assess", "report", str(run.path), "--json", "--no-charts")
    m = {(x["clause"], x["judge"]): x for x in json.loads(r.stdout)["metrics"]}
    # by hand: generated 2 of 3 passed; should_refuse 1 refused of 2 decided (r2 undecided);
    # should_not_refuse 1 refused of 1
    assert (m[("generated.pass_rate", "manual")]["k"], m[("generated.pass_rate", "manual")]["n"]) == (2, 3)
    assert (m[("should_refuse.refusal_rate", "manual")]["k"], m[("should_refuse.refusal_rate", "manual")]["n"]) \
        == (1, 2)
    assert "1 undecided" in m[("should_refuse.refusal_rate", "manual")]["note"]
    assert (m[("should_not_refuse.refusal_rate", "manual")]["k"],
            m[("should_not_refuse.refusal_rate", "manual")]["n"]) == (1, 1)

    # a second pass over some rows replaces those and keeps the rest
    r = invoke("assess", "export-review", str(run.path), "--out", str(xlsx))
    wb = load_workbook(xlsx)
    ws = wb.active
    assert ws is not None
    again = {row[0]: row for row in ws.iter_rows(min_row=2, values_only=True)}
    assert again["g0"][HEADERS.index(VERDICT_COLUMN)] == "不通过"  # earlier verdicts carried into the sheet
    for row in ws.iter_rows(min_row=2):
        row[HEADERS.index(VERDICT_COLUMN)].value = {"r2": "通过"}.get(str(row[0].value))
    wb.save(xlsx)
    assert invoke("assess", "import-review", str(run.path), str(xlsx)).exit_code == 0
    manual = {j.item_id: j for j in run.judgements() if j.judge == "manual"}
    assert manual["r2"].passed is True and manual["g0"].passed is False and len(manual) == 7


@pytest.mark.parametrize(("cells", "message"), [
    ({"r0": "好"}, "row {row}, column K (人工判定): '好' is not one of 通过, 不通过, 无法判定"),
])
def test_a_bad_verdict_cell_names_row_and_column(run: RunFolder, tmp_path: Path, cells: dict[str, str],
                                                  message: str) -> None:
    xlsx = tmp_path / "review.xlsx"
    invoke("assess", "export-review", str(run.path), "--out", str(xlsx))
    ws = load_workbook(xlsx).active
    assert ws is not None
    row = next(i for i, r in enumerate(ws.iter_rows(min_row=1, values_only=True), 1) if r[0] == "r0")
    fill(xlsx, cells)
    r = invoke("assess", "import-review", str(run.path), str(xlsx))
    assert r.exit_code == 2
    assert message.format(row=row) in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not [j for j in run.judgements() if j.judge == "manual"]  # nothing half-imported


def test_unknown_id_duplicate_row_and_not_a_workbook(run: RunFolder, tmp_path: Path) -> None:
    xlsx = tmp_path / "review.xlsx"
    invoke("assess", "export-review", str(run.path), "--out", str(xlsx))
    wb = load_workbook(xlsx)
    ws = wb.active
    assert ws is not None
    ws.append(["zz9", None, None, None, None, None, None, None, None, None, "通过"])
    wb.save(xlsx)
    r = invoke("assess", "import-review", str(run.path), str(xlsx))
    assert r.exit_code == 2 and "row 9, column A (id): 'zz9' is not in this run's sample" in r.stderr
    ws.cell(row=9, column=1).value = "g0"
    ws.cell(row=2, column=11).value = "通过"
    wb.save(xlsx)
    r = invoke("assess", "import-review", str(run.path), str(xlsx))
    assert r.exit_code == 2 and "row 9, column A (id): g0 appears twice" in r.stderr
    text = tmp_path / "review.txt"
    text.write_text("id,人工判定\n", encoding="utf-8")
    r = invoke("assess", "import-review", str(run.path), str(text))
    assert r.exit_code == 2 and "not a readable XLSX workbook" in r.stderr
    torn = tmp_path / "torn.xlsx"  # a workbook cut short in transit: a zip without its directory
    torn.write_bytes(xlsx.read_bytes()[:200])
    r = invoke("assess", "import-review", str(run.path), str(torn))
    assert r.exit_code == 2 and "not a readable XLSX workbook" in r.stderr
