"""The hash chain over evidence rows.

Each row stores ``prev_hash`` (the previous row's ``row_hash``; :data:`GENESIS` for the first) and
``row_hash = sha256(prev_hash + canonical JSON of the row's content fields)``; ``seq`` counts 1, 2, 3…
without gaps. Editing a row breaks its own hash; deleting one leaves a gap in ``seq`` and a link that
points at nothing; a row slipped in breaks the link of the row after it. ``chain_heads`` keeps the
last (seq, hash), so rows cut from the end show up as well.

Content is canonicalised before it is stored *and* before it is hashed (:func:`canonical_content`),
so what is read back hashes the same on SQLite and PostgreSQL.

Erasable content (from migration 0004 on): the fields that say who a row is about and what they
wrote (:data:`ERASABLE_FIELDS`) are sealed into ``content_hash = sha256(content_nonce + canonical
JSON of those fields)``, and ``row_hash`` covers ``content_hash`` instead of the fields. Erasing a
person's data on request (:mod:`hegui.ledger.erasure`) empties the fields and the nonce and leaves
every hash as it was, so the chain still verifies; while the content is held, the verifier re-seals
it, so editing it is still caught. Rows chained before 0004 have no ``content_hash`` and are hashed
over the fields themselves, as they were written.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from hegui.ledger.records import Problem, ProblemKind

GENESIS = "0" * 64

DECISION_FIELDS: tuple[str, ...] = (
    "seq",
    "kind",
    "decision_id",
    "request_id",
    "account_id",
    "api_key_id",
    "model",
    "direction",
    "scene",
    "action",
    "risks",
    "findings",
    "detector_ms",
    "excerpt",
    "stream",
    "created_at",
    "flags",
)
"""The fields of a ``decisions`` row that the hash covers (everything but id and the hashes)."""

OPTIONAL_FIELDS: frozenset[str] = frozenset({"flags"})
"""Fields added after rows were already chained: hashed only when set, so older rows verify as written."""

EVENT_FIELDS: tuple[str, ...] = ("seq", "event_id", "kind", "account_id", "actor", "data", "created_at")
"""The fields of an ``events`` row that the hash covers."""

CHAINED_TABLES: dict[str, tuple[str, ...]] = {"decisions": DECISION_FIELDS, "events": EVENT_FIELDS}

ERASABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "decisions": ("account_id", "api_key_id", "excerpt", "findings"),
    "events": ("account_id", "data"),
}
"""Per chain, the fields sealed into ``content_hash``: who the row is about and what they wrote."""

ERASED_VALUES: dict[str, Any] = {"account_id": None, "api_key_id": None, "excerpt": "", "findings": [], "data": {}}
"""What an erased field holds (NULL where the column allows it, else the empty value of its type)."""

_ERASABLE = frozenset(ERASED_VALUES)
CHAIN_ID_FIELDS: dict[str, str] = {"decisions": "decision_id", "events": "event_id"}
"""The column that names a row of each chain in problem reports."""


def _clean_str(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (a client can send "\ud800" in JSON) cannot be stored as UTF-8; a record
        # that cannot be written would refuse the request, so they become U+FFFD instead.
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", "\ufffd")


def _clean(value: Any) -> Any:
    """JSON-safe and database-safe: no NUL (PostgreSQL text refuses it), no lone surrogates, no
    NaN/inf, str keys."""
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(_clean(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, datetime):
        return iso_utc(value)
    to_dict = getattr(value, "to_dict", None)  # a Finding handed over as is
    if callable(to_dict):
        return _clean(to_dict())
    return _clean(str(value))


def clean_json(value: Any) -> Any:
    """``value`` as it will read back from a JSON column (see :func:`_clean`)."""
    return json.loads(canonical_json(_clean(value)))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def iso_utc(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def clean_text(value: str | None) -> str | None:
    return None if value is None else _clean_str(value)


def content_digest(nonce: str, content: Mapping[str, Any], erasable: Iterable[str]) -> str:
    """``sha256(nonce + canonical JSON of the erasable fields)``: what ``content_hash`` holds."""
    payload = {f: content.get(f) for f in erasable}
    return hashlib.sha256((nonce + canonical_json(payload)).encode("utf-8")).hexdigest()


def seal_content(values: dict[str, Any], chain: str) -> None:
    """Give a row about to be appended to ``chain`` its ``content_nonce`` and ``content_hash``.

    The nonce is random per row, so once it is erased with the content the digest cannot be tested
    against guesses (a phone number, an account id)."""
    nonce = secrets.token_hex(16)
    values["content_nonce"] = nonce
    values["content_hash"] = content_digest(nonce, values, ERASABLE_FIELDS[chain])


def row_hash(prev_hash: str, content: Mapping[str, Any], fields: Iterable[str]) -> str:
    """The chain hash of a row: over ``fields``, or, when the row carries a ``content_hash``, over
    the fields that are not erasable plus that digest."""
    sealed = content.get("content_hash")
    payload: dict[str, Any] = {f: content.get(f) for f in fields
                               if not (f in OPTIONAL_FIELDS and content.get(f) is None)
                               and not (sealed is not None and f in _ERASABLE)}
    if sealed is not None:
        payload["content_hash"] = sealed
    created = payload.get("created_at")
    if isinstance(created, datetime):
        payload["created_at"] = iso_utc(created)
    data = prev_hash + canonical_json(payload)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


class ChainVerifier:
    """Walks one table's rows in ``seq`` order and collects the breaks.

    Feed rows with :meth:`check` (mappings with the content fields plus ``id``, ``prev_hash`` and
    ``row_hash``), then :meth:`finish` with the stored chain head.
    """

    def __init__(
        self,
        table: str,
        fields: tuple[str, ...],
        *,
        id_field: str | None = None,
        start_seq: int = 0,
        start_hash: str = GENESIS,
    ) -> None:
        """``start_seq``/``start_hash``: where the chain begins: the genesis, or the anchor left by
        the last retention prune (the seq and hash of the last row deleted)."""
        self.table = table
        self.fields = fields
        self.erasable = tuple(f for f in fields if f in _ERASABLE)
        self.id_field = id_field or CHAIN_ID_FIELDS.get(table, "decision_id")
        self.problems: list[Problem] = []
        self.rows = 0
        self.last_seq = start_seq
        self.last_hash = start_hash
        self._last_row: Mapping[str, Any] | None = None

    def _problem(self, row: Mapping[str, Any] | None, seq: int, what: ProblemKind, detail: str) -> None:
        self.problems.append(
            Problem(
                table=self.table,
                seq=seq,
                what=what,
                row_id=None if row is None else row.get("id"),
                decision_id=None if row is None else row.get(self.id_field),
                detail=detail,
            )
        )

    def check(self, row: Mapping[str, Any]) -> None:
        self.rows += 1
        seq = int(row["seq"])
        expected = self.last_seq + 1
        computed = row_hash(row["prev_hash"], row, self.fields)
        own_ok = computed == row["row_hash"]
        content = self._content_problem(row)
        if not own_ok or content:
            details = ([] if own_ok else ["row hash does not match its content"]) + ([content] if content else [])
            self._problem(row, seq, "edited", "; ".join(details))
        if seq > expected:
            first, last = expected, seq - 1
            span = f"seq {first}" if first == last else f"seq {first}-{last}"
            noun = "event" if self.id_field == "event_id" else "decision"
            after = f" ({noun} {row.get(self.id_field)})" if row.get(self.id_field) else ""
            # Named by the missing seq; the row after the gap is only the landmark.
            self._problem(None, first, "deleted", f"{span} missing before seq {seq}{after}")
        elif seq < expected:
            # seq is unique in the schema, so this only happens when rows were renumbered
            self._problem(row, seq, "inserted", f"seq {seq} out of order after seq {self.last_seq}")
        elif row["prev_hash"] != self.last_hash and own_ok:
            # This row's hash covers its prev_hash, so the stored link is original and the row it
            # pointed at changed: edited and re-hashed, or replaced by an inserted row.
            prev = self._last_row
            prev_seq = expected - 1
            if prev is None:
                start = (
                    "the genesis hash" if self.last_seq == 0 else f"the prune anchor (seq {self.last_seq})"
                )
                self._problem(row, seq, "inserted", f"first row does not link to {start}")
            else:
                self._problem(
                    prev, prev_seq, "edited", f"row hash changed; seq {seq} links to a different row"
                )
        self.last_seq = max(seq, self.last_seq)
        self.last_hash = row["row_hash"]
        self._last_row = row

    def _content_problem(self, row: Mapping[str, Any]) -> str | None:
        """What is wrong with a row's erasable content, if anything: held content must still match
        its seal; an erased row must hold nothing (and its seal is then taken on trust of the
        chain, which covers it)."""
        sealed, erased = row.get("content_hash"), row.get("erased_at")
        if sealed is None:
            return "marked erased, but chained before erasable records" if erased is not None else None
        if erased is None:
            nonce = row.get("content_nonce")
            if nonce is None or content_digest(nonce, row, self.erasable) != sealed:
                return "content does not match its content hash"
            return None
        if row.get("content_nonce") is not None or any(row.get(f) != ERASED_VALUES[f] for f in self.erasable):
            return "erased row still holds content"
        return None

    def finish(self, head_seq: int | None, head_hash: str | None) -> None:
        if head_seq is None or head_hash is None:
            if self.rows:
                self._problem(None, self.last_seq, "edited", "chain head is missing")
            return
        if head_seq > self.last_seq:
            first = self.last_seq + 1
            span = f"seq {first}" if first == head_seq else f"seq {first}-{head_seq}"
            self._problem(None, first, "deleted", f"{span} missing at the end (chain head is seq {head_seq})")
        elif head_seq < self.last_seq:
            self._problem(
                self._last_row,
                self.last_seq,
                "inserted",
                f"rows after the chain head (seq {head_seq}) were not appended through the ledger",
            )
        elif head_hash != self.last_hash:
            self._problem(self._last_row, self.last_seq, "edited", "last row differs from the chain head")
