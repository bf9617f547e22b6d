"""Build the configured detectors.

Built-in detectors are listed in ``BUILTIN``; plugins register a factory under the entry-point
group ``hegui.detectors`` (``name = "package.module:factory"``), where a factory takes the
:class:`~hegui.config.HeguiConfig` and returns a :class:`Detector` or ``None`` when disabled.
Imports are lazy so that a command that needs no detector starts fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from hegui.errors import ConfigError

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.detectors.base import Detector

Factory = Callable[["HeguiConfig"], "Detector | None"]

# name -> "module:function" of a factory; order is the order detectors run and report in.
BUILTIN: dict[str, str] = {
    "lexicon": "hegui.detectors.factories:lexicon",
    "pii": "hegui.detectors.factories:pii",
    "injection": "hegui.detectors.factories:injection",
    "ads": "hegui.detectors.factories:ads",
    "classifier": "hegui.detectors.factories:classifier",
    "guard": "hegui.detectors.factories:guard",
}

ENTRY_POINT_GROUP = "hegui.detectors"


def _load(ref: str) -> Factory:
    module, _, attr = ref.partition(":")
    factory: Factory = getattr(importlib.import_module(module), attr)
    return factory


def factories() -> dict[str, Factory]:
    out = {name: _load(ref) for name, ref in BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out[ep.name] = ep.load()
    return out


def build_detectors(cfg: HeguiConfig, only: list[str] | None = None) -> list[Detector]:
    """The enabled detectors, in registry order; ``only`` restricts to the named ones."""
    available = factories()
    if only is not None:
        unknown = [n for n in only if n not in available]
        if unknown:
            raise ConfigError(f"unknown detector {unknown[0]!r} (available: {', '.join(available)})")
    detectors: list[Detector] = []
    for name, factory in available.items():
        if only is not None and name not in only:
            continue
        det = factory(cfg)
        if det is not None:
            detectors.append(det)
    return detectors
