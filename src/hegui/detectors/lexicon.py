"""Lexicon detector (PLACEHOLDER: config only; the lexicon work fills this in)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class LexiconConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
