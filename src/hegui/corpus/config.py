"""Corpus-audit settings: the ``corpus:`` section of ``hegui.yaml`` (documented in ``docs/corpus.md``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class CorpusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
