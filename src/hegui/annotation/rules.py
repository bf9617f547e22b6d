"""Versioned annotation rules, functional and safety kept apart (GB/T 45654 §5.3).

A rules file is YAML, or Markdown with YAML front matter:

- YAML: ``name``, optional ``kind`` and ``version`` (must agree with the command's), and for safety
  rules ``risks:``, a map from risk code (``A1a`` … ``A5b``) to its criterion (text, or a list of
  lines); any other keys are kept in the text as written.
- Markdown: front matter with the same keys; in the body, a heading that starts with a risk code
  (``### A1a 煽动颠覆国家政权…``) opens that risk's section, and the text under it, up to the next
  heading, is its criterion.

Safety rules must give a criterion for every one of the 31 risks; publishing ones that miss some is
refused, naming the missing codes, unless ``allow_incomplete`` (then recorded as incomplete).
The stored record keeps the text as published (decoded from UTF-8) and its SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from hegui import taxonomy
from hegui.annotation.models import AnnotationRuleSet
from hegui.annotation.summary import RuleKind
from hegui.errors import UserError
from hegui.ledger.events import append_event
from hegui.ledger.models import Base, utcnow

if TYPE_CHECKING:
    from hegui.ledger.store import Ledger

KINDS: tuple[RuleKind, ...] = ("functional", "safety")
ALL_RISKS: tuple[str, ...] = tuple(r.code for r in taxonomy.CONTENT_RISKS)
STARTER_DIR = Path(__file__).resolve().parents[1] / "data" / "annotation"
STARTER_FILES = ("safety-rules.md", "functional-rules.md")

_rules = Base.metadata.tables[AnnotationRuleSet.__tablename__]
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_CODE_AT_START = re.compile(r"^\**\s*(A\.?\d\.?[a-z])\b", re.I)


class RulesError(UserError):
    pass


@dataclass(frozen=True)
class ParsedRules:
    name: str
    kind: str | None
    version: str | None
    criteria: dict[str, str] = field(default_factory=dict)
    """Risk code → its criterion (safety rules)."""


@dataclass(frozen=True)
class RuleSetRow:
    kind: str
    version: str
    name: str
    sha256: str
    risks_covered: list[str]
    missing_risks: list[str]
    complete: bool
    publisher: str
    published_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "name": self.name, "sha256": self.sha256,
                "risks_covered": self.risks_covered, "missing_risks": self.missing_risks,
                "complete": self.complete, "publisher": self.publisher,
                "published_at": self.published_at.isoformat()}


def _criterion(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return "\n".join(str(v).strip() for v in value if str(v).strip())
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items() if str(v).strip())
    return "" if value is None else str(value).strip()


def _meta(data: Any, source: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RulesError(f"{source}: the front matter must be a YAML mapping (name, kind, version…)")
    return data


def _load_yaml(text: str, source: str, line_offset: int = 0) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1 + line_offset}" if mark is not None else ""
        raise RulesError(f"{source}{line}: invalid YAML: {exc.problem or exc}") from None


def _risk_code(raw: str) -> str | None:
    code = taxonomy.normalize_code(raw)
    return code if code in ALL_RISKS else None


def parse_rules(text: str, source: str) -> ParsedRules:
    """Read a rules file (YAML, or Markdown with front matter) without storing anything."""
    front = _FRONT.match(text)
    criteria: dict[str, str] = {}
    if front is not None or source.lower().endswith((".md", ".markdown")):
        meta = _meta(_load_yaml(front.group(1), source, 1) if front else None, source)
        body = text[front.end():] if front else text
        current: str | None = None
        lines: list[str] = []

        def close() -> None:
            if current is not None:
                joined = "\n".join(lines).strip()
                if joined:
                    criteria[current] = (criteria.get(current, "") + "\n" + joined).strip()

        for line in body.splitlines():
            heading = _HEADING.match(line)
            if heading:
                close()
                lines = []
                m = _CODE_AT_START.match(heading.group(2))
                current = _risk_code(m.group(1)) if m else None
            elif current is not None:
                lines.append(line)
        close()
        if isinstance(meta.get("risks"), dict):
            criteria.update(_yaml_risks(meta["risks"], source))
    else:
        data = _meta(_load_yaml(text, source), source)
        meta = data
        if "risks" in data:
            if not isinstance(data["risks"], dict):
                raise RulesError(f"{source}: `risks` must map each risk code to its criterion")
            criteria = _yaml_risks(data["risks"], source)
    name = str(meta.get("name") or Path(source).stem)
    kind = meta.get("kind")
    version = meta.get("version")
    return ParsedRules(name, None if kind is None else str(kind), None if version is None else str(version),
                       criteria)


def _yaml_risks(risks: dict[Any, Any], source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in risks.items():
        code = _risk_code(str(key))
        if code is None:
            raise RulesError(f"{source}: risks: {key!r} is not one of the 31 risk codes (A1a … A5b)")
        crit = _criterion(value)
        if crit:
            out[code] = crit
    return out


def _row(r: Any) -> RuleSetRow:
    return RuleSetRow(r.kind, r.version, r.name, r.sha256, list(r.risks_covered), list(r.missing_risks),
                      bool(r.complete), r.publisher, r.published_at)


def publish_rules(ledger: Ledger, path: Path, *, kind: str, version: str, publisher: str,
                  allow_incomplete: bool = False, now: datetime | None = None) -> RuleSetRow:
    """Publish the rules in ``path`` as ``kind`` rules, version ``version``."""
    if kind not in KINDS:
        raise RulesError(f"--kind {kind!r}: one of {', '.join(KINDS)}")
    if not version.strip() or len(version) > 64:
        raise RulesError(f"--version {version!r}: 1–64 characters")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RulesError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RulesError(f"{path}: not UTF-8 text") from None
    parsed = parse_rules(text, str(path))
    if parsed.kind is not None and parsed.kind != kind:
        raise RulesError(f"{path}: the file says kind {parsed.kind!r}, the command --kind {kind!r}")
    if parsed.version is not None and parsed.version != version:
        raise RulesError(f"{path}: the file says version {parsed.version!r}, the command --version {version!r}")
    covered = [c for c in ALL_RISKS if c in parsed.criteria] if kind == "safety" else []
    missing = [c for c in ALL_RISKS if c not in parsed.criteria] if kind == "safety" else []
    if missing and not allow_incomplete:
        raise RulesError(f"{path}: safety rules miss {len(missing)} of the 31 risks: {', '.join(missing)} "
                         "(give each a criterion, or publish with --allow-incomplete)")
    # the digest of the text as stored (UTF-8, no byte-order mark), so that hashing what
    # rules_text() returns gives it back; for a file without a BOM it is the file's own SHA-256
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    at = now or utcnow()

    def change(conn: Connection) -> RuleSetRow:
        try:
            conn.execute(sa.insert(_rules).values(
                kind=kind, version=version, name=parsed.name[:200], sha256=digest, text=text,
                risks_covered=covered, missing_risks=missing, complete=not missing, publisher=publisher,
                published_at=at))
        except IntegrityError:
            raise RulesError(f"{kind} rules version {version!r} are already published; "
                             "publish the change under a new --version") from None
        append_event(conn, "annotation.rules_published", None, publisher,
                     {"kind": kind, "version": version, "sha256": digest, "complete": not missing,
                      "missing_risks": missing}, created_at=at)
        return RuleSetRow(kind, version, parsed.name[:200], digest, covered, missing, not missing, publisher, at)

    return ledger.transaction(change, "publish annotation rules")


def list_rules(ledger: Ledger) -> list[RuleSetRow]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(_rules).order_by(_rules.c.kind, _rules.c.published_at, _rules.c.id)).all()
    return [_row(r) for r in rows]


def rules_text(ledger: Ledger, kind: str, version: str) -> str:
    """The text of published rules exactly as published (for the filing package)."""
    with ledger.engine.connect() as conn:
        found = conn.execute(sa.select(_rules.c.text).where(_rules.c.kind == kind, _rules.c.version == version)
                             ).scalar_one_or_none()
    if found is None:
        raise RulesError(f"no {kind} rules version {version!r} published")
    return str(found)


def get_rules(conn: Connection, kind: str, version: str) -> RuleSetRow | None:
    r = conn.execute(sa.select(_rules).where(_rules.c.kind == kind, _rules.c.version == version)).one_or_none()
    return None if r is None else _row(r)
