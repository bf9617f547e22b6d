"""Filing settings: the ``filing:`` section of ``hegui.yaml`` (documented in ``docs/filing.md``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FilingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
