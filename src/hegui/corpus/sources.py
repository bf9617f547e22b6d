"""The source registry: where each training-data source came from, and what the standard needs of it.

A registry is YAML (a list of sources, or ``sources:`` holding one) or CSV (one row a source, for
bulk registries kept in a spreadsheet). :func:`check_sources` names, for each source, what TC260-003
§5.1 requires and the source lacks (licence for open-source data, collection records and robots.txt
for self-collected data, contract and vendor evidence for commercial data, an authorisation record
for user input, a legal basis for personal information and separate consent for sensitive
personal information), plus the mixing rule as warnings. :func:`plan_shards` expands the sources'
locations into the shards the engines scan.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fsspec
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from hegui.corpus.shards import Compression, Format, Shard
from hegui.errors import ConfigError, UserError
from hegui.yamlsource import LocatedYaml, format_validation_error, load_yaml

SourceType = Literal["open_source", "self_collected", "commercial", "user_input"]
PIBasis = Literal["consent", "other_legal_basis", "none_present"]
Origin = Literal["domestic", "overseas"]

# Parts of big uncompressed JSONL/CSV files and groups of Parquet row groups: large enough that the
# per-shard overhead (a result file, a task) is small, small enough that two cores share one file.
DEFAULT_PART_BYTES = 256 * 1024 * 1024
# Smallest part worth splitting a file into, when splitting to keep every worker busy.
MIN_PART_BYTES = 4 * 1024 * 1024
# Text files (one record each) grouped into one shard.
TEXT_FILES_PER_SHARD = 2000
# Sources per language (and per modality) below which the mixing rule warns: "several sources".
MIN_SOURCES_PER_LANGUAGE = 2

COMPRESSION_SUFFIXES: dict[str, Compression] = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
FORMAT_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv",
    ".txt": "text", ".text": "text",
}
LIST_FIELDS = ("languages", "modalities", "locations")
BOOL_FIELDS = ("robots_txt_respected", "separate_consent_for_sensitive", "split")
TRUE_WORDS = {"true", "yes", "y", "1", "是", "true."}
FALSE_WORDS = {"false", "no", "n", "0", "否"}


class Source(BaseModel):
    """One training-data source and its provenance (TC260-003 §5.1)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    type: SourceType
    description: str | None = None
    licence: str | None = None
    """Open-source data: the licence (SPDX id or name)."""
    licence_evidence: str | None = None
    """URL or file of the licence text or the page that grants it."""
    collection_method: str | None = None
    """Self-collected data: how it was collected (the collection records)."""
    collection_records: str | None = None
    """URL or file of the collection records (crawl logs, dates, seeds)."""
    robots_txt_respected: bool | None = None
    """Self-collected (crawled) data must have respected robots.txt."""
    contract_ref: str | None = None
    """Commercial data: the purchase contract's reference."""
    vendor_evidence: str | None = None
    """URL or file of the vendor's evidence of the data's source, quality and safety."""
    authorisation_record: str | None = None
    """User input: URL or file of the users' authorisation record (the agreement clause and consents)."""
    pi_basis: PIBasis | None = None
    """Legal basis for personal information in the data: consent, another legal basis, or none present."""
    separate_consent_for_sensitive: bool | None = None
    """Sensitive personal information needs separate consent (单独同意)."""
    ip_owner: str | None = None
    """Who answers for the data's intellectual property."""
    origin: Origin | None = None
    """Domestic or overseas, for the mixing rule's balance."""
    languages: list[str] = Field(default_factory=list)
    modalities: list[str] = Field(default_factory=lambda: ["text"])
    locations: list[str] = Field(min_length=1)
    """Local paths, globs, folders or fsspec URLs (``s3://bucket/corpus/*.jsonl.zst``)."""
    format: Format | None = None
    """``jsonl``, ``parquet``, ``csv`` or ``text``; unset: from each file's suffix."""
    compression: Compression | None = None
    """``none``, ``gzip`` or ``zstd``; unset: from each file's suffix (``.gz``, ``.zst``)."""
    text_field: str = "text"
    """The text's field: a JSON key (dotted for nested objects, ``meta.content``), a CSV or Parquet column."""
    split: bool = True
    """Split big files into parts. Set ``false`` for CSV files with line breaks inside quoted fields."""

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _where: str = PrivateAttr(default="")

    @field_validator("locations", "languages", "modalities", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def where(self) -> str:
        """``file:line`` of this source in its registry."""
        return self._where

    def resolve(self, location: str) -> str:
        """A location as fsspec sees it: URLs as they are, relative paths against the registry's folder."""
        if "://" in location:
            return location
        p = Path(location).expanduser()
        return str(p if p.is_absolute() else self._base_dir / p)


class SourceRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[Source]


@dataclass(frozen=True)
class Problem:
    source: str
    message: str
    severity: Literal["error", "warning"] = "error"
    where: str = ""

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}{self.severity}: {self.message}"


