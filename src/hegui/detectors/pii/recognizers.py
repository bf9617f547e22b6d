"""PII recognizers, in the shape of Presidio's: each one a small class with its regex patterns, its
context words and a ``validate_result`` hook (checksum, calendar date, number plan), plus a registry.

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
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from hegui.detectors.pii.scan import Segment
from hegui.detectors.pii.surnames import COMPOUND, SINGLE

CONTEXT_BOOST = 0.35
"""Added to a pattern's score when a context word precedes the match (Presidio's default factor)."""

_NA = r"(?![0-9a-z])"
_NDA = r"(?![0-9])(?!-[0-9])"
_NOT_AFTER_DIGIT = ("[0-9]", "[0-9][ -]")  # no digit before, also not across one space or dash
_NOT_AFTER_ALNUM = ("[0-9a-z]",)


def _starting(first: str, rest: str, not_after: tuple[str, ...] = _NOT_AFTER_DIGIT) -> str:
    """A pattern that starts with the character class ``first`` and must not follow ``not_after``.

    The guard is a lookbehind placed *after* the first character (it covers that character too), so
    that the pattern starts with a character class: ``re`` then skips ahead to candidate characters
    in C instead of trying the lookbehind at every position, which is 5-10 times faster on Chinese
    text with few digits.
    """
    return first + "".join(f"(?<!{b}{first})" for b in not_after) + rest


@dataclass(frozen=True, slots=True)
class Pattern:
    name: str
    regex: str
    score: float
    """Score without a context word; 0 means the pattern is reported only with one."""
    context_score: float | None = None
    """Score with a context word; default ``min(1, score + CONTEXT_BOOST)``."""
    context: tuple[str, ...] | None = None
    """Context words for this pattern only (default: the recognizer's)."""


@dataclass(frozen=True, slots=True)
class RecognizerResult:
    kind: str
    start: int
    """Span in the normalised text."""
    end: int
    score: float
    pattern: str
    priority: int


class Recognizer:
    """Base class: subclasses set the ClassVars and may override :meth:`validate_result` and
    :meth:`extract`."""

    kind: ClassVar[str]
    patterns: ClassVar[tuple[Pattern, ...]]
    context: ClassVar[tuple[str, ...]] = ()
    max_length: ClassVar[int]
    prefilter: ClassVar[str] = "[0-9]"
    """Regex that must match somewhere in the text for this recognizer to run at all: texts with
    only short numbers (``25岁``) skip the recognizers of long ones. Each distinct gate is searched
    at most once per text."""
    priority: ClassVar[int] = 0
    """Breaks ties between overlapping results of equal score (higher wins)."""
    flags: ClassVar[int] = 0
    """Built-in patterns are written in lower case: the detector lower-cases the text."""
    scan: ClassVar[Literal["text", "segment", "trigger"]] = "text"
    """Where matches can be (module docstring); a wrong claim here loses findings, so the detector's
    tests compare every built-in recognizer with a whole-text scan."""
    triggers: ClassVar[tuple[str, ...]] = ()
    """``scan = "trigger"``: every pattern starts with one of these words."""
    min_length: ClassVar[int] = 1
    """``scan = "segment"``: shortest segment a result fits in (see :meth:`segment_may_match`)."""
    min_run: ClassVar[int] = 0
    """``scan = "segment"``: fewest consecutive ``\\d`` characters in a match."""
    min_digits: ClassVar[int] = 0
    """``scan = "segment"``: fewest ``\\d`` characters in a match."""
    min_letters: ClassVar[int] = 0
    """``scan = "segment"``: fewest ``a-z`` characters in a match."""
    lead: ClassVar[int] = 0
    """``scan = "segment"``: characters before a segment where a match may start (a plate's province)."""
    plain_lengths: ClassVar[frozenset[int] | None] = None
    """``scan = "segment"``: the lengths a segment of ASCII digits only can have to hold a match, when
    the patterns' guards (no digit before, none after) make a match take the whole run (None: any)."""

    def __init__(self) -> None:
        self._compiled: list[tuple[Pattern, re.Pattern[str], tuple[str, ...], float]] = []
        for p in self.patterns:
            words = tuple(w.casefold() for w in (p.context if p.context is not None else self.context))
            ctx_score = p.context_score if p.context_score is not None else min(1.0, p.score + CONTEXT_BOOST)
            self._compiled.append((p, re.compile(p.regex, self.flags), words, ctx_score))

    def validate_result(self, value: str) -> bool | None:
        """Checksum / plausibility hook: False drops the candidate, True or None keeps it."""
        return None

    def extract(self, text: str, m: re.Match[str]) -> tuple[int, int] | None:
        """The span to report for a match: the group ``v`` if the pattern has one, else the match.

        Patterns with a context trigger put ``v`` in a lookahead, so that a long value does not
        swallow the next trigger (``姓名：张三联系人：李四``)."""
        if "v" in m.re.groupindex:
            return m.span("v")
        return m.span()

    def segment_may_match(self, text: str, seg: Segment) -> bool:
        """``scan = "segment"``: can a result lie in (or, with ``lead``, end in) this segment?"""
        return (
            seg.end - seg.start >= self.min_length
            and seg.longest_run >= self.min_run
            and seg.digits >= self.min_digits
            and seg.letters >= self.min_letters
        )

    def _matches(
        self,
        regex: re.Pattern[str],
        text: str,
        windows: Sequence[tuple[int, int]] | None = None,
        starts: Sequence[int] | None = None,
    ) -> Iterator[re.Match[str]]:
        if starts is not None:
            # what finditer would find when matches can only begin at these positions
            cursor = 0
            for p in starts:
                if p >= cursor:
                    m = regex.match(text, p)
                    if m is not None:
                        yield m
                        cursor = max(m.end(), p + 1)
        elif windows is not None:
            for pos, endpos in windows:
                yield from regex.finditer(text, pos, endpos)
        else:
            yield from regex.finditer(text)

    def analyze(
        self,
        text: str,
        context_window: int,
        windows: Sequence[tuple[int, int]] | None = None,
        starts: Sequence[int] | None = None,
    ) -> list[RecognizerResult]:
        """Results over ``text`` (normalised and lower-cased), with spans in it.

        ``windows`` (``(pos, endpos)`` pairs in text order, each starting where a whole-text scan
        would not be inside a match) or ``starts`` (every position a match can begin at) restrict
        the regex search; the results are the same as over the whole text when they cover every
        match (the detector's scan guarantees that)."""
        best: dict[tuple[int, int], RecognizerResult] = {}
        for pattern, regex, words, ctx_score in self._compiled:
            for m in self._matches(regex, text, windows, starts):
                span = self.extract(text, m)
                if span is None or span[0] >= span[1]:
                    continue
                start, end = span
                if words and _has_context(text, m.start(), context_window, words):
                    score = ctx_score
                else:
                    score = pattern.score
                if score <= 0 or self.validate_result(text[start:end]) is False:
                    continue
                prev = best.get(span)
                if prev is None or score > prev.score:
                    best[span] = RecognizerResult(self.kind, start, end, score, pattern.name, self.priority)
        return list(best.values())


def _has_context(text: str, start: int, window: int, words: tuple[str, ...]) -> bool:
    before = text[max(0, start - window) : start].casefold()
    return any(w in before for w in words)


_SEPARATORS = re.compile(r"[\s\-·•・()（）]")


def _compact(value: str) -> str:
    if value.isalnum():  # no separator to remove (most values): skip the regex
        return value.upper()
    return _SEPARATORS.sub("", value).upper()


# -- 居民身份证 ----------------------------------------------------------------------------------

PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53,
     54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91}
)  # fmt: skip
"""First two digits of a GB/T 2260 region code. Only the province is checked: prefecture and county
codes change every year, and an ID from a merged county is still an ID."""

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character (ISO 7064 MOD 11-2) of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def _plausible_birth_date(year: int, month: int, day: int, today: dt.date | None = None) -> bool:
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return False
    return 1900 <= year and born <= (today or dt.date.today())


