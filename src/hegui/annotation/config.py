"""Annotation settings: the ``annotation:`` section of ``hegui.yaml`` (documented in ``docs/annotation.md``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AnnotationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