# -- loading --------------------------------------------------------------------------------------

def load_sources(path: str | Path) -> list[Source]:
    """Load a registry (``.yaml``/``.yml`` or ``.csv``); errors name file:line and field."""
    p = Path(path)
    sources = _load_csv(p) if p.suffix.lower() == ".csv" else _load_yaml(p)
    seen: dict[str, str] = {}
    for s in sources:
        if s.name in seen:
            raise ConfigError(f"{s.where}: name: source `{s.name}` is already defined at {seen[s.name]}")
        seen[s.name] = s.where
        s._base_dir = p.resolve().parent
    if not sources:
        raise ConfigError(f"{p}: no sources")
    return sources


def _load_yaml(p: Path) -> list[Source]:
    located = load_yaml(p)
    data = located.data
    if isinstance(data, list):
        # A bare list: validate it as `sources:` with the line map moved under that key.
        located = LocatedYaml(located.source, {"sources": data},
                              {("sources", *k): v for k, v in located.lines.items()})
    elif not isinstance(data, dict) or "sources" not in data:
        raise ConfigError(f"{p}:1: a source registry is a list of sources (or `sources:` holding one)")
    try:
        reg = SourceRegistry.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, located)) from None
    for i, s in enumerate(reg.sources):
        s._where = located.where(("sources", i))
    return reg.sources


def _cell(name: str, raw: str) -> Any:
    value = raw.strip()
    if not value:
        return None
    if name in LIST_FIELDS:
        return [v.strip() for v in value.replace("|", ";").split(";") if v.strip()]
    if name in BOOL_FIELDS:
        word = value.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(f"{value!r} is not true or false")
    return value


def _load_csv(p: Path) -> list[Source]:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read ({exc})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    known = set(Source.model_fields)
    unknown = [c for c in reader.fieldnames or [] if c and c.strip() not in known]
    if unknown:
        raise ConfigError(f"{p}:1: unknown column {unknown[0]!r}")
    out: list[Source] = []
    for row in reader:
        where = f"{p}:{reader.line_num}"
        values: dict[str, Any] = {}
        for col, raw in row.items():
            if col is None:
                raise ConfigError(f"{where}: more cells than columns")
            try:
                v = _cell(col.strip(), raw or "")
            except ValueError as exc:
                raise ConfigError(f"{where}: {col.strip()}: {exc}") from None
            if v is not None:
                values[col.strip()] = v
        if not values:
            continue
        try:
            s = Source.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "(row)"
            raise ConfigError(f"{where}: {field}: {err['msg']}") from None
        s._where = where
        out.append(s)
    return out


# -- checking -------------------------------------------------------------------------------------

def _is_url(value: str) -> bool:
    return "://" in value


def _evidence_problem(s: Source, field: str, value: str | None, what: str) -> Problem | None:
    if not value:
        return Problem(s.name, f"src `{s.name}`: {what} needs {field} (a URL or a file)", where=s.where)
    if not _is_url(value) and not Path(s.resolve(value)).exists():
        return Problem(s.name, f"src `{s.name}`: {field} file {value} does not exist", where=s.where)
    return None


def check_sources(sources: Sequence[Source]) -> list[Problem]:
    """What TC260-003 §5.1 requires and each source lacks (errors), and the mixing rule (warnings)."""
    problems: list[Problem] = []

    def add(p: Problem | None) -> None:
        if p is not None:
            problems.append(p)

    for s in sources:
        n = s.name
        if s.type == "open_source":
            if not s.licence:
                add(Problem(n, f"src `{n}`: open-source data needs licence", where=s.where))
            add(_evidence_problem(s, "licence_evidence", s.licence_evidence, "open-source data"))
        elif s.type == "self_collected":
            if not s.collection_method:
                add(Problem(n, f"src `{n}`: self-collected data needs collection_method (its collection records)",
                            where=s.where))
            if s.collection_records:
                add(_evidence_problem(s, "collection_records", s.collection_records, "self-collected data"))
            if s.robots_txt_respected is not True:
                add(Problem(n, f"src `{n}`: self-collected data needs robots_txt_respected: true", where=s.where))
        elif s.type == "commercial":
            if not s.contract_ref:
                add(Problem(n, f"src `{n}`: commercial data needs contract_ref (the purchase contract)",
                            where=s.where))
            add(_evidence_problem(s, "vendor_evidence", s.vendor_evidence,
                                  "commercial data (the vendor's evidence of source, quality and safety)"))
        elif s.type == "user_input":
            add(_evidence_problem(s, "authorisation_record", s.authorisation_record, "user input"))
        if s.pi_basis is None:
            add(Problem(n, f"src `{n}`: pi_basis is missing (consent, other_legal_basis or none_present)",
                        where=s.where))
        elif s.pi_basis != "none_present" and s.separate_consent_for_sensitive is not True:
            add(Problem(n, f"src `{n}`: sensitive personal information needs separate consent: set "
                           "separate_consent_for_sensitive: true (or pi_basis: none_present)", where=s.where))
        if not s.languages:
            add(Problem(n, f"src `{n}`: languages is missing (the mixing rule counts sources per language)",
                        "warning", s.where))
    problems.extend(_mixing(sources))
    return problems