def is_valid_resident_id(value: str, today: dt.date | None = None) -> bool:
    """18-digit ID: province, real past birth date (≥ 1900), check digit. 15-digit: province, date."""
    v = _compact(value)
    if len(v) == 18:
        if not v[:17].isdigit() or int(v[:2]) not in PROVINCE_CODES:
            return False
        if not _plausible_birth_date(int(v[6:10]), int(v[10:12]), int(v[12:14]), today):
            return False
        return resident_id_check_digit(v[:17]) == v[17]
    if len(v) == 15 and v.isdigit():
        return int(v[:2]) in PROVINCE_CODES and _plausible_birth_date(
            1900 + int(v[6:8]), int(v[8:10]), int(v[10:12]), today
        )
    return False


class ResidentIdRecognizer(Recognizer):
    kind = "CN_RESIDENT_ID"
    context = ("身份证", "证件号", "身份号码", "公民身份", "id card", "identity")
    prefilter = "[0-9]{6}"
    scan = "segment"
    min_length, min_run, min_digits = 15, 6, 15
    plain_lengths = frozenset({15, 18})
    patterns = (
        Pattern(
            "id18",
            # digits-only boundaries: "ID110105…" is common, and the check digit protects us
            _starting(
                "[1-9]",
                r"\d{5}[ -]?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])[ -]?\d{3}[0-9x](?![0-9])",
                ("[0-9]",),
            ),
            1.0,
        ),
        # legacy 15-digit IDs have no check digit, so they need a context word to reach the default threshold
        Pattern(
            "id15",
            _starting("[1-9]", r"\d{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}" + _NA, _NOT_AFTER_ALNUM),
            0.4,
            0.85,
        ),
    )
    max_length = 20
    priority = 10

    def validate_result(self, value: str) -> bool:
        return is_valid_resident_id(value)


