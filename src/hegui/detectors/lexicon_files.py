"""Reading and writing lexicon files: plain word lists, ``word<TAB>risk`` lists, tag lists
(``word tag[,tag]``, e.g. houbb's), and the filing spreadsheet (``关键词 / 一级分类 / 二级分类``, CSV
or XLSX). Every problem is a one-line :class:`ConfigError` naming ``file:line`` (or ``file:row``).
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hegui import taxonomy
from hegui.errors import ConfigError

Format = Literal["auto", "text", "tsv", "tags", "csv", "xlsx"]
FORMATS: tuple[str, ...] = ("auto", "text", "tsv", "tags", "csv", "xlsx")
OPTIONS: tuple[str, ...] = ("pinyin", "initials")

# Spreadsheet headers: the filing form's Chinese names, plus English aliases.
KEYWORD_HEADERS = ("关键词", "keyword", "word")
CATEGORY_HEADERS = ("一级分类", "category")
SUBCATEGORY_HEADERS = ("二级分类", "subcategory", "risk")
OPTION_HEADERS = ("选项", "options")

_RISK_BY_NAME: dict[str, str] = {r.name_zh: r.code for r in taxonomy.CONTENT_RISKS}

# Control characters in a keyword are debris (they never survive normalisation, and spreadsheets
# cannot hold them); they are dropped on load.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class LexiconEntry:
    word: str
    """The keyword as written in the file."""
    risks: tuple[str, ...]
    index: int
    """0-based position in its list; the evidence id is ``lexicon:<list>:<index>``."""
    line: int
    """Line (text formats) or row (spreadsheets) in the source file, 1-based."""
    pinyin: bool = False
    initials: bool = False


@dataclass(frozen=True, slots=True)
class WordList:
    name: str
    source: str
    entries: tuple[LexiconEntry, ...]


@dataclass(frozen=True, slots=True)
class ListSpec:
    """How to read one lexicon file (built from config or from a CLI ``--lexicon`` argument)."""

    path: Path
    name: str
    format: Format = "auto"
    risk: str | None = None
    """Risk of every entry of a plain list; the default for tsv lines without a risk column."""
    category_map: Mapping[str, str] = field(default_factory=dict)
    """Category name or tag → risk code (spreadsheet 一级/二级分类, tags-file tags, tsv risk column)."""
    default_risk: str | None = None
    """Risk for a category/tag that is not in ``category_map`` and is not a risk code or name."""
    pinyin: bool = False
    initials: bool = False


def known_code(value: str) -> str | None:
    code = taxonomy.normalize_code(value)
    return code if code in taxonomy.BY_CODE else None


def resolve_risk(value: str, spec: ListSpec, where: str) -> tuple[str, ...]:
    """Risk codes for a risk/category cell: ``A1a``, ``A.1.a, A1f``, a taxonomy name, or a mapped
    category. Raises ``ConfigError`` naming ``where`` when a part cannot be resolved."""
    out: list[str] = []
    for raw in value.replace("|", ",").replace("、", ",").replace("，", ",").split(","):
        part = raw.strip()
        if not part:
            continue
        code = spec.category_map.get(part) or known_code(part) or _RISK_BY_NAME.get(part) or spec.default_risk
        if code is None:
            raise ConfigError(
                f"{where}: unknown risk or category {part!r}; use a risk code (A1a…A2i, see `hegui risks`)"
                " or add it to category_map"
            )
        if code not in out:
            out.append(code)
    if not out:
        raise ConfigError(f"{where}: empty risk")
    return tuple(out)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such lexicon file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a lexicon file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield no, raw.rstrip("\r\n")


def _parse_options(value: str, where: str) -> tuple[bool, bool]:
    opts = {o.strip().lower() for o in value.replace("|", ",").split(",") if o.strip()}
    unknown = opts - set(OPTIONS)
    if unknown:
        raise ConfigError(f"{where}: unknown option {sorted(unknown)[0]!r}; options are {', '.join(OPTIONS)}")
    return "pinyin" in opts, "initials" in opts


def detect_format(path: Path, text: str | None = None) -> Format:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "tsv"
    if text is not None and any("\t" in line for _, line in _lines(text)):
        return "tsv"
    return "text"


class _Builder:
    def __init__(self, spec: ListSpec) -> None:
        self.spec = spec
        self.entries: list[LexiconEntry] = []

    def add(self, word: str, risks: tuple[str, ...], line: int, pinyin: bool, initials: bool) -> None:
        word = _CONTROL.sub("", word).strip()
        if word:
            self.entries.append(
                LexiconEntry(
                    word,
                    risks,
                    len(self.entries),
                    line,
                    pinyin or self.spec.pinyin,
                    initials or self.spec.initials,
                )
            )

    def done(self) -> WordList:
        return WordList(self.spec.name, str(self.spec.path), tuple(self.entries))


def _load_text(spec: ListSpec, text: str) -> WordList:
    if spec.risk is None:
        raise ConfigError(
            f"{spec.path}: a plain word list needs a risk: set `risk:` for the file"
            f" (or `{spec.path}:A1h` on the command line), or write `word<TAB>risk` lines"
        )
    b = _Builder(spec)
    for no, line in _lines(text):
        b.add(line, (spec.risk,), no, False, False)
    return b.done()


def _load_tsv(spec: ListSpec, text: str) -> WordList:
    b = _Builder(spec)
    for no, line in _lines(text):
        where = f"{spec.path}:{no}"
        fields = line.split("\t")
        if len(fields) > 3:
            raise ConfigError(f"{where}: expected word<TAB>risk[<TAB>options], got {len(fields)} columns")
        word = fields[0]
        risk_cell = fields[1].strip() if len(fields) > 1 else ""
        if risk_cell:
            risks = resolve_risk(risk_cell, spec, where)
        elif spec.risk is not None:
            risks = (spec.risk,)
        else:
            raise ConfigError(f"{where}: no risk for {word.strip()!r}; write word<TAB>risk")
        pinyin, initials = _parse_options(fields[2], where) if len(fields) > 2 else (False, False)
        b.add(word, risks, no, pinyin, initials)
    return b.done()


def _load_tags(spec: ListSpec, text: str) -> WordList:
    b = _Builder(spec)
    for no, line in _lines(text):
        where = f"{spec.path}:{no}"
        word, sep, tags = line.strip().rpartition(" ")
        if not sep or not word.strip():
            raise ConfigError(f"{where}: expected `word tag[,tag]`")
        b.add(word, resolve_risk(tags, spec, where), no, False, False)
    return b.done()


def _header_index(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name.lower() in lowered:
            return lowered.index(name.lower())
    return None


def _load_rows(spec: ListSpec, rows: Iterable[list[str]]) -> WordList:
    it = iter(rows)
    header: list[str] | None = None
    header_row = 0
    for header_row, row in enumerate(it, start=1):  # noqa: B007 - the row number is used below
        if any(cell.strip() for cell in row):
            header = row
            break
    if header is None:
        raise ConfigError(f"{spec.path}: empty spreadsheet (expected a header row 关键词, 一级分类, 二级分类)")
    kw = _header_index(header, KEYWORD_HEADERS)
    cat = _header_index(header, CATEGORY_HEADERS)
    sub = _header_index(header, SUBCATEGORY_HEADERS)
    opt = _header_index(header, OPTION_HEADERS)
    if kw is None:
        raise ConfigError(f"{spec.path}:{header_row}: no 关键词 column in the header row")
    if cat is None and sub is None and spec.risk is None:
        raise ConfigError(f"{spec.path}:{header_row}: no 一级分类/二级分类 column and no risk for the file")
    b = _Builder(spec)
    for no, row in enumerate(it, start=header_row + 1):
        where = f"{spec.path}:{no}"

        def cell(i: int | None, row: list[str] = row) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""

        word = cell(kw)
        if not word:
            continue
        risks: tuple[str, ...] | None = None
        for value in (cell(sub), cell(cat)):
            if not value:
                continue
            mapped = spec.category_map.get(value) or known_code(value) or _RISK_BY_NAME.get(value)
            if mapped:
                risks = (mapped,)
                break
        if risks is None:
            fallback = spec.default_risk or spec.risk
            if fallback is None:
                shown = cell(sub) or cell(cat) or "(empty)"
                raise ConfigError(
                    f"{where}: category {shown!r} of {word!r} maps to no risk; add it to category_map"
                    " or set default_risk"
                )
            risks = (fallback,)
        pinyin, initials = _parse_options(cell(opt), where) if cell(opt) else (False, False)
        b.add(word, risks, no, pinyin, initials)
    return b.done()


def _load_csv(spec: ListSpec, text: str) -> WordList:
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ConfigError(f"{spec.path}: not valid CSV ({exc})") from None
    return _load_rows(spec, rows)


def _load_xlsx(spec: ListSpec) -> WordList:
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    if not spec.path.exists():
        raise ConfigError(f"{spec.path}: no such lexicon file")
    try:
        wb = load_workbook(spec.path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ConfigError(f"{spec.path}: not a readable XLSX workbook ({exc.__class__.__name__})") from None
    try:
        ws = wb.worksheets[0]
        rows = [["" if v is None else str(v) for v in row] for row in ws.iter_rows(values_only=True)]
    except Exception as exc:  # a damaged workbook can fail in many ways inside openpyxl
        raise ConfigError(f"{spec.path}: not a readable XLSX workbook ({exc.__class__.__name__})") from None
    finally:
        wb.close()
    return _load_rows(spec, rows)


def load_list(spec: ListSpec) -> WordList:
    """Read one lexicon file as ``spec`` says."""
    fmt = spec.format
    if fmt == "xlsx" or (fmt == "auto" and detect_format(spec.path) == "xlsx"):
        return _load_xlsx(spec)
    text = _read_text(spec.path)
    if fmt == "auto":
        fmt = detect_format(spec.path, text)
    if fmt == "text":
        return _load_text(spec, text)
    if fmt == "tsv":
        return _load_tsv(spec, text)
    if fmt == "tags":
        return _load_tags(spec, text)
    if fmt == "csv":
        return _load_csv(spec, text)
    raise ConfigError(f"{spec.path}: unknown lexicon format {fmt!r}; one of {', '.join(FORMATS)}")


def load_allow(path: Path) -> list[str]:
    """An allow-list file: one phrase a line (``#`` comments; a TSV's first column)."""
    return [line.split("\t")[0].strip() for _, line in _lines(_read_text(path)) if line.split("\t")[0].strip()]


def spec_from_argument(arg: str) -> ListSpec:
    """``PATH`` or ``PATH:RISK`` (the CLI ``--lexicon`` syntax). A plain word list needs ``:RISK``."""
    path_part, sep, risk_part = arg.rpartition(":")
    if sep and path_part and (code := known_code(risk_part)) is not None:
        path = Path(path_part)
        return ListSpec(path=path, name=path.stem, risk=code)
    path = Path(arg)
    return ListSpec(path=path, name=path.stem)


# ----------------------------------------------------------------------------- export

EXPORT_HEADER = ("关键词", "一级分类", "二级分类")


def export_rows(lists: Iterable[WordList]) -> list[tuple[str, str, str]]:
    """One row per (keyword, risk), deduplicated, in list order: 关键词, 一级分类 (category name),
    二级分类 (risk name), as the filing form's 拦截关键词列表 asks."""
    seen: set[tuple[str, str]] = set()
    rows: list[tuple[str, str, str]] = []
    for wl in lists:
        for e in wl.entries:
            for code in e.risks:
                if (e.word, code) in seen:
                    continue
                seen.add((e.word, code))
                risk = taxonomy.get(code)
                rows.append((e.word, taxonomy.CATEGORY_NAMES[risk.category][0], risk.name_zh))
    return rows


def make_readable(path: Path) -> None:
    """Give a ``mkstemp`` file (mode 0600) the permissions a plain ``open()`` would have."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_export(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """Write ``rows`` as XLSX (``.xlsx``) or CSV (anything else), atomically (temp file + rename)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ConfigError(f"{path}: folder {directory} does not exist")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror})") from None
    tmp = Path(tmp_name)
    try:
        if path.suffix.lower() == ".xlsx":
            os.close(fd)
            from openpyxl import Workbook

            wb = Workbook(write_only=True)
            ws = wb.create_sheet("拦截关键词列表")
            ws.append(list(EXPORT_HEADER))
            for row in rows:
                ws.append(list(row))
            wb.save(tmp)
        else:
            with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(EXPORT_HEADER)
                w.writerows(rows)
        make_readable(tmp)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