def _mixing(sources: Sequence[Source]) -> list[Problem]:
    """The mixing rule: several sources per language and per modality; domestic and overseas balanced."""
    out: list[Problem] = []
    for attr, what in (("languages", "language"), ("modalities", "modality")):
        users: dict[str, list[str]] = defaultdict(list)
        for s in sources:
            for v in getattr(s, attr):
                users[v].append(s.name)
        for v, names in sorted(users.items()):
            if len(names) < MIN_SOURCES_PER_LANGUAGE:
                out.append(Problem(names[0], f"{what} `{v}` has {len(names)} source ({', '.join(names)}); the "
                                              f"standard asks for several sources per {what}", "warning"))
    by_lang: dict[str, dict[str, int]] = defaultdict(lambda: {"domestic": 0, "overseas": 0})
    for s in sources:
        if s.origin is None:
            continue
        for lang in s.languages or ["(any)"]:
            by_lang[lang][s.origin] += 1
    for lang, counts in sorted(by_lang.items()):
        if counts["domestic"] == 0 or counts["overseas"] == 0:
            missing = "domestic" if counts["domestic"] == 0 else "overseas"
            out.append(Problem("", f"language `{lang}`: no {missing} source ({counts['domestic']} domestic, "
                                   f"{counts['overseas']} overseas); the standard asks to balance overseas "
                                   "sources with domestic ones", "warning"))
    return out


# -- planning -------------------------------------------------------------------------------------

def infer_format(path: str) -> tuple[Format | None, Compression]:
    """Format and compression from a file name (``a.jsonl.zst`` → jsonl, zstd)."""
    name = path.rsplit("/", 1)[-1].lower()
    compression: Compression = "none"
    for suffix, comp in COMPRESSION_SUFFIXES.items():
        if name.endswith(suffix):
            compression = comp
            name = name[: -len(suffix)]
            break
    for suffix, fmt in FORMAT_SUFFIXES.items():
        if name.endswith(suffix):
            return fmt, compression
    return None, compression


_MAGIC = set("*?[")


def _expand(source: Source, location: str) -> list[tuple[Any, str, str]]:
    """``(fs, path, name)`` of every file a location names; ``name`` is the path relative to the
    location's root, which record keys use, so keys survive moving the corpus."""
    url = source.resolve(location)
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ValueError, ImportError) as exc:
        raise UserError(f"{source.where}: src `{source.name}`: location {location}: {exc}") from None
    if any(c in root for c in _MAGIC):
        base = root[: min(root.index(c) for c in _MAGIC if c in root)].rsplit("/", 1)[0]
        paths = sorted(p for p in fs.glob(root) if not fs.isdir(p))
    elif fs.isdir(root):
        base = root.rstrip("/")
        paths = sorted(p for p in fs.find(root) if infer_format(p)[0] is not None)
    elif fs.exists(root):
        base = root.rsplit("/", 1)[0]
        paths = [root]
    else:
        raise UserError(f"{source.where}: src `{source.name}`: location {location} does not exist")
    out = []
    for p in paths:
        name = p[len(base):].lstrip("/") if base and p.startswith(base) else p.rsplit("/", 1)[-1]
        out.append((fs, p, name))
    return out


