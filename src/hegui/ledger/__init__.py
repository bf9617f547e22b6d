"""The ledger: hegui's system of record (decisions on a hash chain, accounts, API keys).

Public API: :class:`~hegui.ledger.store.Ledger`, :class:`~hegui.ledger.records.DecisionRecord`,
:func:`~hegui.ledger.identifiers.hash_identifier`. Imported lazily so that loading the config
(which needs :mod:`hegui.ledger.config`) does not pull in SQLAlchemy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hegui.ledger.errors import LedgerError, LedgerNotFound, LedgerOpenError
    from hegui.ledger.identifiers import hash_identifier
    from hegui.ledger.records import ApiKey, DecisionRecord, DecisionRow, Problem, PruneResult, VerifyReport
    from hegui.ledger.store import Ledger

_EXPORTS = {
    "Ledger": "hegui.ledger.store",
    "DecisionRecord": "hegui.ledger.records",
    "DecisionRow": "hegui.ledger.records",
    "ApiKey": "hegui.ledger.records",
    "Problem": "hegui.ledger.records",
    "PruneResult": "hegui.ledger.records",
    "VerifyReport": "hegui.ledger.records",
    "LedgerError": "hegui.ledger.errors",
    "LedgerNotFound": "hegui.ledger.errors",
    "LedgerOpenError": "hegui.ledger.errors",
    "hash_identifier": "hegui.ledger.identifiers",
}

__all__ = [
    "ApiKey",
    "DecisionRecord",
    "DecisionRow",
    "Ledger",
    "LedgerError",
    "LedgerNotFound",
    "LedgerOpenError",
    "Problem",
    "PruneResult",
    "VerifyReport",
    "hash_identifier",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hegui.ledger' has no attribute {name!r}")
    return getattr(import_module(module), name)
