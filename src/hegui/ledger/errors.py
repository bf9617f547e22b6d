"""Ledger failures. The gateway treats any :class:`LedgerError` as "cannot record" and fails closed."""

from __future__ import annotations

from hegui.errors import UserError


class LedgerError(RuntimeError):
    """The ledger could not do what was asked (database down, locked too long, schema missing)."""


class LedgerNotFound(LedgerError, KeyError):
    """A named account or key does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class LedgerOpenError(LedgerError, UserError):
    """The ledger database cannot be opened (bad URL, unreachable server, missing file).

    A :class:`UserError`, so the CLI prints it as one line and exits 2.
    """
