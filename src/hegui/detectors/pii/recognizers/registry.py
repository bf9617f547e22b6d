"""The built-in recognizers, recognizers made from config, and the registry a detector runs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from hegui.detectors.pii.recognizers.address import AddressRecognizer
from hegui.detectors.pii.recognizers.base import Pattern, Recognizer
from hegui.detectors.pii.recognizers.finance import BankCardRecognizer, UsccRecognizer
from hegui.detectors.pii.recognizers.identity import (
    HkMoPermitRecognizer,
    PassportRecognizer,
    ResidentIdRecognizer,
    TwPermitRecognizer,
)
from hegui.detectors.pii.recognizers.name import PersonNameRecognizer
from hegui.detectors.pii.recognizers.network import EmailRecognizer, IpAddressRecognizer, Ipv6Recognizer
from hegui.detectors.pii.recognizers.phone import LandlineRecognizer, MobileRecognizer
from hegui.detectors.pii.recognizers.vehicle import PlateRecognizer

BUILTIN_RECOGNIZERS: tuple[type[Recognizer], ...] = (
    ResidentIdRecognizer,
    MobileRecognizer,
    LandlineRecognizer,
    BankCardRecognizer,
    UsccRecognizer,
    EmailRecognizer,
    PassportRecognizer,
    HkMoPermitRecognizer,
    TwPermitRecognizer,
    PlateRecognizer,
    IpAddressRecognizer,
    Ipv6Recognizer,
    AddressRecognizer,
    PersonNameRecognizer,
)

ENTITY_KINDS: tuple[str, ...] = tuple(dict.fromkeys(r.kind for r in BUILTIN_RECOGNIZERS))


class PatternRecognizer(Recognizer):
    """A recognizer made from config (``pii.custom_recognizers``): patterns and context words only."""

    kind = "CUSTOM"
    patterns = ()
    flags = re.IGNORECASE
    max_length = 64

    def __init__(
        self,
        kind: str,
        patterns: Iterable[Pattern],
        context: Iterable[str] = (),
        max_length: int = 64,
    ) -> None:
        # instance attributes shadow the ClassVars so one class serves every configured recognizer
        vars(self).update(
            kind=kind, patterns=tuple(patterns), context=tuple(context), max_length=max_length, prefilter="."
        )
        super().__init__()

    def extract(self, text: str, m: re.Match[str]) -> tuple[int, int] | None:
        span = super().extract(text, m)
        if span is None or span[1] - span[0] > self.max_length:
            return None
        return span


class RecognizerRegistry:
    """The recognizers a detector runs, in order."""

    def __init__(self, recognizers: Iterable[Recognizer] = ()) -> None:
        self.recognizers: list[Recognizer] = list(recognizers)

    @classmethod
    def default(cls, entities: Iterable[str] | None = None) -> RecognizerRegistry:
        wanted = set(ENTITY_KINDS if entities is None else entities)
        return cls(r() for r in BUILTIN_RECOGNIZERS if r.kind in wanted)

    def add(self, recognizer: Recognizer) -> None:
        self.recognizers.append(recognizer)

    def __iter__(self) -> Iterator[Recognizer]:
        return iter(self.recognizers)

    def __len__(self) -> int:
        return len(self.recognizers)

    @property
    def kinds(self) -> list[str]:
        return [r.kind for r in self.recognizers]

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"kind": r.kind, "patterns": [p.name for p in r.patterns], "max_length": r.max_length}
            for r in self.recognizers
        ]
