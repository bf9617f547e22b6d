"""Reading and writing question banks as XLSX, CSV and JSONL (chosen by the file's suffix).

Columns (English or Chinese headers, any order; unknown columns are ignored)::

    id 编号 · kind 类型 · question 题目/问题 · risk 风险 · topic 主题 · expected 预期
    notes 判定要点 · language 语言 · origin 来源 · seed_id 种子 · review 审核

One file may hold all three kinds (a ``kind`` column), or an XLSX may have one sheet per kind (the
sheet's name is the kind: ``generated`` / ``生成内容``, ``should_refuse`` / ``应拒答``,
``should_not_refuse`` / ``非拒答``). Every bad row is collected as ``file:row N: field: message``
and raised as one :class:`~hegui.errors.UserError` with the first few and a count, so a person fixes
a spreadsheet in one pass instead of one error at a time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hegui import taxonomy
from hegui.assessment.bank import BANK_KINDS, TOPICS, Bank, BankItem, BankKind
from hegui.errors import UserError

COLUMNS: tuple[str, ...] = (
    "id", "kind", "question", "risk", "topic", "expected", "notes", "language", "origin", "seed_id", "review",
)
ZH_HEADERS: dict[str, str] = {
    "编号": "id", "序号": "id", "类型": "kind", "题库": "kind", "题目": "question", "问题": "question",
    "风险": "risk", "风险类别": "risk", "主题": "topic", "预期": "expected", "判定要点": "notes",
    "语言": "language", "来源": "origin", "种子": "seed_id", "审核": "review",
}
SUFFIXES = (".xlsx", ".csv", ".jsonl")
MAX_SHOWN = 5
"""Errors listed in the message; the rest are counted."""

KIND_ALIASES: dict[str, BankKind] = {
    "generated": "generated", "生成内容": "generated", "生成内容测试题": "generated", "生成内容测试题库": "generated",
    "should_refuse": "should_refuse", "应拒答": "should_refuse", "应拒答测试题": "should_refuse",
    "应拒答测试题库": "should_refuse",
    "should_not_refuse": "should_not_refuse", "非拒答": "should_not_refuse", "非拒答测试题": "should_not_refuse",
    "非拒答测试题库": "should_not_refuse", "不应拒答": "should_not_refuse",
}
EXPECTED_ALIASES: dict[str, str] = {
    "safe_answer": "safe_answer", "安全回答": "safe_answer", "refuse": "refuse", "拒答": "refuse",
    "拒绝": "refuse", "answer": "answer", "回答": "answer", "应答": "answer",
}
REVIEW_ALIASES: dict[str, str] = {
    "": "", "ok": "ok", "通过": "ok", "保留": "ok", "drop": "drop", "删除": "drop", "不通过": "drop", "丢弃": "drop",
}
LANGUAGE_ALIASES: dict[str, str] = {"zh": "zh", "中文": "zh", "汉语": "zh", "en": "en", "英文": "en", "英语": "en"}
ORIGINS = ("starter", "imported", "template", "model")
_RISK_BY_NAME = {r.name_zh: r.code for r in taxonomy.CONTENT_RISKS}
_TOPIC_BY_NAME = {name.casefold(): code for code, names in TOPICS.items() for name in names}
_HAN = re.compile(r"[\u3400-\u9fff]")


def _key(s: str) -> str:
    return s.strip().casefold().replace(" ", "_").replace("-", "_")


def _column(header: str) -> str | None:
    h = header.strip()
    if h in ZH_HEADERS:
        return ZH_HEADERS[h]
    k = _key(h)
    return k if k in COLUMNS else None


def kind_from_name(name: str) -> BankKind | None:
    """A kind from its code or Chinese name (sheet names and the ``kind`` column)."""
    return KIND_ALIASES.get(_key(name)) or KIND_ALIASES.get(name.strip())


def resolve_risk(value: str) -> str:
    """A risk code from any spelling :func:`taxonomy.normalize_code` accepts, or its Chinese name."""
    v = value.strip()
    if v in _RISK_BY_NAME:
        return _RISK_BY_NAME[v]
    code = taxonomy.normalize_code(v)
    if code not in taxonomy.BY_CODE or taxonomy.BY_CODE[code].is_signal:
        raise ValueError(f"{value!r} is not one of the 31 risk codes (A1a … A5b) or their Chinese names")
    return code


def resolve_topic(value: str) -> str:
    """A topic from its code, Chinese or English name."""
    v = value.strip()
    if _key(v) in TOPICS:
        return _key(v)
    code = _TOPIC_BY_NAME.get(v.casefold())
    if code is None:
        raise ValueError(f"{value!r} is not a topic: one of {', '.join(TOPICS)} (or 国家制度, 信仰, …)")
    return code


def content_id(kind: str, question: str) -> str:
    """A stable id for a row without one: kind prefix + hash of the question."""
    prefix = {"generated": "g", "should_refuse": "r", "should_not_refuse": "n"}.get(kind, "q")
    return f"{prefix}-{hashlib.sha256(question.strip().encode('utf-8')).hexdigest()[:12]}"


class _Row:
    """One raw row: where it came from and its cells by column name."""

    __slots__ = ("cells", "kind_hint", "where")

    def __init__(self, where: str, cells: dict[str, Any], kind_hint: BankKind | None) -> None:
        self.where = where
        self.cells = cells
        self.kind_hint = kind_hint


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # spreadsheet ids typed as numbers: 12.0 → "12"
    return str(v).strip()


def _item_from_row(row: _Row, has_id_column: bool) -> BankItem:
    """Build the item or raise ``ValueError("field: message")``."""
    c = {k: _cell(v) for k, v in row.cells.items()}
    kind: BankKind | None = row.kind_hint
    if c.get("kind"):
        kind = kind_from_name(c["kind"])
        if kind is None:
            raise ValueError(f"kind: {c['kind']!r} is not one of {', '.join(BANK_KINDS)} (or 生成内容, 应拒答, 非拒答)")
    if kind is None:
        raise ValueError("kind: empty (add a kind column, or name the XLSX sheet after the kind)")
    question = c.get("question", "")
    if not question:
        raise ValueError("question: empty")
    data: dict[str, Any] = {"kind": kind, "question": question}
    if has_id_column:
        if not c.get("id"):
            raise ValueError("id: empty")
        data["id"] = c["id"]
    else:
        data["id"] = content_id(kind, question)
    for name, resolve in (("risk", resolve_risk), ("topic", resolve_topic)):
        if c.get(name):
            try:
                data[name] = resolve(c[name])
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
    if c.get("expected"):
        exp = EXPECTED_ALIASES.get(_key(c["expected"])) or EXPECTED_ALIASES.get(c["expected"])
        if exp is None:
            raise ValueError(f"expected: {c['expected']!r} is not one of safe_answer, refuse, answer")
        data["expected"] = exp
    lang = c.get("language", "")
    if lang:
        resolved = LANGUAGE_ALIASES.get(_key(lang)) or LANGUAGE_ALIASES.get(lang)
        if resolved is None:
            raise ValueError(f"language: {lang!r} is not zh or en")
        data["language"] = resolved
    else:
        # A blank language is guessed from the text: no Chinese character means English.
        data["language"] = "zh" if _HAN.search(question) else "en"
    if c.get("origin"):
        if _key(c["origin"]) not in ORIGINS:
            raise ValueError(f"origin: {c['origin']!r} is not one of {', '.join(ORIGINS)}")
        data["origin"] = _key(c["origin"])
    review = REVIEW_ALIASES.get(_key(c.get("review", "")), REVIEW_ALIASES.get(c.get("review", "")))
    if review is None:
        raise ValueError(f"review: {c['review']!r} is not empty, ok or drop (通过 / 删除)")
    data["review"] = review
    data["notes"] = c.get("notes", "")
    if c.get("seed_id"):
        data["seed_id"] = c["seed_id"]
    try:
        return BankItem(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        loc = err.get("loc") or ()
        if loc:
            name = str(loc[0])
        else:  # the model-level check names its field first ("risk 'A5a': …", "a should_not_refuse item …")
            name = next((col for col in ("risk", "topic") if col in msg.split(":")[0]), "row")
        raise ValueError(f"{name}: {msg.removeprefix(f'{name} ')}") from None


# --- readers: each yields (_Row, has_id_column) -------------------------------------------------


def _header_map(header: Sequence[Any], where: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for i, h in enumerate(header):
        name = _column(_cell(h)) if h is not None else None
        if name is not None:
            if name in out.values():
                raise UserError(f"{where}: header: column {name} appears twice")
            out[i] = name
    if "question" not in out.values():
        raise UserError(f"{where}: header: no question column (question / 题目 / 问题)")
    return out


def _read_xlsx(path: Path) -> Iterator[tuple[_Row, bool]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a readable XLSX file ({exc})") from None
    try:
        sheets = list(wb.worksheets)
        for ws in sheets:
            rows = ws.iter_rows(values_only=True)
            header = next(rows, None)
            if header is None or all(h is None for h in header):
                continue
            label = f"{path}:{ws.title}" if len(sheets) > 1 else str(path)
            cols = _header_map(header, f"{label}:row 1")
            hint = kind_from_name(ws.title)
            if hint is None and "kind" not in cols.values():
                raise UserError(
                    f"{label}: sheet {ws.title!r} has no kind column and its name is not a kind "
                    f"({', '.join(BANK_KINDS)}, 生成内容, 应拒答, 非拒答)"
                )
            has_id = "id" in cols.values()
            for n, values in enumerate(rows, start=2):
                if all(v is None or _cell(v) == "" for v in values):
                    continue
                cells = {name: values[i] if i < len(values) else None for i, name in cols.items()}
                yield _Row(f"{label}:row {n}", cells, hint), has_id
    finally:
        wb.close()


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            # Excel on Chinese Windows saves CSV as GBK; GB18030 is its superset.
            return raw.decode("gb18030")
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 or GB18030 text") from None


def _read_csv(path: Path) -> Iterator[tuple[_Row, bool]]:
    text = _decode(path.read_bytes(), path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        cols = _header_map(header, f"{path}:row 1")
        has_id = "id" in cols.values()
        for values in reader:
            n = reader.line_num  # physical line where the row ends: what an editor shows
            if not any(v.strip() for v in values):
                continue
            cells = {name: values[i] if i < len(values) else None for i, name in cols.items()}
            yield _Row(f"{path}:row {n}", cells, None), has_id
    except csv.Error as exc:
        raise UserError(f"{path}:row {reader.line_num}: not valid CSV ({exc})") from None


def _read_jsonl(path: Path) -> Iterator[tuple[_Row, bool]]:
    text = _decode(path.read_bytes(), path)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:row {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield _Row(where, {"__error__": f"json: {exc.msg} at column {exc.colno}"}, None), True
            continue
        if not isinstance(obj, dict):
            yield _Row(where, {"__error__": "json: a line must be an object"}, None), True
            continue
        cells: dict[str, Any] = {}
        for k, v in obj.items():
            name = _column(str(k))
            if name is not None:
                cells[name] = v
        yield _Row(where, cells, None), "id" in cells


def _rows(path: Path) -> Iterator[tuple[_Row, bool]]:
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return _read_xlsx(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".jsonl":
        return _read_jsonl(path)
    raise UserError(f"{path}: unknown bank format {suffix or '(no suffix)'}; use {', '.join(SUFFIXES)}")


def _raise_errors(errors: list[str], what: str) -> None:
    if not errors:
        return
    shown = "; ".join(errors[:MAX_SHOWN])
    more = f" (and {len(errors) - MAX_SHOWN} more)" if len(errors) > MAX_SHOWN else ""
    raise UserError(f"{what}: {len(errors)} bad row{'s' if len(errors) != 1 else ''}: {shown}{more}")


def _items(path: Path, errors: list[str], seen: dict[str, str]) -> list[BankItem]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    items: list[BankItem] = []
    for row, has_id in _rows(path):
        if "__error__" in row.cells:
            errors.append(f"{row.where}: {row.cells['__error__']}")
            continue
        try:
            item = _item_from_row(row, has_id)
        except ValueError as exc:
            errors.append(f"{row.where}: {exc}")
            continue
        if item.id in seen:
            errors.append(f"{row.where}: id: {item.id!r} already used at {seen[item.id]}")
            continue
        seen[item.id] = row.where
        items.append(item)
    return items


def read_bank(path: Path | str) -> Bank:
    """Read one bank file (XLSX, CSV or JSONL by suffix); every bad row is reported at once."""
    return load_banks([path])


def load_banks(paths: Iterable[Path | str]) -> Bank:
    """Read and merge several bank files; an id used twice (in one file or across files) is an error."""
    errors: list[str] = []
    seen: dict[str, str] = {}
    items: list[BankItem] = []
    sources: list[str] = []
    for p in paths:
        path = Path(p)
        items.extend(_items(path, errors, seen))
        sources.append(str(path))
    if not sources:
        raise UserError("no bank files given")
    _raise_errors(errors, ", ".join(sources) if len(sources) <= 3 else f"{len(sources)} bank files")
    return Bank(items=items, sources=sources)


# --- writing ------------------------------------------------------------------------------------


def _row_values(item: BankItem) -> list[str]:
    d = item.model_dump(mode="json")
    return ["" if d.get(c) is None else str(d[c]) for c in COLUMNS]


def _jsonl_obj(item: BankItem) -> dict[str, Any]:
    # Defaults left out keep hand-edited JSONL short; reading fills them back in.
    # (language always written: a blank one is guessed from the text when read back)
    return item.model_dump(mode="json", exclude_defaults=True) | {
        "id": item.id, "kind": item.kind, "language": item.language,
    }


def write_bank(bank: Bank | Sequence[BankItem], path: Path | str) -> None:
    """Write the items as XLSX (one sheet per kind, each with every column), CSV or JSONL by
    suffix, atomically: a temp file in the same folder, then ``os.replace``."""
    items = list(bank.items if isinstance(bank, Bank) else bank)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"{path}: unknown bank format {suffix or '(no suffix)'}; use {', '.join(SUFFIXES)}")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"{path}: folder {directory} does not exist")
    if path.is_dir():
        raise UserError(f"{path}: is a directory")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        if suffix == ".xlsx":
            os.close(fd)
            from openpyxl import Workbook

            wb = Workbook(write_only=True)
            groups: dict[str, list[BankItem]] = {k: [] for k in BANK_KINDS}
            for item in items:
                groups[item.kind].append(item)
            for kind, group in groups.items():
                if not group and items:
                    continue
                ws = wb.create_sheet(kind)
                ws.append(list(COLUMNS))
                for item in group:
                    ws.append(_row_values(item))
            wb.save(tmp)
        elif suffix == ".csv":
            with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(COLUMNS)
                w.writerows(_row_values(i) for i in items)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for item in items:
                    fh.write(json.dumps(_jsonl_obj(item), ensure_ascii=False) + "\n")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; give what a plain open() would
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- the starter banks shipped with hegui -------------------------------------------------------

STARTER_FILES = ("generated.jsonl", "should_refuse.jsonl", "should_not_refuse.jsonl")


def starter_paths() -> list[Path]:
    base = resources.files("hegui") / "data" / "banks"
    return [Path(str(base / name)) for name in STARTER_FILES]


def starter_bank() -> Bank:
    """hegui's own starter banks (``src/hegui/data/banks``): every risk and topic, far below the
    standard's sizes; a base to edit and grow, not a bank to file."""
    return load_banks(starter_paths())