def _url(fs: Any, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


@dataclass
class _File:
    source: Source
    url: str
    name: str
    size: int
    format: Format
    compression: Compression
    fs: Any
    path: str


def _files(sources: Iterable[Source]) -> list[_File]:
    out: list[_File] = []
    for s in sources:
        found = False
        for loc in s.locations:
            for fs, path, name in _expand(s, loc):
                fmt, comp = infer_format(path)
                fmt = s.format or fmt
                if fmt is None:
                    raise UserError(f"{s.where}: src `{s.name}`: cannot tell the format of {path} from its "
                                    "suffix; set format")
                if s.compression is not None:
                    comp = s.compression
                size = int(fs.size(path) or 0)
                out.append(_File(s, _url(fs, path), name, size, fmt, comp, fs, path))
                found = True
        if not found:
            raise UserError(f"{s.where}: src `{s.name}`: its locations match no files")
    return out


def plan_shards(sources: Sequence[Source], part_bytes: int = DEFAULT_PART_BYTES,
                min_shards: int = 0) -> list[Shard]:
    """The shards to scan: one a file; big uncompressed JSONL/CSV files split into byte ranges
    (aligned to line starts by the reader), Parquet files into groups of row groups, ``.txt`` files
    grouped. With ``min_shards`` (say, twice the workers) parts shrink, down to 4 MiB, until there
    are that many, so a corpus of one big file still keeps every core busy."""
    files = _files(sources)
    total = sum(f.size for f in files)
    if min_shards and total:
        part_bytes = max(MIN_PART_BYTES, min(part_bytes, math.ceil(total / min_shards)))
    shards: list[Shard] = []
    texts: dict[tuple[str, str, Compression], list[_File]] = defaultdict(list)
    for f in files:
        s = f.source
        common: dict[str, Any] = {"source": s.name, "format": f.format, "compression": f.compression,
                                  "text_field": s.text_field}
        if f.format == "text":
            folder = f.name.rsplit("/", 1)[0] if "/" in f.name else ""
            texts[(s.name, folder, f.compression)].append(f)
        elif f.format == "parquet":
            for part, (start, stop) in enumerate(ranges := _row_group_ranges(f, part_bytes) if s.split else [(0, None)]):
                shards.append(Shard(shard_id=_shard_id(s.name, f.name, part, len(ranges)), url=f.url,
                                    name=f.name, part=part, parts=len(ranges), start=start, stop=stop, **common))
        elif s.split and f.compression == "none" and f.size > part_bytes:
            parts = math.ceil(f.size / part_bytes)
            bounds = [f.size * i // parts for i in range(parts + 1)]
            for part in range(parts):
                shards.append(Shard(shard_id=_shard_id(s.name, f.name, part, parts), url=f.url, name=f.name,
                                    part=part, parts=parts, start=bounds[part], stop=bounds[part + 1], **common))
        else:
            shards.append(Shard(shard_id=_shard_id(s.name, f.name, 0, 1), url=f.url, name=f.name, **common))
    for (src, folder, comp), group in texts.items():
        chunks: list[list[_File]] = [[]]
        size = 0
        for f in group:
            if chunks[-1] and (len(chunks[-1]) >= TEXT_FILES_PER_SHARD or size + f.size > part_bytes):
                chunks.append([])
                size = 0
            chunks[-1].append(f)
            size += f.size
        for part, chunk in enumerate(chunks):
            first = chunk[0]
            shards.append(Shard(
                shard_id=_shard_id(src, folder or ".", part, len(chunks)), source=src,
                url=first.url.rsplit("/", 1)[0], name=folder or ".", format="text", compression=comp,
                text_field=first.source.text_field, part=part, parts=len(chunks),
                members=tuple(f.url for f in chunk), member_names=tuple(f.name for f in chunk),
            ))
    return shards


def _row_group_ranges(f: _File, part_bytes: int) -> list[tuple[int, int | None]]:
    import pyarrow.parquet as pq

    try:
        with f.fs.open(f.path, "rb") as fh:
            md = pq.ParquetFile(fh).metadata
    except Exception as exc:
        raise UserError(f"{f.url}: not a readable Parquet file ({exc})") from None
    sizes = [md.row_group(i).total_byte_size for i in range(md.num_row_groups)]
    if len(sizes) <= 1:
        return [(0, None)]
    ranges: list[tuple[int, int | None]] = []
    start, acc = 0, 0
    for i, size in enumerate(sizes):
        if acc and acc + size > part_bytes:
            ranges.append((start, i))
            start, acc = i, 0
        acc += size
    ranges.append((start, len(sizes)))
    return ranges if len(ranges) > 1 else [(0, None)]


def _shard_id(source: str, name: str, part: int, parts: int) -> str:
    return f"{source}:{name}" if parts == 1 else f"{source}:{name}#{part + 1}of{parts}"
