"""The built-in classifier as a detector (PLACEHOLDER: config only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ClassifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