# -- phones ------------------------------------------------------------------------------------

# +86, 0086, 86, (+86), (86): the lookbehinds check the first character, already consumed by _starting
_COUNTRY_CODE = r"(?:(?<=\+)86[ -]?|(?<=0)086[ -]?|(?<=8)6[ -]?|(?<=\()\+?86\)[ -]?)"
_PHONE_CONTEXT = (
    "手机",
    "电话",
    "联系",
    "致电",
    "来电",
    "打给",
    "微信",
    "号码",
    "热线",
    "tel",
    "phone",
    "mobile",
    "call",
)


@functools.lru_cache(maxsize=4096)
def _phone_type(value: str) -> int | None:
    """phonenumbers' number type of a Chinese number, or None when it is not a valid number.

    Cached: a stream re-checks the same held-back text as chunks arrive, and phonenumbers takes
    about 20 µs per number."""
    import phonenumbers  # 35 ms to import; only texts with phone-like digits pay it

    digits = re.sub(r"\D", "", value)
    if digits.startswith("00"):
        digits = digits[2:]
    # the normaliser may have dropped a "+" next to CJK text: a leading 86 is the country code
    # when the number is not valid without it
    candidates = [digits, "+" + digits] if digits.startswith("86") else [digits]
    for raw in candidates:
        try:
            num = phonenumbers.parse(raw, "CN")
        except phonenumbers.NumberParseException:
            continue
        if num.country_code == 86 and phonenumbers.is_valid_number(num):
            break
    else:
        return None
    return int(phonenumbers.number_type(num))


class MobileRecognizer(Recognizer):
    """Regex prefilter, then ``phonenumbers`` decides (it knows which 1xx blocks are allocated)."""

    kind = "CN_MOBILE"
    context = _PHONE_CONTEXT
    prefilter = "[0-9]{4}"
    scan = "segment"
    min_length, min_run, min_digits = 11, 4, 11
    plain_lengths = frozenset({11, 13, 15})  # 138…, 86138…, 0086138…
    patterns = (
        Pattern(
            "mobile",
            _starting("1", r"[3-9]\d(?:[ -]?\d{4}){2}" + _NDA),
            0.9,
        ),
        Pattern("mobile_cc", _starting("[+0(8]", _COUNTRY_CODE + r"1[3-9]\d(?:[ -]?\d{4}){2}" + _NDA), 0.9),
    )
    max_length = 19  # "(+86) 138 0013 8000"
    priority = 5

    def validate_result(self, value: str) -> bool:
        return _phone_type(value) in (1, 2)  # MOBILE, FIXED_LINE_OR_MOBILE


