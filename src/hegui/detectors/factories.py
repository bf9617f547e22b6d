"""Factories that build each built-in detector from the root config (see ``registry.BUILTIN``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.detectors.base import Detector


def lexicon(cfg: HeguiConfig) -> Detector | None:
    return None


def pii(cfg: HeguiConfig) -> Detector | None:
    return None


def injection(cfg: HeguiConfig) -> Detector | None:
    return None


def classifier(cfg: HeguiConfig) -> Detector | None:
    return None


def guard(cfg: HeguiConfig) -> Detector | None:
    return None
