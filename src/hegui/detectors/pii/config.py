"""The ``pii`` section of ``hegui.yaml``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hegui.detectors.pii.recognizers import ENTITY_KINDS
from hegui.masking import Operator
from hegui.validators import RegexStr

if TYPE_CHECKING:
    from hegui.masking import TokenVault

log = logging.getLogger(__name__)

DEV_SALT = b"hegui-dev-salt-not-secret"
"""Used when the salt variable is unset. Anyone can recompute hashes made with it: set a real salt."""
_warned_dev_salt = False


class CustomPatternConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    regex: RegexStr
    """Python regex, matched case-insensitively against normalised text; a group ``v`` is the span."""
    score: float = Field(default=0.6, ge=0.0, le=1.0)
    """Score without a context word (0: only report with one)."""
    context_score: float | None = Field(default=None, ge=0.0, le=1.0)


class CustomRecognizerConfig(BaseModel):
    """A pattern recognizer defined in config (employee numbers, member ids …)."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    patterns: list[CustomPatternConfig] = Field(min_length=1)
    context: list[str] = Field(default_factory=list)
    max_length: int = Field(default=64, ge=1, le=512)
    """Longest match reported (also what a stream holds back for it)."""


class PIIConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    entities: list[str] = Field(default_factory=lambda: list(ENTITY_KINDS))
    """Entity kinds to detect (default: all built-in kinds)."""
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    """Findings below this score are not reported."""
    mask_operator: Operator = "redact"
    """Default masking operator: redact, partial, hash, token or keep."""
    entity_operators: dict[str, Operator] = Field(default_factory=dict)
    """Per-kind overrides of ``mask_operator``, e.g. ``{CN_MOBILE: partial}``."""
    hash_salt_env: str = "HEGUI_PII_SALT"
    """Name of the environment variable holding the salt for hashes, evidence ids and tokens."""
    vault_path: str | None = None
    """SQLite token vault for the ``token`` operator (relative to the config file); unset: no vault."""
    context_window: int = Field(default=24, ge=0, le=200)
    """Characters before a match searched for context words (``手机``, ``护照`` …)."""
    allow_list: list[str] = Field(default_factory=list)
    """Values never reported, e.g. the provider's own hotline (compared after canonicalisation)."""
    custom_recognizers: list[CustomRecognizerConfig] = Field(default_factory=list)

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, v: list[str]) -> list[str]:
        unknown = [e for e in v if e not in ENTITY_KINDS]
        if unknown:
            raise ValueError(f"unknown entity {unknown[0]!r} (known: {', '.join(ENTITY_KINDS)})")
        return v

    @model_validator(mode="after")
    def _check_operators(self) -> PIIConfig:
        kinds = set(ENTITY_KINDS) | {c.kind for c in self.custom_recognizers} | {"*"}
        unknown = [k for k in self.entity_operators if k not in kinds]
        if unknown:
            raise ValueError(f"entity_operators: unknown entity {unknown[0]!r}")
        uses_token = self.mask_operator == "token" or "token" in self.entity_operators.values()
        if uses_token and not self.vault_path:
            raise ValueError("the token mask operator needs pii.vault_path")
        return self

    def operators(self) -> dict[str, str]:
        """The operator map for :func:`hegui.masking.mask` (``"*"`` is the default)."""
        return {"*": self.mask_operator, **self.entity_operators}

    def salt(self, environ: Mapping[str, str] | None = None) -> bytes:
        """The salt from ``$<hash_salt_env>``, or the public development salt (logged once)."""
        global _warned_dev_salt
        value = (os.environ if environ is None else environ).get(self.hash_salt_env)
        if value:
            return value.encode()
        if not _warned_dev_salt:
            _warned_dev_salt = True
            log.warning(
                "$%s is not set: PII hashes and evidence ids use the public development salt",
                self.hash_salt_env,
            )
        return DEV_SALT

    def open_vault(
        self, base_dir: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> TokenVault | None:
        """The token vault at ``vault_path`` (relative to ``base_dir``), or None when unset."""
        if not self.vault_path:
            return None
        from hegui.masking import TokenVault

        path = Path(self.vault_path).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return TokenVault(path, salt=self.salt(environ))