class LandlineRecognizer(Recognizer):
    kind = "CN_LANDLINE"
    context = _PHONE_CONTEXT
    prefilter = "[0-9]{4}"
    scan = "segment"
    min_length, min_run, min_digits = 10, 4, 10  # 010 234 5678
    plain_lengths = frozenset(range(10, 17))  # 0 + 2-3 + 3-4 + 4 digits, or 0086 + 2-4 + 3-4 + 4
    patterns = (
        Pattern(
            "landline",
            _starting("[0(]", r"(?:(?<=\()0\d{2,3}\)|(?<=0)\d{2,3})[ -]?[2-9]\d{2,3}[ -]?\d{4}" + _NDA),
            0.7,
        ),
        Pattern(
            "landline_intl",
            _starting(
                "[+0(8]",
                # a bare 86 needs a separator after it here, or any 12 digits starting 86 would do
                r"(?:(?<=\+)86[ -]?|(?<=0)086[ -]?|(?<=8)6[ -]|(?<=\()\+?86\)[ -]?)"
                r"(?:\(0?[1-9]\d{1,2}\)|0?[1-9]\d{1,2})[ -]?[2-9]\d{2,3}[ -]?\d{4}" + _NDA,
            ),
            0.7,
        ),
    )
    max_length = 22  # "0086 (755) 8888 6666" and the like
    priority = 4

    def validate_result(self, value: str) -> bool:
        return _phone_type(value) in (0, 2)  # FIXED_LINE, FIXED_LINE_OR_MOBILE


# -- bank cards --------------------------------------------------------------------------------


def plausible_card_prefix(digits: str) -> bool:
    """Issuer prefixes of cards used in China: UnionPay 62, Visa 4, Mastercard 51–55 and 2221–2720,
    JCB 35, Discover/others 60 and 65, and the older domestic 95xx debit cards."""
    if digits.startswith(("62", "4", "35", "60", "65", "95")):
        return True
    if "51" <= digits[:2] <= "55":
        return True
    return 2221 <= int(digits[:4]) <= 2720


class BankCardRecognizer(Recognizer):
    kind = "BANK_CARD"
    context = ("卡号", "银行卡", "信用卡", "储蓄卡", "借记卡", "账号", "帐号", "转账", "汇款", "开户", "card")
    prefilter = "[0-9]{4}"
    scan = "segment"
    min_length, min_run, min_digits = 16, 4, 16
    plain_lengths = frozenset(range(16, 20))
    patterns = (
        Pattern("card", _starting("[1-9]", r"\d{15,18}" + _NDA), 0.9),
        # groups of four with one consistent separator: 6222 0212 3456 7890 123
        Pattern(
            "card_grouped",
            _starting(
                "[1-9]", r"\d{3}(?P<s>[ -])\d{4}(?:(?P=s)\d{4}){2}(?:(?P=s)\d{1,3})?(?![0-9])(?!(?P=s)\d)"
            ),
            0.9,
        ),
    )
    max_length = 23
    priority = 3

    def validate_result(self, value: str) -> bool:
        from stdnum import luhn

        digits = _compact(value)
        return 16 <= len(digits) <= 19 and plausible_card_prefix(digits) and luhn.is_valid(digits)


# -- 统一社会信用代码 --------------------------------------------------------------------------


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)  # GB 32100-2015


