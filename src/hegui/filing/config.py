"""Filing settings: the ``filing:`` section of ``hegui.yaml`` (documented in ``docs/filing.md``).

What hegui cannot measure about a service (who signs, what the service is called and where it is
offered, the base model's filing) is said here by the provider; the package quotes it as the
provider's statement, never as something hegui checked.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AlgorithmType = Literal["生成合成", "个性化推送", "排序精选", "检索过滤", "调度决策"]
AlgorithmRole = Literal["服务提供者", "技术支持者"]


class Signatories(BaseModel):
    """The three people who sign a self-run assessment report (GB/T 45654 §9)."""

    model_config = ConfigDict(extra="forbid")
    legal_representative: str = ""
    """法定代表人; empty: a blank line to fill in by hand."""
    assessment_lead: str = ""
    """评估负责人."""
    legality_lead: str = ""
    """合法性负责人."""


class ServiceInfo(BaseModel):
    """服务情况 of the algorithm self-assessment report and the product information of the filing."""

    model_config = ConfigDict(extra="forbid")
    name: str = ""
    """Service (product) name; empty: ``portal.texts.service_name``."""
    form: str = ""
    """Form of the service, e.g. ``网站``, ``App``, ``小程序``, ``API``."""
    url: str = ""
    """Where the public reaches it (website, app store page or API base URL)."""
    entry: str = ""
    """Entry point inside the product (e.g. ``首页 → 智能助手``)."""
    launch_date: date | None = None
    """Date the service launched (or will); empty: 待确认 in the report."""
    users: str = ""
    """Who uses it and how many (e.g. ``面向成年个人用户，日活约 2 万``); empty: ``portal.texts.audience``."""
    traffic: str = ""
    """Traffic or call volume, as the filing form asks."""
    uses: str = ""
    """What it is for; empty: ``portal.texts.uses``."""


class AlgorithmInfo(BaseModel):
    """算法情况 of the algorithm filing (算法推荐规定 Art. 24)."""

    model_config = ConfigDict(extra="forbid")
    type: AlgorithmType = "生成合成"
    role: AlgorithmRole = "服务提供者"
    principle: str = ""
    """Principle and mechanism of the algorithm, in the provider's words."""
    purpose: str = ""
    """What the algorithm is used for."""
    data: str = ""
    """Training and inference data, in the provider's words (the corpus audit adds its figures)."""
    flow: str = ""
    """Processing flow; empty: hegui's request path (input check → model → output check → label)."""


class BaseModelInfo(BaseModel):
    """The model behind the service (GB/T 45654 §6: a third-party base model must be filed)."""

    model_config = ConfigDict(extra="forbid")
    name: str = ""
    """Model name and version; empty: the assessment run's model."""
    third_party: bool | None = None
    """Whether it is a third party's model; unset: 待确认."""
    filing_number: str = ""
    """The base model's filing (备案) number when it is a third party's."""


class PublicDisplay(BaseModel):
    """拟公示内容 beyond what hegui already knows (labels, complaint channel and deadline)."""

    model_config = ConfigDict(extra="forbid")
    mechanism: str = ""
    """Plain-language summary of how the algorithm works, for the public."""
    purpose: str = ""
    """Its purpose, for the public."""
    extra: str = ""
    """Anything else to publish, appended as is."""


class FilingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signatories: Signatories = Field(default_factory=Signatories)
    service: ServiceInfo = Field(default_factory=ServiceInfo)
    algorithm: AlgorithmInfo = Field(default_factory=AlgorithmInfo)
    base_model: BaseModelInfo = Field(default_factory=BaseModelInfo)
    public_display: PublicDisplay = Field(default_factory=PublicDisplay)
    not_applicable: dict[str, str] = Field(default_factory=dict)
    """Clause id → the reason it does not apply (``不适用`` needs a reason; an empty one is refused)."""
    statements: dict[str, str] = Field(default_factory=dict)
    """Clause id → what the provider states and where its evidence is kept, for clauses hegui cannot
    measure (e.g. IP screening); the clause stays ``待确认`` for the officer to confirm with it."""
    minors_served: bool | None = None
    """Whether minors may use the service; unset: read from ``accounts`` (minor mode) as 待确认."""
    monitoring_team: str = ""
    """The 监看 team (size, hours), as the provider states it."""
    opt_out_clicks: int | None = Field(default=None, ge=0, le=20)
    """Clicks from the main screen to the training opt-out (≤ 4 required), as the provider counted."""

    @field_validator("not_applicable")
    @classmethod
    def _reasons(cls, value: dict[str, str]) -> dict[str, str]:
        for clause, reason in value.items():
            if not reason.strip():
                raise ValueError(f"{clause}: 不适用 needs a reason")
        return value
