"""Labeling settings (PLACEHOLDER; the labeling work fills this in)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class LabelingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