class UsccRecognizer(Recognizer):
    kind = "CN_USCC"
    context = ("信用代码", "统一社会", "营业执照", "税号", "uscc")
    prefilter = "[0-9]{6}"
    scan = "segment"
    min_length, min_run, min_digits = 18, 6, 6
    plain_lengths = frozenset({18})
    patterns = (
        Pattern(
            "uscc",
            _starting(
                "[0-9a-hj-npqrtuwxy]",
                r"[0-9a-hj-npqrtuwxy]\d{6}[0-9a-hj-npqrtuwxy]{10}" + _NA,
                _NOT_AFTER_ALNUM,
            ),
            1.0,
        ),
    )
    max_length = 18
    priority = 8

    def validate_result(self, value: str) -> bool:
        from stdnum.cn import uscc

        value = value.upper()
        # stdnum's check, first done here without its exceptions: an 18-digit resident ID also
        # matches the pattern, and stdnum takes several times longer to reject it
        head = value[:8]
        if len(value) != 18 or not (
            head.isascii() and head.isdigit() and all(c in _USCC_VALUES for c in value[8:])
        ):
            return False
        total = sum(_USCC_VALUES[c] * w for c, w in zip(value[:17], _USCC_WEIGHTS, strict=True))
        if _USCC_ALPHABET[(31 - total) % 31] != value[17]:
            return False
        return bool(uscc.is_valid(value))


# -- e-mail ------------------------------------------------------------------------------------

EMAIL_HOLDBACK = 64
"""A stream holds back this many characters for e-mail addresses; longer addresses are still found in
whole texts, but a stream may release their first characters before the address is complete."""


_EMAIL_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._%+-")


class EmailRecognizer(Recognizer):
    kind = "EMAIL"
    context = ("邮箱", "邮件", "email", "e-mail", "mail")
    prefilter = "@"
    patterns = (
        Pattern(
            "email",
            r"(?<![a-z0-9._%+-])[a-z0-9._%+-]{1,64}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}(?![a-z0-9-])",
            0.95,
        ),
    )
    max_length = EMAIL_HOLDBACK
    priority = 2

    def _matches(
        self,
        regex: re.Pattern[str],
        text: str,
        windows: Sequence[tuple[int, int]] | None = None,
        starts: Sequence[int] | None = None,
    ) -> Iterator[re.Match[str]]:
        # search only around each "@": the local part is at most 64 characters before it, and
        # after the previous "@"
        prev = -1
        at = text.find("@")
        while at != -1:
            lo = max(0, at - 64, prev + 1)
            start = at
            while start > lo and text[start - 1] in _EMAIL_LOCAL_CHARS:
                start -= 1
            m = regex.match(text, start, at + 256)
            if m is not None:
                yield m
                prev, at = at, text.find("@", max(m.end(), at + 1))
            else:
                prev, at = at, text.find("@", at + 1)

    def validate_result(self, value: str) -> bool:
        local = value.split("@", 1)[0]
        return not (local.startswith(".") or local.endswith(".") or ".." in value)


# -- passports and travel permits -------------------------------------------------------------


class PassportRecognizer(Recognizer):
    kind = "PASSPORT"
    context = ("护照", "passport")
    prefilter = "[0-9]{6}"
    scan = "segment"
    min_length, min_run, min_digits, min_letters = 7, 6, 6, 1  # a123456
    patterns = (
        # Chinese passports: E/G + 8 digits, and the 2019+ E + letter + 7 digits
        Pattern("cn_passport", _starting("[eg]", r"\d{8}" + _NA, _NOT_AFTER_ALNUM), 0.6),
        Pattern("cn_passport_new", _starting("e", r"[a-hj-np-z]\d{7}" + _NA, _NOT_AFTER_ALNUM), 0.6),
        Pattern("passport_other", _starting("[a-z]", r"[a-z]?\d{6,9}" + _NA, _NOT_AFTER_ALNUM), 0.0, 0.75),
    )
    max_length = 11
    priority = 2


class HkMoPermitRecognizer(Recognizer):
    """往来港澳通行证 (C/W + 8 digits, C + letter + 7 digits) and 回乡证 (H/M + 8 or 10 digits)."""

    kind = "HK_MO_PERMIT"
    context = ("通行证", "港澳", "回乡证", "香港", "澳门", "来往内地", "permit")
    prefilter = "[0-9]{6}"
    scan = "segment"
    min_length, min_run, min_digits, min_letters = 9, 7, 7, 1  # ca1234567
    patterns = (
        Pattern("hk_mo_permit", _starting("[cw]", r"\d{8}" + _NA, _NOT_AFTER_ALNUM), 0.4, 0.9),
        Pattern("hk_mo_permit_new", _starting("c", r"[a-hj-np-z]\d{7}" + _NA, _NOT_AFTER_ALNUM), 0.4, 0.9),
        Pattern(
            "home_return_permit", _starting("[hm]", r"\d{8}(?:\d{2})?" + _NA, _NOT_AFTER_ALNUM), 0.4, 0.9
        ),
    )
    max_length = 11
    priority = 2


