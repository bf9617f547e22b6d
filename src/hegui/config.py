"""One config file, ``hegui.yaml``, validated by pydantic.

Every section has embedded defaults, so hegui runs with no file at all. Relative paths in the file
are resolved against the file's folder. Environment variables override keys:
``HEGUI__LEDGER__URL=postgresql+psycopg://…`` sets ``ledger.url`` (double underscores separate
levels; values are parsed as YAML scalars, so ``true``/``8080`` become bool/int).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from hegui.accounts.config import AccountsConfig
from hegui.annotation.config import AnnotationConfig
from hegui.assessment.config import AssessmentConfig
from hegui.cases.config import CasesConfig
from hegui.corpus.config import CorpusConfig
from hegui.detectors.ads import AdsConfig
from hegui.detectors.classifier import ClassifierConfig
from hegui.detectors.guard import GuardConfig
from hegui.detectors.injection import InjectionConfig
from hegui.detectors.lexicon import LexiconConfig
from hegui.detectors.pii import PIIConfig
from hegui.errors import ConfigError
from hegui.filing.config import FilingConfig
from hegui.gateway.config import GatewayConfig, UpstreamConfig
from hegui.labeling.config import LabelingConfig
from hegui.ledger.config import LedgerConfig
from hegui.web.config import ConsoleConfig, PortalConfig
from hegui.yamlsource import LocatedYaml, parse_yaml, validate

ENV_PREFIX = "HEGUI__"


class ProviderConfig(BaseModel):
    """Who provides the service: used in labels and the filing package."""

    model_config = ConfigDict(extra="forbid")
    name: str = "hegui-demo"
    """Provider name (written as ``ContentProducer`` when no ``uscc`` is set)."""
    uscc: str | None = None
    """统一社会信用代码 (18 characters, checksum validated) for the 27-character provider code."""
    service_code: str = "0000"
    """4-character self-assigned model/app code (0-9, A-Z) in the provider code."""


class HeguiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: ProviderConfig = Field(default_factory=ProviderConfig)
    policy: str | None = None
    """Path of the policy YAML; unset means the starter policy shipped with hegui."""
    lexicon: LexiconConfig = Field(default_factory=LexiconConfig)
    pii: PIIConfig = Field(default_factory=PIIConfig)
    injection: InjectionConfig = Field(default_factory=InjectionConfig)
    ads: AdsConfig = Field(default_factory=AdsConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    upstreams: list[UpstreamConfig] = Field(default_factory=lambda: [UpstreamConfig()])
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    labeling: LabelingConfig = Field(default_factory=LabelingConfig)
    accounts: AccountsConfig = Field(default_factory=AccountsConfig)
    cases: CasesConfig = Field(default_factory=CasesConfig)
    portal: PortalConfig = Field(default_factory=PortalConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    assessment: AssessmentConfig = Field(default_factory=AssessmentConfig)
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig)
    filing: FilingConfig = Field(default_factory=FilingConfig)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="(defaults)")

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the config are resolved against."""
        return self._base_dir

    @property
    def source(self) -> str:
        return self._source

    def resolve_path(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self._base_dir / p


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    cur: Any = data
    for k in keys[:-1]:
        nxt = cur.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[k] = nxt
        cur = nxt
    cur[keys[-1]] = value


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        _set_path(data, keys, value)
    return data


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> HeguiConfig:
    """Load ``path`` (or the defaults), apply ``HEGUI__…`` overrides, validate.

    Raises :class:`ConfigError` with ``file:line: field: message`` on a bad file.
    """
    env = os.environ if environ is None else environ
    if path is None:
        located = LocatedYaml("(defaults)", {}, {})
        base = Path.cwd()
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read config ({exc})") from None
        located = parse_yaml(text, str(p))
        base = p.resolve().parent
    if located.data is None:
        located.data = {}
    if not isinstance(located.data, dict):
        raise ConfigError(f"{located.source}:1: the config must be a mapping of sections")
    located.data = apply_env_overrides(dict(located.data), env)
    cfg = validate(HeguiConfig, located)
    cfg._base_dir = base
    cfg._source = located.source
    return cfg
