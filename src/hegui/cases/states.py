"""The life of a case: which status may follow which, and what each step means.

::

    open ──assign──▶ in_progress ──reply──▶ replied ──close──▶ closed
      │                  ▲   │                 │
      └──────reply───────┼───┘                 │
      │                  └──────reopen─────────┘
      └──close (withdrawn, duplicate, no standing)──▶ closed

A reply is what the person sees on the status page; a case cannot be closed as handled without one
(closing from ``open`` or ``in_progress`` needs a reason, which becomes the reply). Every step is an
event on the ledger's chain (``case.<step>``), so the history of a case is evidence.
"""

from __future__ import annotations

STATUSES: tuple[str, ...] = ("open", "in_progress", "replied", "closed")
OPEN_STATUSES: frozenset[str] = frozenset({"open", "in_progress"})
"""Statuses in which the case still awaits its reply (counted for deadlines and overdue alerts)."""

TRANSITIONS: dict[str, dict[str, str]] = {
    "assign": {"open": "in_progress", "in_progress": "in_progress", "replied": "replied"},
    "reply": {"open": "replied", "in_progress": "replied", "replied": "replied"},
    "reopen": {"replied": "in_progress", "closed": "in_progress"},
    "close": {"open": "closed", "in_progress": "closed", "replied": "closed"},
}
"""step → {status before: status after}; a step not listed for the current status is refused."""


class TransitionRefused(ValueError):
    pass


def next_status(step: str, status: str) -> str:
    after = TRANSITIONS.get(step, {}).get(status)
    if after is None:
        allowed = sorted(s for s, table in TRANSITIONS.items() if status in table)
        raise TransitionRefused(f"a case that is {status} cannot be {_past(step)}"
                                f" (possible: {', '.join(allowed) or 'nothing'})")
    return after


def _past(step: str) -> str:
    return {"assign": "assigned", "reply": "replied to", "reopen": "reopened", "close": "closed"}.get(step, step)