class TwPermitRecognizer(Recognizer):
    """大陆居民往来台湾通行证 (L + 8 digits) and 台湾居民来往大陆通行证 (台胞证: 8 digits, old 10 + letter)."""

    kind = "TW_PERMIT"
    context = ("台湾", "台胞", "通行证", "入台", "permit")
    prefilter = "[0-9]{6}"
    scan = "segment"
    min_length, min_run, min_digits = 8, 8, 8
    plain_lengths = frozenset({8, 10})  # 台胞证 numbers; L… needs a letter
    patterns = (
        Pattern("tw_permit", _starting("l", r"\d{8}" + _NA, _NOT_AFTER_ALNUM), 0.4, 0.9),
        Pattern(
            "mtp",
            _starting("[0-9]", r"\d{7}(?:\d{2}(?:\([a-z]\))?)?" + _NDA),
            0.0,
            0.85,
            context=("台胞证", "台湾居民来往大陆通行证", "来往大陆通行证"),
        ),
    )
    max_length = 13
    priority = 1


# -- vehicle plates ----------------------------------------------------------------------------

PROVINCE_ABBREVIATIONS = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


class PlateRecognizer(Recognizer):
    """Province + city letter + 5 characters (regular) or 6 (new energy, D/F first or last)."""

    kind = "CN_PLATE"
    context = ("车牌", "牌照", "号牌", "车号", "plate")
    prefilter = "[" + PROVINCE_ABBREVIATIONS + "][a-hj-np-z]"
    scan = "segment"
    # the tail (at least 4 characters, 2 of them digits) is in a segment; the province is just
    # before the segment (京a12345, 京a 12345) or 3 before it (京a·12345). Plates cannot overlap
    # (each has one province character, at its start), so a window may start inside another match.
    min_length, min_digits, lead = 4, 2, 3
    patterns = (
        Pattern(
            "plate",
            "["
            + PROVINCE_ABBREVIATIONS
            + r"][a-hj-np-z][·•・ ]?(?P<tail>[a-hj-np-z0-9]{5,6}|[a-hj-np-z0-9]{4}[挂学警港澳])"
            + _NA,
            0.8,
            1.0,
        ),
    )
    max_length = 9
    priority = 1

    def segment_may_match(self, text: str, seg: Segment) -> bool:
        s = seg.start
        province = (s >= 1 and text[s - 1] in PROVINCE_ABBREVIATIONS) or (
            s >= 3 and text[s - 3] in PROVINCE_ABBREVIATIONS
        )
        return province and super().segment_may_match(text, seg)

    def validate_result(self, value: str) -> bool:
        tail = _compact(value)[2:]
        if len(tail) == 6:  # new energy: D/F + alnum + 4 digits, or 5 digits + D/F
            return (tail[0] in "DF" and tail[2:].isdigit()) or (tail[:5].isdigit() and tail[5] in "DF")
        return sum(c.isdigit() for c in tail) >= 2


# -- IP addresses ------------------------------------------------------------------------------


class IpAddressRecognizer(Recognizer):
    kind = "IP_ADDRESS"
    context = ("ip", "服务器", "server", "host", "登录", "登陆", "访问")
    prefilter = r"[0-9]\.[0-9]"
    scan = "segment"
    min_length, min_digits = 7, 4
    plain_lengths = frozenset()  # an address has dots or colons
    patterns = (
        Pattern(
            "ipv4",
            _starting("[0-9]", r"\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\.?[0-9])", ("[0-9a-z.]",)),
            0.6,
            0.95,
        ),
    )
    max_length = 15
    priority = 1

    def segment_may_match(self, text: str, seg: Segment) -> bool:
        return text.count(".", seg.start, seg.end) >= 3 and super().segment_may_match(text, seg)

    def validate_result(self, value: str) -> bool:
        if ":" in value and not any(c.isdigit() for c in value):
            return False
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True


