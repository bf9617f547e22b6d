"""Case settings: the ``cases:`` section of ``hegui.yaml`` (complaints, reports, personal-information
requests, incidents).

Every key is documented in ``docs/cases.md``; a test checks the table there lists them all.
The default deadline is 15 working days (``spec/regulation.md`` §3.5: the App 认定方法
ceiling for complaints and personal-information requests, which hegui also uses for complaints).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

if TYPE_CHECKING:
    from hegui.cases.workdays import WorkingCalendar

CaseKind = Literal["complaint", "report", "pi_request"]
CATEGORIES: tuple[str, ...] = ("illegal", "privacy", "reputation", "ip", "service")
"""Complaint and report categories: illegal or harmful content, privacy, reputation (名誉),
intellectual property, the service itself."""
AttachmentType = Literal["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"]
ATTACHMENT_TYPES: tuple[AttachmentType, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp",
                                                "application/pdf", "text/plain")
PI_ACTIONS: tuple[str, ...] = ("access", "copy", "correct", "supplement", "delete", "withdraw_consent")
"""What a person may ask of their personal information (Art. 11; PIPL Arts. 44–47)."""


class TakedownConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook_url: HttpUrl | None = None
    """Where a takedown request is POSTed (your content system's adapter); unset: takedowns are
    recorded but not sent, and the CLI says so."""
    secret_env: str = "HEGUI_TAKEDOWN_SECRET"
    """Environment variable holding the key of the ``x-hegui-signature`` HMAC-SHA256 header."""
    timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for the webhook."""


class CasesConfig(BaseModel):
    """How cases are run: deadlines, attachments, takedowns, incident reports."""

    model_config = ConfigDict(extra="forbid")
    due_working_days: int = Field(default=15, ge=1, le=60)
    """Working days (official holidays and adjusted working days counted, ``chinesecalendar``) from
    the day a case is opened to its due date."""
    holidays: list[date] = Field(default_factory=list)
    """Public holidays announced after the installed ``chinesecalendar`` release (ISO dates)."""
    working_days: list[date] = Field(default_factory=list)
    """Weekend days made working days (调休) announced after the installed ``chinesecalendar`` release."""
    attachments_dir: str = "hegui-attachments"
    """Folder for complaint attachments (relative to the config file), outside any web root; files
    are stored under random names and served to staff only."""
    max_attachment_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    """Largest attachment accepted."""
    attachment_types: list[AttachmentType] = Field(default_factory=lambda: list(ATTACHMENT_TYPES))
    """Attachment types accepted, judged by the file's content (its name and declared type are not trusted)."""
    takedown: TakedownConfig = Field(default_factory=TakedownConfig)
    report_font: str | None = None
    """A CJK font file for the incident report's PDF and chart; unset: the first Chinese font
    fontconfig knows (Debian: ``fonts-wqy-microhei``)."""

    def calendar(self) -> WorkingCalendar:
        from hegui.cases.workdays import WorkingCalendar

        return WorkingCalendar(self.holidays, self.working_days)
