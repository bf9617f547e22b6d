"""Ledger settings (PLACEHOLDER; the ledger work fills this in)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class LedgerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = "sqlite:///hegui.db"
