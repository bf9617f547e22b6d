"""PII detector (PLACEHOLDER: config only; the PII work fills this in)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PIIConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
