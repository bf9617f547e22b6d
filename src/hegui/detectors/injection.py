"""Jailbreak / prompt-injection detector (PLACEHOLDER: config only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class InjectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
