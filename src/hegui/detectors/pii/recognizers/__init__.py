"""PII recognizers, in the shape of Presidio's: each one a small class with its regex patterns, its
context words and a ``validate_result`` hook (checksum, calendar date, number plan), plus a registry.
One recognizer family a module: :mod:`.base` (``Pattern``, ``Recognizer`` and the regex helpers),
:mod:`.identity` (居民身份证, passports and permits), :mod:`.phone`, :mod:`.finance` (bank cards,
统一社会信用代码), :mod:`.network` (e-mail, IP addresses), :mod:`.vehicle` (plates), :mod:`.address`,
:mod:`.name` and :mod:`.registry`; everything is importable from this package as before.

Recognizers run on normalised, lower-cased text (NFKC, so ``１３８…`` and ``X`` arrive as ``138…``
and ``x``). A pattern has a score without context and a score when one of the recognizer's context
words appears in the ``context_window`` characters *before* the match (only before, so that a
stream never needs text it has not received yet to decide). A pattern with score 0 is reported only
with context. ``validate_result`` returning False drops the candidate.

Every recognizer declares ``max_length``, the longest span it can match in normalised characters;
the detector's hold-back is the largest of them.

``scan`` tells the detector where a recognizer's matches can be, so that it need not run every
regex over the whole text (see ``scan.py``): ``"segment"`` recognizers match only inside runs of
:data:`~hegui.detectors.pii.scan.SEGMENT_CLASS` characters and every result holds an ASCII digit or
a letter followed by a digit; ``"trigger"`` recognizers match only where one of their ``triggers``
starts; ``"text"`` recognizers (the default, and custom ones) run over the whole text.

Numbers are written the way forms print them: in groups (``1101 0519 7809 2894 65``,
``110105-197809-289465``, ``138.0013.8000``). A *grouped* pattern takes one separator of
:data:`SEP` (a space, also a full-width or no-break one after NFKC; a hyphen, also an en or em dash,
which the detector reads as ``-`` between digits; a dot) between any two characters of the value,
and its checks run on the value with the separators removed. Grouped patterns of identifiers
without a checksum (passports, permits) need a context word.

A grouped pattern reads a whole run of digit groups as one number. Where a run holds several
identifiers (``13800138000 13900139000``), the detector cuts it at the separators between them
(``hegui/detectors/pii/split.py``) for the recognizers that declare ``split_lengths``, asking them
through :meth:`Recognizer.analyze_part` about each part.
"""

from __future__ import annotations

from hegui.detectors.pii.recognizers.address import ADDRESS_TRIGGERS, AddressRecognizer
from hegui.detectors.pii.recognizers.base import (
    CONTEXT_BOOST,
    SEP,
    Pattern,
    Recognizer,
    RecognizerResult,
    _compact,
)
from hegui.detectors.pii.recognizers.finance import BankCardRecognizer, UsccRecognizer, plausible_card_prefix
from hegui.detectors.pii.recognizers.identity import (
    PROVINCE_CODES,
    HkMoPermitRecognizer,
    PassportRecognizer,
    ResidentIdRecognizer,
    TwPermitRecognizer,
    is_valid_resident_id,
    resident_id_check_digit,
)
from hegui.detectors.pii.recognizers.name import (
    NAME_TRIGGERS_COLON,
    NAME_TRIGGERS_LABELLED,
    NAME_TRIGGERS_SPOKEN,
    PersonNameRecognizer,
)
from hegui.detectors.pii.recognizers.network import (
    EMAIL_HOLDBACK,
    EmailRecognizer,
    IpAddressRecognizer,
    Ipv6Recognizer,
)
from hegui.detectors.pii.recognizers.phone import LandlineRecognizer, MobileRecognizer, _phone_type
from hegui.detectors.pii.recognizers.registry import (
    BUILTIN_RECOGNIZERS,
    ENTITY_KINDS,
    PatternRecognizer,
    RecognizerRegistry,
)
from hegui.detectors.pii.recognizers.vehicle import PROVINCE_ABBREVIATIONS, PlateRecognizer

__all__ = [
    "ADDRESS_TRIGGERS",
    "BUILTIN_RECOGNIZERS",
    "CONTEXT_BOOST",
    "EMAIL_HOLDBACK",
    "ENTITY_KINDS",
    "NAME_TRIGGERS_COLON",
    "NAME_TRIGGERS_LABELLED",
    "NAME_TRIGGERS_SPOKEN",
    "PROVINCE_ABBREVIATIONS",
    "PROVINCE_CODES",
    "SEP",
    "AddressRecognizer",
    "BankCardRecognizer",
    "EmailRecognizer",
    "HkMoPermitRecognizer",
    "IpAddressRecognizer",
    "Ipv6Recognizer",
    "LandlineRecognizer",
    "MobileRecognizer",
    "PassportRecognizer",
    "Pattern",
    "PatternRecognizer",
    "PersonNameRecognizer",
    "PlateRecognizer",
    "Recognizer",
    "RecognizerRegistry",
    "RecognizerResult",
    "ResidentIdRecognizer",
    "TwPermitRecognizer",
    "UsccRecognizer",
    "_compact",
    "_phone_type",
    "is_valid_resident_id",
    "plausible_card_prefix",
    "resident_id_check_digit",
]
