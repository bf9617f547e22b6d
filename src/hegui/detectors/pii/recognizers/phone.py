"""Mainland mobile and landline numbers: a regex prefilter, then ``phonenumbers`` decides."""

from __future__ import annotations

import functools
import re

from hegui.detectors.pii.recognizers.base import (
    _DIGITS4,
    _NDA_PHONE,
    _NOT_IN_RUN,
    SEP,
    Pattern,
    Recognizer,
    _grouped,
    _starting,
)

# +86, 0086, 86, (+86), (86): the lookbehinds check the first character, already consumed by _starting
_COUNTRY_CODE = rf"(?:(?<=\+)86{SEP}?|(?<=0)086{SEP}?|(?<=8)6{SEP}?|(?<=\()\+?86\){SEP}?)"
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


def _group_sizes(value: str, n: int) -> list[int]:
    """Sizes of the digit groups that hold the last ``n`` digits of ``value``, last group first
    (the first of them counted only as far as those digits go)."""
    sizes: list[int] = []
    size = digits = 0
    for c in reversed(value):
        if c.isdigit():
            size += 1
            digits += 1
            if digits == n:
                break
        elif size:
            sizes.append(size)
            size = 0
    if size:
        sizes.append(size)
    return sizes or [0]


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
    prefilter = _DIGITS4
    scan = "segment"
    min_length, min_run, min_digits = 11, 1, 11
    plain_lengths = frozenset({11, 13, 15})  # 138…, 86138…, 0086138…
    split_lengths, split_prefix = plain_lengths, "1[3-9]|86|0086"  # 138 …, +86 …, (86) …, 0086 …
    # any grouping (138 0013 8000, 1380 013 8000, 138.0013.8000, 1 3 8 0 0 1 3 8 0 0 0), from the
    # start of a run of groups; validate_result wants groups of three or more, or single digits. A
    # space and more digits may follow (手机 138 0013 8000 110105…), a dot or a dash may not
    patterns = (
        Pattern("mobile", _starting("1", rf"{SEP}?[3-9]{_grouped(9)}" + _NDA_PHONE, _NOT_IN_RUN), 0.9),
        Pattern(
            "mobile_cc",
            _starting("[+0(8]", _COUNTRY_CODE + rf"1{SEP}?[3-9]{_grouped(9)}" + _NDA_PHONE, _NOT_IN_RUN),
            0.9,
        ),
    )
    max_length = 27  # "(+86) 1 3 8 0 0 1 3 8 0 0 0"
    priority = 5

    def validate_result(self, value: str) -> bool:
        sizes = _group_sizes(value, 11)
        if not (min(sizes) >= 3 or max(sizes) == 1):
            return False  # "1 3 5 7 9 11 13 15" is counting, not a phone number
        return _phone_type(value) in (1, 2)  # MOBILE, FIXED_LINE_OR_MOBILE


class LandlineRecognizer(Recognizer):
    kind = "CN_LANDLINE"
    context = _PHONE_CONTEXT
    prefilter = "[0-9]{4}"
    scan = "segment"
    min_length, min_run, min_digits = 10, 4, 10  # 010 234 5678
    plain_lengths = frozenset(range(10, 17))  # 0 + 2-3 + 3-4 + 4 digits, or 0086 + 2-4 + 3-4 + 4
    split_lengths, split_prefix = plain_lengths, "0[1-9]|86|0086"  # 010 …, (0755) …, +86 10 …, 0086 …
    # area code, then "-", " ", "." or " - ", then the number as it is or split before its last 4
    patterns = (
        Pattern(
            "landline",
            _starting(
                "[0(]",
                r"(?:(?<=\()0\d{2,3}\)|(?<=0)\d{2,3})(?: - |[ .-])?[2-9]\d{2,3}[ .-]?\d{4}" + _NDA_PHONE,
                _NOT_IN_RUN,
            ),
            0.7,
        ),
        Pattern(
            "landline_intl",
            _starting(
                "[+0(8]",
                # a bare 86 needs a separator after it here, or any 12 digits starting 86 would do
                r"(?:(?<=\+)86[ .-]?|(?<=0)086[ .-]?|(?<=8)6[ .-]|(?<=\()\+?86\)[ .-]?)"
                r"(?:\(0?[1-9]\d{1,2}\)|0?[1-9]\d{1,2})(?: - |[ .-])?[2-9]\d{2,3}[ .-]?\d{4}" + _NDA_PHONE,
                _NOT_IN_RUN,
            ),
            0.7,
        ),
    )
    max_length = 24  # "(+86) (755) - 8888 6666" and the like
    priority = 4

    def validate_result(self, value: str) -> bool:
        return _phone_type(value) in (0, 2)  # FIXED_LINE, FIXED_LINE_OR_MOBILE
