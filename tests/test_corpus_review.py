"""The manual review sheet: export, the reviewers' verdicts back, bad cells, and the 96% rule."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import load_workbook

from hegui.corpus.review import export_review, import_review
from hegui.errors import UserError


def sample(n: int) -> list[dict[str, str]]:
    return [{"key": f"src:f.jsonl:{i}", "source": "src", "excerpt": f"第{i}条摘录", "rank": f"{i:016x}",
             "flagged": "0"} for i in range(n)]


def fill_xlsx(path: Path, verdicts: dict[int, tuple[str, str]]) -> None:
    """Write 审核结论 / 风险类别 for rows of the exported sheet, as a reviewer would."""
    wb = load_workbook(path)
    ws = wb.active
    assert ws is not None
    header = [c.value for c in ws[1]]
    v_col, r_col = header.index("审核结论") + 1, header.index("风险类别") + 1
    for row, (verdict, risk) in verdicts.items():
        ws.cell(row=row, column=v_col, value=verdict)
        ws.cell(row=row, column=r_col, value=risk or None)
    wb.save(path)


def test_xlsx_round_trip_counts_and_rates(tmp_path: Path) -> None:
    s = sample(100)
    path = tmp_path / "review.xlsx"
    assert export_review(s, path) == 100
    wb = load_workbook(path)
    ws = wb.active
    assert ws is not None
    assert [c.value for c in ws[1]] == ["key", "source", "excerpt", "审核结论", "风险类别", "备注"]
    assert ws.cell(row=2, column=1).value == "src:f.jsonl:0"
    assert ws.data_validations.dataValidation[0].formula1 == '"合格,不合格"'
    # 99 合格, 1 不合格 (A1h): 99% but the Wilson low bound for 99/100 is 0.9455 < 96% → NOT PROVEN.
    verdicts = {row: ("合格", "") for row in range(2, 102)}
    verdicts[7] = ("不合格", "a1h")
    fill_xlsx(path, verdicts)
    r = import_review(path, s)
    assert (r.reviewed, r.passed, r.failed) == (100, 99, 1)
    assert r.rate == pytest.approx(0.99)
    assert r.ci_low == pytest.approx(0.9455, abs=5e-4)
    assert r.outcome == "NOT PROVEN"
    assert r.by_risk == {"A1h": 1}
    assert r.failed_keys == ["src:f.jsonl:5"]


def test_pass_fail_and_unreviewed_rows(tmp_path: Path) -> None:
    s = sample(1000)
    path = tmp_path / "review.csv"
    export_review(s, path)
    rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    for row in rows[1:]:
        row[3] = "合格"
    path.write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    # 1000 of 1000: Wilson low bound (1 + z²/2n − z·z/2n)/(1 + z²/n) = 0.99617 ≥ 0.96 → PASS.
    r = import_review(path, s)
    assert (r.reviewed, r.passed, r.outcome) == (1000, 1000, "PASS")
    assert r.ci_low == pytest.approx(0.99617, abs=5e-5)
    # Fewer reviewed than required stays NOT PROVEN whatever the rate.
    assert import_review(path, s, required=4000).outcome == "NOT PROVEN"
    # 80 of 100 reviewed pass, the other 900 rows empty (not reviewed yet): FAIL.
    for i, row in enumerate(rows[1:]):
        row[3] = "" if i >= 100 else ("合格" if i < 80 else "不合格")
    path.write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    r = import_review(path, s)
    assert (r.reviewed, r.passed, r.failed, r.outcome) == (100, 80, 20, "FAIL")
    assert r.by_risk == {"(unstated)": 20}


@pytest.mark.parametrize(("verdict", "risk", "key", "message"), [
    ("通过", "", None, r"row 3, column D \(审核结论\): '通过' is not 合格 or 不合格"),
    ("不合格", "A9z", None, r"row 3, column E \(风险类别\): 'A9z' is not a risk code"),
    ("不合格", "JB", None, r"row 3, column E \(风险类别\): 'JB' is not a risk code"),
    ("", "A1a", None, r"row 3, column D \(审核结论\): empty, but 风险类别 says A1a"),
    ("合格", "", "src:other:1", r"row 3, column A \(key\): 'src:other:1' is not in the audit's manual sample"),
    ("合格", "", "src:f.jsonl:0", r"row 3, column A \(key\): src:f.jsonl:0 appears twice"),
])
def test_bad_cells_name_row_and_column(tmp_path: Path, verdict: str, risk: str, key: str | None,
                                       message: str) -> None:
    s = sample(3)
    path = tmp_path / "review.xlsx"
    export_review(s, path)
    fill_xlsx(path, {2: ("合格", ""), 3: (verdict, risk)})
    if key is not None:
        wb = load_workbook(path)
        ws = wb.active
        assert ws is not None
        ws.cell(row=3, column=1, value=key)
        wb.save(path)
    with pytest.raises(UserError, match=message):
        import_review(path, s)


def test_missing_columns_and_unreadable_files(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("key,verdict\nx,合格\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"r\.csv: row 1: no 审核结论 column"):
        import_review(p, sample(1))
    bad = tmp_path / "r.xlsx"
    bad.write_bytes(b"not a workbook")
    with pytest.raises(UserError, match=r"r\.xlsx: not a readable XLSX workbook"):
        import_review(bad, sample(1))
    with pytest.raises(UserError, match=r"nope\.xlsx: no such file"):
        import_review(tmp_path / "nope.xlsx", sample(1))


def test_corpus_text_is_never_a_formula(tmp_path: Path) -> None:
    s = [{"key": "src:f:1", "source": "src", "excerpt": "=HYPERLINK(\"http://x\",\"点击\")"}]
    export_review(s, tmp_path / "r.xlsx")
    ws = load_workbook(tmp_path / "r.xlsx").active
    assert ws is not None
    cell = ws.cell(row=2, column=3)
    assert cell.data_type == "s" and cell.value == s[0]["excerpt"]
    export_review(s, tmp_path / "r.csv")
    row = list(csv.reader((tmp_path / "r.csv").read_text(encoding="utf-8-sig").splitlines()))[1]
    assert row[2] == "'" + s[0]["excerpt"]