class Ipv6Recognizer(IpAddressRecognizer):
    """IPv6 has its own gate (two colons close together), which plain text almost never has."""

    prefilter = ":[0-9a-f]{0,4}:"
    # "::1"; a valid address has an ASCII digit (ipaddress rejects other digits)
    min_length, min_digits = 3, 1
    patterns = (
        Pattern(
            "ipv6",
            _starting(
                "[0-9a-f:]",
                # the rest after the first character: after ":" one to six more groups, after a hex
                # digit up to three more digits and two to seven groups
                r"(?:(?<=:)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){1,6}|(?<=[0-9a-f])[0-9a-f]{0,3}(?::[0-9a-f]{0,4}){2,7})"
                r"(?:\.\d{1,3}){0,3}(?![0-9a-z:.])",
                ("[0-9a-z:]",),
            ),
            0.8,
            0.95,
        ),
    )
    max_length = 45

    def segment_may_match(self, text: str, seg: Segment) -> bool:
        return text.count(":", seg.start, seg.end) >= 2 and Recognizer.segment_may_match(self, text, seg)


# -- context-introduced values: addresses and names ------------------------------------------

ADDRESS_TRIGGERS = (
    "收货地址", "家庭住址", "通讯地址", "联系地址", "居住地址", "详细地址", "邮寄地址", "住址", "地址",
    "居住在", "家住", "住在", "现居", "现住", "寄到", "寄往", "送到", "邮寄到",
)  # fmt: skip
_ADDRESS_TOKENS = re.compile(
    r"省|市|区|县|镇|乡|村|路|街|道|巷|弄|胡同|号|栋|幢|楼|室|单元|小区|大厦|公寓|花园|新村|苑|屯|旗|盟|州|广场|园区|社区|座|层"
)
_ADDRESS_STOP = re.compile(
    r"的|附近|旁边|对面|这|那|哪|什么|吗|呢|吧|啊|了|我|你|他|她|和|但|因为|所以|请|谢谢|可以|已经|现在|一直|很|不|没|也|都|就|还|要|想|会|能"
)
_ADDRESS_MAX_VALUE = 40


class AddressRecognizer(Recognizer):
    """The value after ``地址：``, ``住在`` …, cut at the first word that cannot be part of an address
    and trimmed to its last address token (``路``, ``号``, ``室`` … and the unit number after it)."""

    kind = "ADDRESS"
    prefilter = "|".join(ADDRESS_TRIGGERS)
    scan = "trigger"
    triggers = ADDRESS_TRIGGERS
    patterns = (
        Pattern(
            "address",
            "(?:"
            + "|".join(ADDRESS_TRIGGERS)
            + r")(?:是|为|在)?[:：]?\s?(?=(?P<v>[\u4e00-\u9fff0-9a-z#\-]{2,40}))",
            0.75,
        ),
    )
    max_length = 4 + 3 + _ADDRESS_MAX_VALUE

    def extract(self, text: str, m: re.Match[str]) -> tuple[int, int] | None:
        start, end = m.span("v")
        value = text[start:end]
        stop = _ADDRESS_STOP.search(value)
        if stop:
            value = value[: stop.start()]
        tokens = list(_ADDRESS_TOKENS.finditer(value))
        if not tokens:
            return None
        cut = tokens[-1].end()
        tail = re.match(r"[0-9a-z\-#]+(?:号|室|楼|层)?", value[cut:])
        if tail:
            cut += tail.end()
        value = value[:cut]
        has_number = any(c.isdigit() for c in value)
        if len({t.group() for t in tokens if t.end() <= cut}) < 2 and not has_number:
            return None  # "住在北京市" names a city, not an address
        return start, start + cut


