"""What goes into the ledger and what comes out of it: plain dataclasses, no SQLAlchemy.

The gateway builds a :class:`DecisionRecord` per moderation check and hands it to
:meth:`hegui.ledger.store.Ledger.record_decision`. Everything here is free of raw personal data:
excerpts arrive masked, findings carry evidence ids instead of matched text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

DecisionKind = Literal["decision", "stream_open", "stream_progress"]
"""``decision``: the outcome of one check (an input, a whole output, or the end of a streamed
output, with ``stream`` set). ``stream_open``: a streamed output started (written before the first
byte is sent, so a crash mid-stream still leaves a record). ``stream_progress``: a checkpoint of how
much of a stream was sent (appended by :meth:`Ledger.update_stream`)."""

KINDS: tuple[str, ...] = ("decision", "stream_open", "stream_progress")


@dataclass
class DecisionRecord:
    """One moderation decision, as the caller hands it to the ledger."""

    decision_id: str
    request_id: str
    account_id: str | None
    api_key_id: str | None
    model: str | None
    direction: str
    """``input`` or ``output``."""
    scene: str
    action: str
    """``allow``/``flag``/``mask``/``refuse``/``block`` (``pending`` for a ``stream_open`` row)."""
    risks: list[str]
    findings: list[dict[str, Any]]
    """``Finding.to_dict()`` of each finding: spans and evidence ids, never the matched text."""
    detector_ms: dict[str, float]
    excerpt: str
    """Already masked by the caller; the ledger truncates it to ``ledger.excerpt_chars``."""
    stream: dict[str, Any] | None = None
    """For streamed outputs: ``{"sent_chars": int, "cut": bool, "client_disconnected": bool,
    "upstream_error": str | None}``."""
    created_at: datetime | None = None
    """Set by the ledger (UTC) when None."""
    kind: DecisionKind = "decision"
    flags: dict[str, Any] | None = None
    """Marks of the account that travel with the record, hashed with it:
    ``{"training_opt_out": true}`` when the person opted out of training (exports that could feed
    training leave such rows out: ``Ledger.decisions(for_training=True)``)."""


@dataclass(frozen=True)
class DecisionRow:
    """A stored decision row, as read back (datetimes are UTC-aware)."""

    id: int
    seq: int
    kind: str
    decision_id: str
    request_id: str
    account_id: str | None
    api_key_id: str | None
    model: str | None
    direction: str
    scene: str
    action: str
    risks: list[str]
    findings: list[dict[str, Any]]
    detector_ms: dict[str, float]
    excerpt: str
    stream: dict[str, Any] | None
    created_at: datetime
    prev_hash: str
    row_hash: str
    flags: dict[str, Any] | None = None
    content_hash: str | None = None
    content_nonce: str | None = None
    erased_at: datetime | None = None
    """Set when the row's erasable fields were erased on request (:mod:`hegui.ledger.erasure`)."""

    @property
    def training_opt_out(self) -> bool:
        return bool(self.flags and self.flags.get("training_opt_out"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["erased_at"] = self.erased_at.isoformat() if self.erased_at else None
        return d


@dataclass(frozen=True)
class ApiKey:
    """An API key as the gateway sees it after a lookup (the plaintext is never stored)."""

    id: str
    account_id: str
    admin: bool
    revoked: bool
    name: str = ""
    prefix: str = ""
    """The first characters of the key, safe to show (``hg-AbC1…``)."""
    public: bool = False
    """An app's key for the public: its requests must name an OTP-verified end user."""


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    external_id: str | None
    """As stored: a salted hash when the caller's identifier looked like personal data."""
    created_at: datetime


ProblemKind = Literal["edited", "deleted", "inserted"]


@dataclass(frozen=True)
class Problem:
    """One break in a hash chain, named so a person can find the row."""

    table: str
    seq: int
    what: ProblemKind
    row_id: int | None = None
    decision_id: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.table} seq {self.seq}"
        if self.row_id is not None:
            where += f" (id {self.row_id})"
        if self.decision_id:
            where += f" decision {self.decision_id}"
        return f"{where}: {self.what}" + (f": {self.detail}" if self.detail else "")


@dataclass
class VerifyReport:
    """Outcome of :meth:`Ledger.verify`: ``ok`` when every chain is intact."""

    rows_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per chained table: (last seq, last row hash), for anchoring outside the database."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "problems": [p.to_dict() for p in self.problems],
            "heads": {t: {"seq": s, "hash": h} for t, (s, h) in self.heads.items()},
        }


@dataclass
class PruneResult:
    """What :meth:`Ledger.prune` deleted (or would delete, on a dry run)."""

    before: datetime
    rows: int
    first_seq: int
    last_seq: int
    anchor_hash: str = ""
    """Hash of the last row deleted: where the chain now starts."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["before"] = self.before.isoformat()
        return d
