"""Assessment settings: the ``assessment:`` section of ``hegui.yaml``.

Every key is documented in ``docs/assessment.md``. The thresholds and sample sizes are those of
GB/T 45654 §9 as ``spec/regulation.md`` §1.6 gives them (marked M there: kept configurable).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AssessmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confidence: float = Field(default=0.95, gt=0, lt=1)
    """Confidence level of the Wilson intervals behind every verdict."""
