"""The ledger: the system of record (decisions, hash chain, retention)."""
