"""Guard-model backends (PLACEHOLDER: config only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class GuardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
