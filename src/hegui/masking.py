"""Masking: replace the spans that detectors found with a type tag, a partial value, a salted hash,
or a reversible token kept in a :class:`TokenVault`.

Masking works on the *original* text and on :class:`~hegui.detectors.base.Finding` spans, which
already point into it. Overlapping findings (a lexicon hit inside a phone number, two PII kinds on the
same digits) are merged first, so every character is replaced at most once.

Values are canonicalised before hashing or tokenising (:func:`canonical_value`): ``138 0013 8000``,
``+86 13800138000`` and ``１３８００１３８０００`` are the same phone number and get the same hash and
the same token. The hash of a PII value equals the 8 hex chars in the PII detector's evidence id, so a
masked ledger excerpt can be joined to its findings without ever storing the value.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from hegui.detectors.base import Finding

Operator = Literal["redact", "partial", "hash", "token", "keep"]
OPERATORS: tuple[str, ...] = get_args(Operator)

DEFAULT_TAGS: dict[str, str] = {
    "CN_RESIDENT_ID": "身份证号",
    "CN_MOBILE": "手机号",
    "CN_LANDLINE": "电话号码",
    "BANK_CARD": "银行卡号",
    "CN_USCC": "统一社会信用代码",
    "EMAIL": "邮箱",
    "PASSPORT": "护照号",
    "HK_MO_PERMIT": "港澳通行证号",
    "TW_PERMIT": "台湾通行证号",
    "CN_PLATE": "车牌号",
    "IP_ADDRESS": "IP地址",
    "ADDRESS": "地址",
    "PERSON_NAME": "姓名",
}
"""Redaction tags by kind; other kinds (lexicon hits) fall back to :data:`FALLBACK_TAG`."""
FALLBACK_TAG = "已屏蔽"

DEFAULT_PARTIAL: dict[str, tuple[int, int]] = {
    "CN_RESIDENT_ID": (6, 4),
    "CN_MOBILE": (3, 4),
    "CN_LANDLINE": (4, 4),
    "BANK_CARD": (4, 4),
    "CN_USCC": (6, 4),
    "PASSPORT": (1, 3),
    "HK_MO_PERMIT": (1, 3),
    "TW_PERMIT": (1, 3),
    "CN_PLATE": (2, 1),
    "ADDRESS": (6, 0),
    "PERSON_NAME": (1, 1),
}
"""``partial``: significant characters (not separators or other formatting) kept at the start and the end."""
MASK_CHAR = "*"

TOKEN_RE = re.compile(r"⟦PI_[0-9a-f]{8,16}⟧")

DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
"""Dashes that separate the groups of a number like ``-`` does (``138–0013–8000``, ``0755 — 8888 6666``):
hyphen, non-breaking hyphen, figure dash, en dash, em dash, horizontal bar, minus sign. NFKC already
folds ``－`` and ``﹣`` to ``-``. The PII detector reads them as ``-`` between two digits."""

GROUP_SEPARATORS = " .-" + DASHES
"""The separators between the groups of a number (after NFKC, which makes full-width and no-break
spaces a space, ``．`` a dot and ``－`` a hyphen)."""

SEPARATORS_BY_KIND: dict[str, str] = {
    "CN_RESIDENT_ID": GROUP_SEPARATORS,
    "CN_MOBILE": GROUP_SEPARATORS + "+()",  # and the +86 / (+86) / (010) around country and area codes
    "CN_LANDLINE": GROUP_SEPARATORS + "+()",
    "BANK_CARD": GROUP_SEPARATORS,
    "CN_USCC": GROUP_SEPARATORS,
    "PASSPORT": GROUP_SEPARATORS,
    "HK_MO_PERMIT": GROUP_SEPARATORS,
    "TW_PERMIT": GROUP_SEPARATORS + "()",  # 台胞证 1234567890(B)
    "CN_PLATE": " .-·•・",  # after the city letter: 京A·12345, 京A-12345
}
"""What :func:`canonical_value` removes from a value of each kind: exactly the formatting its
recognizer accepts (``tests/test_masking.py`` checks this against the detector)."""

_OTHER_SEPARATORS = re.compile(r"[\s\-·•・()（）]")
"""Formatting characters that ``partial`` keeps in values of other kinds (``穆罕默德·阿里``)."""
_STRIP_BY_KIND = {kind: str.maketrans("", "", chars) for kind, chars in SEPARATORS_BY_KIND.items()}
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Mn", "Me"})
"""Characters the text normaliser deletes before any detector sees them (zero-width spaces, soft
hyphens, combining marks): never part of a value."""
_NUMERIC_KINDS = frozenset(
    {
        "CN_RESIDENT_ID",
        "CN_MOBILE",
        "CN_LANDLINE",
        "BANK_CARD",
        "PASSPORT",
        "HK_MO_PERMIT",
        "TW_PERMIT",
        "IP_ADDRESS",
    }
)


CHINESE_DIGITS = str.maketrans("零〇一二三四五六七八九幺两壹贰叁肆伍陆柒捌玖", "0012345678912123456789")
"""Chinese numerals as digits, one character for one (``一三八…`` is how ads write phone numbers)."""


def canonical_value(kind: str, value: str) -> str:
    """The form of ``value`` that hashes and tokens are computed over (formatting removed).

    A value of an identifier kind loses exactly the separators its recognizer accepts
    (:data:`SEPARATORS_BY_KIND`): ``138.0013.8000``, ``138–0013–8000`` and ``+86 13800138000`` are
    ``13800138000``; ``1101/0519…`` keeps its ``/``, which no recognizer reads as a separator."""
    v = unicodedata.normalize("NFKC", value).strip()
    if not v.isascii():
        v = "".join(c for c in v if unicodedata.category(c) not in _INVISIBLE_CATEGORIES)
    if kind in _NUMERIC_KINDS:
        v = v.translate(CHINESE_DIGITS)
    strip = _STRIP_BY_KIND.get(kind)
    if strip is not None:
        v = v.translate(strip)
    if kind in ("CN_MOBILE", "CN_LANDLINE"):
        digits = v
        if digits.startswith("0086"):
            digits = digits[4:]
        elif digits.startswith("86") and len(digits) > 11:
            digits = digits[2:]
        if kind == "CN_LANDLINE" and not digits.startswith("0"):
            digits = "0" + digits
        return digits
    if strip is not None:
        return v.upper()
    if kind == "EMAIL":
        return v.casefold()
    if kind == "IP_ADDRESS":
        try:
            return ipaddress.ip_address(v).compressed
        except ValueError:
            return v.casefold()
    return " ".join(v.split())


def value_digest(kind: str, value: str, salt: bytes, length: int = 8) -> str:
    """Salted HMAC-SHA256 of the canonical value, as ``length`` hex chars."""
    msg = f"{kind}\x1f{canonical_value(kind, value)}".encode()
    return hmac.new(salt, msg, hashlib.sha256).hexdigest()[:length]


@dataclass(frozen=True, slots=True)
class MaskedSpan:
    """Where one merged finding was, and where its replacement is in the masked text."""

    start: int
    end: int
    new_start: int
    new_end: int
    risk: str
    kind: str
    operator: str


@dataclass(frozen=True, slots=True)
class MaskResult:
    text: str
    spans: list[MaskedSpan]


def merge_findings(findings: Sequence[Finding]) -> list[Finding]:
    """Union overlapping spans; the merged span takes risk/kind of its strongest finding.

    Strongest means highest score, then longest span, then first. Empty spans are dropped.
    """
    ordered = sorted((f for f in findings if f.end > f.start), key=lambda f: (f.start, -f.end))
    groups: list[list[Finding]] = []
    end = -1
    for f in ordered:
        if groups and f.start < end:
            groups[-1].append(f)
            end = max(end, f.end)
        else:
            groups.append([f])
            end = f.end
    merged: list[Finding] = []
    for group in groups:
        best = max(group, key=lambda f: (f.score, f.end - f.start, -f.start))
        lo = min(f.start for f in group)
        hi = max(f.end for f in group)
        merged.append(best if (best.start, best.end) == (lo, hi) else replace(best, start=lo, end=hi))
    return merged


def _operator_for(f: Finding, operator: str | Mapping[str, str]) -> str:
    if isinstance(operator, str):
        op = operator
    else:
        op = operator.get(f.kind) or operator.get(f.risk) or operator.get("*") or "redact"
    if op not in OPERATORS:
        raise ValueError(f"unknown mask operator {op!r} (choose from {', '.join(OPERATORS)})")
    return op


def _is_formatting(kind: str, ch: str) -> bool:
    """Is ``ch`` formatting that ``partial`` keeps (a separator of the kind, an invisible character)?"""
    if not ch.isascii() and unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
        return True
    formatting = SEPARATORS_BY_KIND.get(kind)
    if formatting is None:
        return _OTHER_SEPARATORS.fullmatch(ch) is not None
    return (ch if ch.isascii() else unicodedata.normalize("NFKC", ch)) in formatting


def _partial(kind: str, value: str, keep: Mapping[str, tuple[int, int]]) -> str:
    if kind == "EMAIL" and "@" in value:
        local, _, domain = value.rpartition("@")
        return (local[:1] + MASK_CHAR * max(1, len(local) - 1)) + "@" + domain
    if kind == "IP_ADDRESS" and value.count(".") == 3:
        a, b, _c, _d = value.split(".")
        return f"{a}.{b}.{MASK_CHAR}.{MASK_CHAR}"
    sig = [i for i, ch in enumerate(value) if not _is_formatting(kind, ch)]
    if kind == "CN_MOBILE":
        # a +86 prefix is not part of the number; keep it and mask the 11 national digits
        digits = [i for i in sig if value[i].isdigit()]
        sig = digits[-11:] if len(digits) >= 11 else sig
    first, last = keep.get(kind, (1, 1))
    n = len(sig)
    if kind == "PERSON_NAME" and n <= 2:
        last = 0
    if first + last >= n:
        # never keep the whole value: keep at most a third at each end
        first, last = min(first, n // 3), min(last, n // 3)
    masked = set(sig[first : n - last])
    return "".join(MASK_CHAR if i in masked else ch for i, ch in enumerate(value))


def mask_spans(
    original: str,
    findings: Sequence[Finding],
    operator: str | Mapping[str, str] = "redact",
    *,
    salt: bytes | None = None,
    vault: TokenVault | None = None,
    tags: Mapping[str, str] | None = None,
    partial: Mapping[str, tuple[int, int]] | None = None,
) -> MaskResult:
    """Mask ``original`` and report where each replacement landed.

    ``operator`` is one operator for everything, or a map from finding kind or risk code (``"*"`` for
    the rest) to an operator. ``salt`` is needed by ``hash``; ``vault`` by ``token``. ``tags``
    extends :data:`DEFAULT_TAGS`; ``partial`` extends :data:`DEFAULT_PARTIAL`.
    """
    tag_map = {**DEFAULT_TAGS, **(tags or {})}
    keep = {**DEFAULT_PARTIAL, **(partial or {})}
    out: list[str] = []
    spans: list[MaskedSpan] = []
    pos = 0
    length = 0
    for f in merge_findings(findings):
        if f.start < 0 or f.end > len(original):
            raise ValueError(f"finding span {f.start}:{f.end} is outside the text (length {len(original)})")
        op = _operator_for(f, operator)
        value = original[f.start : f.end]
        if op == "keep":
            continue
        if op == "redact":
            rep = f"[{tag_map.get(f.kind) or tag_map.get(f.risk) or FALLBACK_TAG}]"
        elif op == "partial":
            rep = _partial(f.kind, value, keep)
        elif op == "hash":
            if salt is None:
                raise ValueError("the hash mask operator needs a salt")
            rep = f"<{f.risk}:{f.kind or f.risk}:{value_digest(f.kind or f.risk, value, salt)}>"
        else:
            if vault is None:
                raise ValueError("the token mask operator needs a TokenVault")
            rep = vault.tokenize(value, f.kind or f.risk)
        out.append(original[pos : f.start])
        length += f.start - pos
        spans.append(MaskedSpan(f.start, f.end, length, length + len(rep), f.risk, f.kind, op))
        out.append(rep)
        length += len(rep)
        pos = f.end
    out.append(original[pos:])
    return MaskResult("".join(out), spans)


def mask(
    original: str,
    findings: Sequence[Finding],
    operator: str | Mapping[str, str] = "redact",
    *,
    salt: bytes | None = None,
    vault: TokenVault | None = None,
    tags: Mapping[str, str] | None = None,
    partial: Mapping[str, tuple[int, int]] | None = None,
) -> str:
    """``original`` with every finding span replaced; see :func:`mask_spans`."""
    return mask_spans(original, findings, operator, salt=salt, vault=vault, tags=tags, partial=partial).text


class VaultError(RuntimeError):
    """The token vault cannot be opened or does not know a token."""


class TokenVault:
    """SQLite file mapping reversible tokens ``⟦PI_1f2e3d4c⟧`` to the values they stand for.

    The vault is the only place raw values live; protect the file (it is created mode 0600). Tokens
    are deterministic per (kind, canonical value) within a vault: the same number always gets the same
    token. :meth:`detokenize` returns the canonical value (``13800138000`` for ``138 0013 8000``).
    """

    def __init__(self, path: str | Path, *, salt: bytes) -> None:
        self.path = Path(path)
        self._salt = salt
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, value_key TEXT NOT NULL UNIQUE,"
                " kind TEXT NOT NULL, value TEXT NOT NULL, created_at REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise VaultError(f"{self.path}: cannot open token vault ({exc})") from None

    def _key(self, value: str, kind: str) -> tuple[str, str]:
        canon = canonical_value(kind, value)
        key = hmac.new(self._salt, f"vault\x1f{kind}\x1f{canon}".encode(), hashlib.sha256).hexdigest()
        return key, canon

    def tokenize(self, value: str, kind: str) -> str:
        key, canon = self._key(value, kind)
        with self._lock:
            row = self._db.execute("SELECT token FROM tokens WHERE value_key = ?", (key,)).fetchone()
            if row:
                return str(row[0])
            # the first 8 hex chars of the key, then other slices, then random ones on collision
            candidates = [key[i : i + 8] for i in range(0, 64, 8)]
            while True:
                hexpart = candidates.pop(0) if candidates else secrets.token_hex(4)
                token = f"⟦PI_{hexpart}⟧"
                self._db.execute(
                    "INSERT INTO tokens (token, value_key, kind, value, created_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (token, key, kind, canon, time.time()),
                )
                row = self._db.execute("SELECT token FROM tokens WHERE value_key = ?", (key,)).fetchone()
                if row:
                    return str(row[0])

    def detokenize(self, token: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM tokens WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise VaultError(f"unknown token {token}")
        return str(row[0])

    def detokenize_text(self, text: str) -> str:
        """Replace every known token in ``text`` by its value; unknown tokens stay as they are."""

        def sub(m: re.Match[str]) -> str:
            try:
                return self.detokenize(m.group(0))
            except VaultError:
                return m.group(0)

        return TOKEN_RE.sub(sub, text)

    def forget(self, value: str, kind: str) -> bool:
        """Delete a value (a personal-information deletion request); True if it was there."""
        key, _ = self._key(value, kind)
        with self._lock:
            cur = self._db.execute("DELETE FROM tokens WHERE value_key = ?", (key,))
        return cur.rowcount > 0

    def forget_tokens(self, tokens: Iterable[str]) -> int:
        """Delete the values behind ``tokens`` (a person's erasure); returns how many were held.

        Deleted values are overwritten in the file (``secure_delete``) and the write-ahead log is
        folded back and truncated, so the raw values do not linger in free pages or the log."""
        wanted = sorted(set(tokens))
        if not wanted:
            return 0
        with self._lock:
            self._db.execute("PRAGMA secure_delete=ON")
            try:
                cur = self._db.executemany("DELETE FROM tokens WHERE token = ?", [(t,) for t in wanted])
                removed = cur.rowcount
            finally:
                self._db.execute("PRAGMA secure_delete=OFF")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM tokens").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> TokenVault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
