"""Factories that build each built-in detector from the root config (see ``registry.BUILTIN``).

Each returns ``None`` when its section is disabled. Imports are local so that only the detectors a
config enables are imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.detectors.base import Detector


def lexicon(cfg: HeguiConfig) -> Detector | None:
    if not cfg.lexicon.enabled:
        return None
    from hegui.detectors.lexicon import LexiconDetector

    return LexiconDetector.from_config(cfg.lexicon, cfg.base_dir)


def pii(cfg: HeguiConfig) -> Detector | None:
    if not cfg.pii.enabled:
        return None
    from hegui.detectors.pii import PIIDetector

    return PIIDetector.from_config(cfg.pii)


def injection(cfg: HeguiConfig) -> Detector | None:
    if not cfg.injection.enabled:
        return None
    from hegui.detectors.injection import InjectionDetector

    return InjectionDetector(config=cfg.injection)


def ads(cfg: HeguiConfig) -> Detector | None:
    """A lure next to a contact handle (the structure of spam and ad posts): ``docs/ads.md``."""
    if not cfg.ads.enabled:
        return None
    from hegui.detectors.ads import AdsDetector

    return AdsDetector.from_config(cfg.ads, cfg.base_dir)


def classifier(cfg: HeguiConfig) -> Detector | None:
    from hegui.detectors.classifier import build

    return build(cfg)


def guard(cfg: HeguiConfig) -> Detector | None:
    from hegui.detectors.guard import build

    return build(cfg)
