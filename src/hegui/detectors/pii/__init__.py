"""PII detection (risk ``PI``): Chinese identifiers with checksums, phones, cards, e-mail, permits,
plates, IP addresses, and addresses and names introduced by a context word. See ``docs/pii.md``."""

from hegui.detectors.pii.config import CustomRecognizerConfig, PIIConfig
from hegui.detectors.pii.detector import PIIDetector
from hegui.detectors.pii.recognizers import (
    ENTITY_KINDS,
    Pattern,
    PatternRecognizer,
    Recognizer,
    RecognizerRegistry,
    RecognizerResult,
)

__all__ = [
    "ENTITY_KINDS",
    "CustomRecognizerConfig",
    "PIIConfig",
    "PIIDetector",
    "Pattern",
    "PatternRecognizer",
    "Recognizer",
    "RecognizerRegistry",
    "RecognizerResult",
]
