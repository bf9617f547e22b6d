"""Portal settings: the ``portal:`` section of ``hegui.yaml`` (the public pages).

Every key is documented in ``docs/portal.md``; a test checks the table there lists them all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PortalTexts(BaseModel):
    """What ``/about`` publishes (Art. 10: who the service is for, its uses and limits; Art. 15: the
    complaint process and deadline). Each text has a Chinese and an English version."""

    model_config = ConfigDict(extra="forbid")
    service_name: str = "hegui 演示服务"
    service_name_en: str = "hegui demo service"
    audience: str = "面向年满 18 周岁的中国大陆用户；未成年人须在监护人同意下使用未成年人模式。"
    audience_en: str = "Adults in mainland China; minors only in minor mode, with a guardian's consent."
    uses: str = "文本问答、写作辅助与图片生成。"
    uses_en: str = "Answering questions, help with writing, and image generation."
    limits: str = "生成内容可能不准确，不构成医疗、法律或投资建议；请勿输入他人的个人信息。"
    limits_en: str = ("Generated content may be wrong and is not medical, legal or investment advice; "
                      "do not enter other people's personal information.")
    filing_number: str = ""
    """The filing (备案) number to publish; empty: shown as not yet filed."""
    contact_email: str = ""
    """An e-mail address for complaints besides the form (optional)."""
    contact_phone: str = ""
    """A phone number for complaints besides the form (optional)."""


class PortalConfig(BaseModel):
    """The public pages: ``/about``, the complaint and report form, case status, PI requests."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    """Serve the portal from the gateway's app."""
    default_language: Literal["zh", "en"] = "zh"
    """Language of the pages when the visitor has not chosen one (``?lang=en``)."""
    secret_env: str = "HEGUI_PORTAL_SECRET"
    """Environment variable holding the key that signs CSRF tokens; unset: a key kept in the ledger
    database (shared by every worker on it)."""
    submissions_per_ip_per_hour: int = Field(default=10, ge=1)
    """Complaints, reports and PI requests one client address may file in an hour."""
    lookups_per_ip_per_hour: int = Field(default=60, ge=1)
    """Case-status lookups one client address may make in an hour (case codes cannot be guessed,
    and this keeps anyone from trying)."""
    max_description_chars: int = Field(default=5000, ge=100, le=50_000)
    """Longest description accepted."""
    texts: PortalTexts = Field(default_factory=PortalTexts)


StaffRole = Literal["viewer", "reviewer", "admin"]


class ConsoleConfig(BaseModel):
    """The staff console under ``/console``: sessions, login limits, second factor."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    """Serve the console from the gateway's app."""
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    """A session ends this long after login, whatever happens."""
    idle_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    """A session ends after this long without a request."""
    login_attempts_per_ip_per_hour: int = Field(default=30, ge=1)
    """Login attempts one client address may make in an hour (right or wrong)."""
    lockout_after_failures: int = Field(default=5, ge=1, le=100)
    """Wrong passwords (or second factors) in a row after which the staff account is locked."""
    lockout_minutes: float = Field(default=15.0, gt=0)
    """How long a locked staff account stays locked."""
    require_totp_roles: list[StaffRole] = Field(default_factory=list)
    """Roles that must log in with a TOTP second factor (e.g. ``[admin]``)."""
    secret_env: str = "HEGUI_CONSOLE_SECRET"
    """Environment variable holding the key that signs session cookies and CSRF tokens; unset: a key
    kept in the ledger database (shared by every worker on it)."""
