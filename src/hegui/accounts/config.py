"""Account settings: the ``accounts:`` section of ``hegui.yaml``.

Every key is documented in ``docs/accounts.md``; a test checks that the table there lists them all.
Defaults follow ``spec/regulation.md`` §3.2 (SMS one-time codes to a mainland mobile number) and
§3.4 (the CAC minor-mode guide of 2024: ≤ 60 min a day under 16, ≤ 120 min for 16–17, a rest
reminder after 30 min, no service 22:00–06:00).
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AgeBand = Literal["<3", "3-8", "8-12", "12-16", "16-18", "adult"]
"""Age bands of the CAC minor-mode guide, plus ``adult``."""
MINOR_BANDS: frozenset[str] = frozenset({"<3", "3-8", "8-12", "12-16", "16-18"})

Standing = Literal["good", "warned", "restricted", "suspended", "terminated"]
LADDER: tuple[Standing, ...] = ("good", "warned", "restricted", "suspended", "terminated")


class OTPConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_seconds: int = Field(default=300, ge=30, le=3600)
    """How long a one-time code is valid."""
    max_attempts: int = Field(default=5, ge=1, le=20)
    """Wrong tries after which a code is dead (a new one must be sent)."""
    length: int = Field(default=6, ge=4, le=10)
    """Digits in a code."""
    sends_per_phone_per_hour: int = Field(default=5, ge=1)
    """Codes sent to one number in an hour, at most."""
    sends_per_ip_per_hour: int = Field(default=20, ge=1)
    """Codes requested from one client address in an hour, at most."""
    resend_after_seconds: int = Field(default=60, ge=0)
    """Least time between two codes to the same number."""


class SMSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sender: Literal["log", "webhook"] = "log"
    """``log``: the code is written to the log (development; ``hegui demo`` prints it). ``webhook``: a
    signed JSON POST to ``webhook_url`` (your SMS provider's adapter)."""
    webhook_url: str | None = None
    """Where the ``webhook`` sender POSTs ``{"phone", "code", "purpose", "ttl_seconds", "template", "timestamp"}``."""
    webhook_secret_env: str = "HEGUI_SMS_WEBHOOK_SECRET"
    """Environment variable holding the key of the ``x-hegui-signature`` HMAC-SHA256 header."""
    timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for the webhook."""
    template: str = Field(default="您的验证码是 {code}，{minutes} 分钟内有效。如非本人操作，请忽略本短信。",
                          max_length=500)
    """The SMS text sent as ``template`` in the webhook's body (``{code}`` and ``{minutes}`` are filled
    in), for providers that take a text; providers with registered templates use ``code`` instead."""

    @field_validator("template")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(code="0", minutes=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{code}} and {{minutes}} may be used ({exc})") from None
        if "{code}" not in value:
            raise ValueError("must contain {code}")
        return value

    @model_validator(mode="after")
    def _needs_url(self) -> SMSConfig:
        if self.sender == "webhook" and not self.webhook_url:
            raise ValueError("sender 'webhook' needs webhook_url")
        return self


class VerifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook_url: str | None = None
    """Identity verifier (e.g. an adapter for the national network identity service): hegui POSTs
    ``{"phone", "token"}`` and stores only the ``age_band`` it answers. Unset: age is declared."""
    timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for the verifier."""
    secret_env: str = "HEGUI_VERIFIER_SECRET"
    """Environment variable holding the key of the ``x-hegui-signature`` header on verifier requests
    (signed like the SMS webhook); unset: the requests go unsigned."""


class AgreementDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["service", "privacy"]
    """``service``: the service agreement (Art. 9); ``privacy``: the privacy policy, which must state
    how generated content is labelled (Labeling Measures Art. 8)."""
    version: str = Field(min_length=1, max_length=64)
    """Version name shown to users and recorded with each acceptance."""
    effective: date
    """From this day (provider's time zone) accounts must have accepted this version."""
    path: str
    """The document's text (Markdown or HTML), relative to the config file."""


class MinorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    daily_minutes_under_16: int = Field(default=60, ge=0, le=1440)
    """Usage minutes a day for the bands below 16."""
    daily_minutes_16_to_18: int = Field(default=120, ge=0, le=1440)
    """Usage minutes a day for the 16–18 band."""
    rest_reminder_minutes: int = Field(default=30, ge=1, le=1440)
    """Continuous usage after which a rest reminder is attached to the response."""
    session_gap_minutes: int = Field(default=5, ge=1, le=120)
    """Minutes without a request that end a continuous session (for the rest reminder)."""
    curfew_start: time = time(22, 0)
    """Start of the nightly pause (provider's time zone)."""
    curfew_end: time = time(6, 0)
    """End of the nightly pause."""
    scene: str = "minor"
    """Moderation scene used for accounts in minor mode (must be declared in the policy)."""


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests_per_minute: int | None = Field(default=None, ge=0)
    """Requests a minute per API key and per account (None = no limit)."""
    tokens_per_minute: int | None = Field(default=None, ge=0)
    """Completion tokens a minute per API key and per account (None = no limit)."""


def _default_limits() -> dict[str, RateLimit]:
    # Accounts in good standing get no limit by default: an app key carries all its users' traffic,
    # and a number that fits one provider throttles another. Set limits for your own load.
    return {"restricted": RateLimit(requests_per_minute=10, tokens_per_minute=5_000)}


class LadderStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refusals: int = Field(ge=1)
    """Refused inputs (of ``risks``) within ``window_hours`` that move the account one step down."""
    risks: list[str] = Field(default_factory=list)
    """Risk codes that count (empty: every refused input counts)."""


class LadderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    """Move accounts down the ladder automatically on repeated refused inputs."""
    window_hours: float = Field(default=24.0, gt=0)
    """The window refusals are counted in."""
    step: LadderStep = Field(default_factory=lambda: LadderStep(refusals=5))
    """How many refused inputs move an account one step (good → warned → restricted → suspended)."""
    suspend_days: float = Field(default=7.0, gt=0)
    """How long an automatic suspension lasts."""
    appeal_contact: str = "/v1/hegui/appeals"
    """Where a suspended person is told to appeal (shown in the refusal)."""


class AccountsConfig(BaseModel):
    """Who may use the service, and how much: identity, agreements, minors, rate limits, the ladder."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    """The account gate in the request path (standing, agreements, minor mode, rate limits)."""
    timezone: str = "Asia/Shanghai"
    """The provider's time zone: days, curfews and agreement dates are counted in it."""
    redis_url: str | None = None
    """``redis://host:6379/0``: usage minutes, rate limits and standing shared through Redis (atomic
    operations). Unset: through the ledger database, synced every ``sync_seconds``."""
    sync_seconds: float = Field(default=0.5, gt=0, le=10)
    """How often a worker refreshes cached standing (and, without Redis, syncs counters)."""
    app_users_must_be_verified: bool = True
    """An app key marked ``public`` refuses requests whose ``user`` is unknown or not OTP-verified."""
    otp: OTPConfig = Field(default_factory=OTPConfig)
    sms: SMSConfig = Field(default_factory=SMSConfig)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    agreements: list[AgreementDocument] = Field(default_factory=list)
    """Published versions of the service agreement and privacy policy."""
    minors: MinorConfig = Field(default_factory=MinorConfig)
    rate_limits: dict[str, RateLimit] = Field(default_factory=_default_limits)
    """Limits per standing (``good``, ``warned``, ``restricted``); a standing not listed has none."""
    ladder: LadderConfig = Field(default_factory=LadderConfig)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^rediss?://", value):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _standings(cls, value: dict[str, RateLimit]) -> dict[str, RateLimit]:
        unknown = sorted(set(value) - set(LADDER))
        if unknown:
            raise ValueError(f"unknown standing {unknown[0]!r} (standings: {', '.join(LADDER)})")
        return value