NAME_TRIGGERS_LABELLED = ("姓名", "联系人", "收件人", "收货人", "寄件人")
NAME_TRIGGERS_COLON = ("持卡人", "户主", "患者", "当事人", "申请人", "乘客", "名字")
"""Labels that are also ordinary words (``患者麻醉``): only with a colon after them."""
NAME_TRIGGERS_SPOKEN = ("我的名字是", "我的名字叫", "我的名字", "名字叫", "我叫", "名叫")
_NAME_STOP_CHARS = frozenset(
    "是的了在和与跟同今年岁来去住说我你他她它们吗呢吧啊哦嗯也就都还又很有个这那哪么什为从到给被把让请"
)
_NAME_STOP_WORDS = (
    "先生", "女士", "小姐", "老师", "师傅", "医生", "同学", "经理", "老板", "阿姨", "叔叔", "主任", "律师", "教授",
    "护士", "总", "性别", "年龄", "电话", "手机", "身份", "地址", "民族", "籍贯", "职业", "学历", "出生", "生日",
    "邮箱", "证件", "单位", "昵称", "长相", "状态", "背景", *NAME_TRIGGERS_LABELLED, *NAME_TRIGGERS_COLON,
)  # fmt: skip
"""Titles and the next field of a form: a name ends before them (``姓名：白性别：男``)."""
_NOT_NAMES = (
    "明天", "明年", "明白", "高兴", "关于", "安全", "方便", "文件", "时候", "时间", "程序", "管理", "全部", "全家",
    "师傅", "司机", "车来", "车去", "成功", "宁可", "向你", "向他", "万一", "国家", "平时", "江湖", "海里", "云端",
    "未知", "不详", "保密", "匿名", "无",
)  # fmt: skip
_NAME_MAX = 10


class PersonNameRecognizer(Recognizer):
    """A name after ``姓名：``, ``我叫`` …. After a form label (``姓名：``) any name up to 10 characters
    (``穆罕默德·阿里``); after spoken words (``我叫``) a known surname and one or two characters."""

    kind = "PERSON_NAME"
    prefilter = "|".join(NAME_TRIGGERS_LABELLED + NAME_TRIGGERS_COLON + NAME_TRIGGERS_SPOKEN)
    scan = "trigger"
    triggers = NAME_TRIGGERS_LABELLED + NAME_TRIGGERS_COLON + NAME_TRIGGERS_SPOKEN
    patterns = (
        # a form field: label and colon, then any name (also transliterated: 穆罕默德·阿里)
        Pattern(
            "name_form",
            "(?:"
            + "|".join(NAME_TRIGGERS_LABELLED + NAME_TRIGGERS_COLON)
            + ")(?P<form>[:：])"
            + rf"\s?(?=(?P<v>[\u4e00-\u9fff][\u4e00-\u9fff·•]{{1,{_NAME_MAX - 1}}}))",
            0.85,
        ),
        # a label without colon (姓名张三) or spoken words (我叫张三): a known surname is required
        Pattern(
            "name_label",
            "(?:" + "|".join(NAME_TRIGGERS_LABELLED) + r")(?:是|为)?\s?(?=(?P<v>[\u4e00-\u9fff]{2,4}))",
            0.75,
        ),
        Pattern(
            "name_spoken",
            "(?:"
            + "|".join(NAME_TRIGGERS_SPOKEN)
            + r")(?<!改名叫)(?:是|叫)?[:：]?\s?(?=(?P<v>[\u4e00-\u9fff]{2,4}))",
            0.65,
        ),
    )
    max_length = 6 + 1 + _NAME_MAX

    def extract(self, text: str, m: re.Match[str]) -> tuple[int, int] | None:
        start, end = m.span("v")
        value = text[start:end]
        if value.startswith(_NOT_NAMES) or value.startswith(_NAME_STOP_WORDS) or value[0] in _NAME_STOP_CHARS:
            return None
        if "form" in m.re.groupindex:
            first, limit = 1, _NAME_MAX
        else:
            if value[:2] in COMPOUND:
                first = 2
            elif value[0] in SINGLE:
                first = 1
            else:
                return None
            limit = first + 2
        n = first
        while n < min(len(value), limit):
            if value[n] in _NAME_STOP_CHARS or value.startswith(_NAME_STOP_WORDS, n):
                break
            n += 1
        n = len(value[:n].rstrip("·•"))
        if n < 2:
            return None
        return start, start + n


# -- registry ----------------------------------------------------------------------------------

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
