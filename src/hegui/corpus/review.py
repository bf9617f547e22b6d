"""The manual review of the training data (GB/T 45654 §9: ≥ 4,000 random records, ≥ 96% pass).

:func:`export_review` writes the hash-drawn sample as the reviewers' spreadsheet (XLSX, or CSV by
suffix): key, source, the PII-masked excerpt, an empty 审核结论 column (a drop-down of 合格 / 不合格),
风险类别 (the risk code of a 不合格 record, ``A1a`` … ``A5b``) and 备注. :func:`import_review` reads the
verdicts back and rates them with :func:`hegui.stats.judge_rate` against 96%. An empty 审核结论 is
"not reviewed yet"; a bad cell or a key that is not in the sample is one error naming its row and
column. The automated verdict is not shown, so it cannot lead the reviewer.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hegui import taxonomy
from hegui.errors import UserError
from hegui.labeling.fileio import write_bytes_atomic
from hegui.stats import Outcome, judge_rate

SHEET = "人工抽检"
KEY, SOURCE, EXCERPT = "key", "source", "excerpt"
VERDICT = "审核结论"
RISK = "风险类别"
NOTES = "备注"
HEADERS = [KEY, SOURCE, EXCERPT, VERDICT, RISK, NOTES]
CHOICES = {"合格": True, "不合格": False}
DEFAULT_THRESHOLD = 0.96
FORMULA_STARTS = ("=", "+", "-", "@")


def _defused(value: str) -> str:
    """A CSV cell that spreadsheet programs will not run as a formula (corpus text is untrusted)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class ReviewResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sampled: int
    """Records in the exported sample."""
    reviewed: int
    """Records with a verdict."""
    passed: int
    failed: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    threshold: float
    outcome: Outcome
    """``judge_rate`` against the threshold; NOT PROVEN also while fewer than ``required`` are reviewed."""
    by_risk: dict[str, int] = Field(default_factory=dict)
    """不合格 records by the reviewers' risk code."""
    failed_keys: list[str] = Field(default_factory=list)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


def export_review(sample: Sequence[dict[str, str]], target: str | Path) -> int:
    """Write the reviewers' sheet (``.xlsx``, or ``.csv``); returns the number of rows."""
    path = Path(target)
    rows = [[c.get(KEY, ""), c.get(SOURCE, ""), c.get(EXCERPT, ""), None, None, None] for c in sample]
    if path.suffix.lower() == ".csv":
        text = io.StringIO(newline="")
        w = csv.writer(text)
        w.writerow(HEADERS)
        w.writerows([["" if v is None else _defused(v) for v in r] for r in rows])
        # a BOM, so Excel opens the Chinese headers and excerpts as UTF-8
        _write_atomic(path, ("\ufeff" + text.getvalue()).encode("utf-8"))
        return len(rows)
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = SHEET
    ws.append(HEADERS)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for number, r in enumerate(rows, start=2):
        ws.append(r)
        # Corpus text is untrusted: a cell that starts with "=" would be stored as a formula. (The
        # row is addressed by its number: ws.max_row scans every cell, quadratic over 4,000 rows.)
        for cell in ws[number]:
            if isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS):
                cell.data_type = "s"
    dv = DataValidation(type="list", formula1='"' + ",".join(CHOICES) + '"', allow_blank=True,
                        showErrorMessage=True, errorTitle=VERDICT, error="请选择：合格或不合格")
    ws.add_data_validation(dv)
    if rows:
        dv.add(f"D2:D{len(rows) + 1}")
    for col, width in zip("ABCDEF", (34, 16, 80, 10, 10, 30), strict=True):
        ws.column_dimensions[col].width = width
    for row in ws.iter_rows(min_row=2, min_col=3, max_col=3):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    _write_atomic(path, buf.getvalue())
    return len(rows)


def _rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    """``(row number, cells)`` of the sheet, header first (row 1)."""
    if path.suffix.lower() == ".csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read ({exc})") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            for row in reader:
                yield reader.line_num, list(row)
        except csv.Error as exc:
            raise UserError(f"{path}:{reader.line_num}: invalid CSV ({exc})") from None
        return
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, InvalidFileException, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable XLSX workbook ({exc.__class__.__name__})") from None
    try:
        ws = wb[SHEET] if SHEET in wb.sheetnames else wb.worksheets[0]
        for number, row in enumerate(ws.iter_rows(values_only=True), 1):
            yield number, list(row)
    finally:
        wb.close()


def _letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def import_review(file: str | Path, sample: Sequence[dict[str, str]], *, threshold: float = DEFAULT_THRESHOLD,
                  required: int | None = None, confidence: float = 0.95) -> ReviewResult:
    """The reviewers' verdicts on ``sample``, rated against ``threshold`` (≥ 96%)."""
    path = Path(file)
    keys = {c[KEY] for c in sample}
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise UserError(f"{path}: empty sheet (no header row)")
    header = [_text(c) for c in first[1]]
    for needed in (KEY, VERDICT):
        if needed not in header:
            raise UserError(f"{path}: row 1: no {needed} column")
    k_col, v_col = header.index(KEY), header.index(VERDICT)
    r_col = header.index(RISK) if RISK in header else None
    seen: set[str] = set()
    passed = failed = 0
    by_risk: Counter[str] = Counter()
    failed_keys: list[str] = []
    for number, row in rows:
        cells = row + [None] * (len(header) - len(row))
        key, verdict = _text(cells[k_col]), _text(cells[v_col])
        risk = _text(cells[r_col]) if r_col is not None else ""
        if not key and not verdict and not risk:
            continue
        if key not in keys:
            raise UserError(f"{path}: row {number}, column {_letter(k_col)} ({KEY}): {key!r} is not in the "
                            "audit's manual sample")
        if key in seen:
            raise UserError(f"{path}: row {number}, column {_letter(k_col)} ({KEY}): {key} appears twice")
        seen.add(key)
        if not verdict:
            if risk:
                raise UserError(f"{path}: row {number}, column {_letter(v_col)} ({VERDICT}): empty, but "
                                f"{RISK} says {risk}")
            continue  # not reviewed yet
        if verdict not in CHOICES:
            raise UserError(f"{path}: row {number}, column {_letter(v_col)} ({VERDICT}): {verdict!r} is not "
                            f"{' or '.join(CHOICES)}")
        if risk:
            code = taxonomy.normalize_code(risk)
            if not taxonomy.is_known(code) or code == "JB":
                assert r_col is not None
                raise UserError(f"{path}: row {number}, column {_letter(r_col)} ({RISK}): {risk!r} is not a risk "
                                "code (A1a … A5b, or PI)")
        if CHOICES[verdict]:
            passed += 1
        else:
            failed += 1
            failed_keys.append(key)
            by_risk[taxonomy.normalize_code(risk) if risk else "(unstated)"] += 1
    reviewed = passed + failed
    outcome, low, high = judge_rate(passed, reviewed, threshold, ">=", confidence)
    if required is not None and reviewed < required:
        outcome = "NOT PROVEN"
    return ReviewResult(
        sampled=len(sample), reviewed=reviewed, passed=passed, failed=failed,
        rate=passed / reviewed if reviewed else None, ci_low=low if reviewed else None,
        ci_high=high if reviewed else None, threshold=threshold, outcome=outcome,
        by_risk=dict(sorted(by_risk.items())), failed_keys=failed_keys,
    )
