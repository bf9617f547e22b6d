"""The manual judge: a review workbook out (``hegui assess export-review``) and back in
(``hegui assess import-review``).

The sheet has one row per answered item: id, kind, risk/topic, question, answer, the automatic
judges' verdicts, then an empty 人工判定 column (a drop-down of 通过 / 不通过 / 无法判定) and 备注.
For a refusal bank, 通过 means the model did what it should (refused a should-refuse question,
answered a should-not-refuse one). An empty 人工判定 is "not reviewed yet" and writes nothing; a bad
cell is one error naming its row and column.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from hegui.assessment.judges import as_dict, verdict_label
from hegui.assessment.results import JudgementRecord, RunFolder, write_atomic_bytes
from hegui.errors import UserError

SHEET = "人工判定"
VERDICT_COLUMN = "人工判定"
NOTES_COLUMN = "备注"
CHOICES = {"通过": True, "不通过": False, "无法判定": None}
OTHER_JUDGES = ("refusal", "keyword", "classifier", "model")
JUDGE_HEADERS = {"refusal": "拒答识别", "keyword": "关键词", "classifier": "分类模型", "model": "大模型评判"}
HEADERS = ["id", "类型", "风险/主题", "题目", "回答", "状态", *JUDGE_HEADERS.values(), VERDICT_COLUMN, NOTES_COLUMN]


def export_review(folder: RunFolder, out: Path) -> int:
    """Write the review workbook; returns the number of rows."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.datavalidation import DataValidation

    folder.require()
    answers = folder.answers()
    judged = as_dict(folder.judgements())
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = SHEET
    ws.append(HEADERS)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    rows = 0
    for item in folder.sample():
        a = answers.get(item.id)
        if a is None or a.status == "error":
            continue  # nothing to review: it was never answered
        manual = judged.get(("manual", item.id))
        ws.append([
            item.id, item.kind, item.risk or item.topic or "", item.question, a.answer, a.status,
            *(verdict_label(judged.get((j, item.id))) for j in OTHER_JUDGES),
            verdict_label(manual) or None, manual.reason if manual else None,
        ])
        rows += 1
    verdict_col = HEADERS.index(VERDICT_COLUMN) + 1
    letter = ws.cell(row=1, column=verdict_col).column_letter
    dv = DataValidation(type="list", formula1='"' + ",".join(CHOICES) + '"', allow_blank=True,
                        showErrorMessage=True, errorTitle="人工判定", error="请选择：通过、不通过或无法判定")
    ws.add_data_validation(dv)
    if rows:
        dv.add(f"{letter}2:{letter}{rows + 1}")
    for col, width in zip("ABCDEFGHIJKL", (18, 16, 10, 40, 60, 12, 10, 10, 10, 10, 10, 30), strict=False):
        ws.column_dimensions[col].width = width
    for row in ws.iter_rows(min_row=2, min_col=4, max_col=5):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    write_atomic_bytes(out, buf.getvalue())
    return rows


def read_review(folder: RunFolder, path: Path) -> list[JudgementRecord]:
    """The manual records of a filled workbook; the first bad cell raises one line naming it."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (OSError, InvalidFileException, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable XLSX workbook ({exc.__class__.__name__})") from None
    try:
        ws = wb[SHEET] if SHEET in wb.sheetnames else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = [str(c).strip() if c is not None else "" for c in next(rows, ())]
        for needed in ("id", VERDICT_COLUMN):
            if needed not in header:
                raise UserError(f"{path}: row 1: no {needed} column")
        id_col, v_col = header.index("id"), header.index(VERDICT_COLUMN)
        n_col = header.index(NOTES_COLUMN) if NOTES_COLUMN in header else None
        v_letter = _letter(v_col)
        items = {i.id: i for i in folder.sample()}
        records: dict[str, JudgementRecord] = {}
        for number, row in enumerate(rows, 2):
            cells = list(row) + [None] * (len(header) - len(row))
            raw_id, raw_v = cells[id_col], cells[v_col]
            if (raw_id is None or str(raw_id).strip() == "") and (raw_v is None or str(raw_v).strip() == ""):
                continue
            item_id = str(raw_id).strip() if raw_id is not None else ""
            if item_id not in items:
                raise UserError(f"{path}: row {number}, column {_letter(id_col)} (id): {item_id!r} is not in "
                                f"this run's sample")
            verdict = str(raw_v).strip() if raw_v is not None else ""
            if not verdict:
                continue  # not reviewed yet
            if verdict not in CHOICES:
                raise UserError(f"{path}: row {number}, column {v_letter} ({VERDICT_COLUMN}): {verdict!r} is not "
                                f"one of {', '.join(CHOICES)}")
            if item_id in records:
                raise UserError(f"{path}: row {number}, column {_letter(id_col)} (id): {item_id} appears twice")
            passed = CHOICES[verdict]
            kind = items[item_id].kind
            refused = None if passed is None or kind == "generated" else (
                passed if kind == "should_refuse" else not passed)
            note = cells[n_col] if n_col is not None else None
            records[item_id] = JudgementRecord(item_id=item_id, judge="manual", passed=passed, refused=refused,
                                               reason=str(note).strip() if note is not None else "")
        return list(records.values())
    finally:
        wb.close()


def import_review(folder: RunFolder, path: Path) -> int:
    """Read the workbook and replace the manual records of the items it judges; returns how many."""
    folder.require()
    records = read_review(folder, path)
    folder.replace_judgements("manual", records, only_items={r.item_id for r in records})
    return len(records)


def _letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)
