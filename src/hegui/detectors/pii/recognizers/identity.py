"""Identity documents: 居民身份证 (GB 11643 check digit), passports, 港澳 and 台湾 travel permits."""

from __future__ import annotations

import datetime as dt

from hegui.detectors.pii.recognizers.base import (
    _DIGITS6,
    _NA,
    _NDA,
    _NOT_AFTER_ALNUM,
    _NOT_IN_ALNUM_RUN,
    _NOT_IN_RUN,
    _RUN_END,
    _RUN_END_ALNUM,
    SEP,
    Pattern,
    Recognizer,
    _compact,
    _grouped,
    _starting,
)

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


_S = f"{SEP}?"
_ID18_REST = (
    _grouped(5)  # the rest of the region code
    + rf"{_S}(?:1{_S}[89]|2{_S}0){_grouped(2)}{_S}[01]{_S}\d{_S}[0-3]{_S}\d"  # roughly a date: validate_result checks it
    + rf"{_grouped(3)}{_S}[0-9x](?![0-9])"
)


class ResidentIdRecognizer(Recognizer):
    """18 characters in any grouping (``110105 19780928 9465``, ``1101 0519 7809 2894 65``,
    ``110105-197809-289465``, one digit at a time …): province, birth date and check digit are
    checked on the compacted value, which 18 random digits pass about once in 50,000."""

    kind = "CN_RESIDENT_ID"
    context = ("身份证", "证件号", "身份号码", "公民身份", "id card", "identity")
    prefilter = _DIGITS6
    scan = "segment"
    min_length, min_run, min_digits = 15, 1, 15
    plain_lengths = frozenset({15, 18})
    # an 18-character ID is found anywhere in a run already (its guards read only the digits next to
    # it), and a plain 15-digit one too; a grouped 15-digit one is a whole run unless split
    split_lengths, split_patterns = frozenset({15}), ("id15_grouped",)
    split_prefix = "|".join(map(str, sorted(PROVINCE_CODES)))
    patterns = (
        Pattern(
            "id18",
            # digits-only boundaries: "ID110105…" is common, and the check digit protects us. The
            # value is in a lookahead, so a candidate may start inside a failed one (module docstring)
            _starting("[1-9]", f"(?=(?P<more>{_ID18_REST}))", ("[0-9]",)),
            1.0,
        ),
        # legacy 15-digit IDs have no check digit, so they need a context word to reach the default threshold
        Pattern(
            "id15",
            _starting("[1-9]", r"\d{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}" + _NA, _NOT_AFTER_ALNUM),
            0.4,
            0.85,
        ),
        Pattern(
            "id15_grouped", _starting("[1-9]", _grouped(14) + _RUN_END_ALNUM, _NOT_IN_ALNUM_RUN), 0.4, 0.85
        ),
    )
    max_length = 35  # 18 characters and 17 separators
    priority = 10

    def validate_result(self, value: str) -> bool:
        return is_valid_resident_id(value)


# -- passports and travel permits -------------------------------------------------------------


class PassportRecognizer(Recognizer):
    kind = "PASSPORT"
    context = ("护照", "passport")
    prefilter = _DIGITS6
    scan = "segment"
    min_length, min_run, min_digits, min_letters = 7, 1, 6, 1  # a123456
    patterns = (
        # Chinese passports: E/G + 8 digits, and the 2019+ E + letter + 7 digits
        Pattern("cn_passport", _starting("[eg]", r"\d{8}" + _NA, _NOT_AFTER_ALNUM), 0.6),
        Pattern("cn_passport_new", _starting("e", r"[a-hj-np-z]\d{7}" + _NA, _NOT_AFTER_ALNUM), 0.6),
        Pattern("passport_other", _starting("[a-z]", r"[a-z]?\d{6,9}" + _NA, _NOT_AFTER_ALNUM), 0.0, 0.75),
        # separated (E 1234 5678, E-12345678): no checksum, so only after a context word
        Pattern(
            "cn_passport_grouped",
            _starting("[eg]", rf"{SEP}?\d{_grouped(7)}" + _RUN_END_ALNUM, _NOT_IN_ALNUM_RUN),
            0.0,
            0.95,
        ),
        Pattern(
            "cn_passport_new_grouped",
            _starting("e", rf"{SEP}?[a-hj-np-z]{SEP}?\d{_grouped(6)}" + _RUN_END_ALNUM, _NOT_IN_ALNUM_RUN),
            0.0,
            0.95,
        ),
        Pattern(
            "passport_other_grouped",
            _starting("[a-z]", rf"[a-z]?{SEP}?\d(?:{SEP}?\d){{5,8}}" + _RUN_END_ALNUM, _NOT_IN_ALNUM_RUN),
            0.0,
            0.75,
        ),
    )
    max_length = 20  # "ab 1 2 3 4 5 6 7 8 9"
    priority = 2


class HkMoPermitRecognizer(Recognizer):
    """往来港澳通行证 (C/W + 8 digits, C + letter + 7 digits) and 回乡证 (H/M + 8 or 10 digits)."""

    kind = "HK_MO_PERMIT"
    context = ("通行证", "港澳", "回乡证", "香港", "澳门", "来往内地", "permit")
    prefilter = _DIGITS6
    scan = "segment"
    min_length, min_run, min_digits, min_letters = 9, 1, 7, 1  # ca1234567
    patterns = (
        Pattern("hk_mo_permit", _starting("[cw]", r"\d{8}" + _NA, _NOT_AFTER_ALNUM), 0.4, 0.9),
        Pattern("hk_mo_permit_new", _starting("c", r"[a-hj-np-z]\d{7}" + _NA, _NOT_AFTER_ALNUM), 0.4, 0.9),
        Pattern(
            "home_return_permit", _starting("[hm]", r"\d{8}(?:\d{2})?" + _NA, _NOT_AFTER_ALNUM), 0.4, 0.9
        ),
        # separated (C 1234 5678, H12345678 01): only after a context word
        Pattern(
            "hk_mo_permit_grouped",
            _starting("[cw]", rf"{SEP}?\d{_grouped(7)}" + _RUN_END_ALNUM, _NOT_IN_ALNUM_RUN),
            0.0,
            0.9,
        ),
        Pattern(
            "hk_mo_permit_new_grouped",
            _starting("c", rf"{SEP}?[a-hj-np-z]{SEP}?\d{_grouped(6)}" + _RUN_END_ALNUM, _NOT_IN_ALNUM_RUN),
            0.0,
            0.9,
        ),
        Pattern(
            "home_return_permit_grouped",
            _starting(
                "[hm]", rf"{SEP}?\d{_grouped(7)}(?:{_grouped(2)})?" + _RUN_END_ALNUM, _NOT_IN_ALNUM_RUN
            ),
            0.0,
            0.9,
        ),
    )
    max_length = 21  # "h 1 2 3 4 5 6 7 8 9 0"
    priority = 2


_MTP_CONTEXT = ("台胞证", "台湾居民来往大陆通行证", "来往大陆通行证")


class TwPermitRecognizer(Recognizer):
    """大陆居民往来台湾通行证 (L + 8 digits) and 台湾居民来往大陆通行证 (台胞证: 8 digits, old 10 + letter)."""

    kind = "TW_PERMIT"
    context = ("台湾", "台胞", "通行证", "入台", "permit")
    prefilter = _DIGITS6
    scan = "segment"
    min_length, min_run, min_digits = 8, 1, 8
    plain_lengths = frozenset({8, 10})  # 台胞证 numbers; L… needs a letter
    patterns = (
        Pattern("tw_permit", _starting("l", r"\d{8}" + _NA, _NOT_AFTER_ALNUM), 0.4, 0.9),
        Pattern(
            "mtp",
            _starting("[0-9]", r"\d{7}(?:\d{2}(?:\([a-z]\))?)?" + _NDA),
            0.0,
            0.85,
            context=_MTP_CONTEXT,
        ),
        # separated (L 1234 5678, 台胞证 1234 5678): only after a context word
        Pattern(
            "tw_permit_grouped",
            _starting("l", rf"{SEP}?\d{_grouped(7)}" + _RUN_END_ALNUM, _NOT_IN_ALNUM_RUN),
            0.0,
            0.9,
        ),
        Pattern(
            "mtp_grouped",
            _starting("[0-9]", _grouped(7) + rf"(?:{_grouped(2)}(?: ?\([a-z]\))?)?" + _RUN_END, _NOT_IN_RUN),
            0.0,
            0.85,
            context=_MTP_CONTEXT,
        ),
    )
    max_length = 23  # "1 2 3 4 5 6 7 8 9 0 (a)"
    priority = 1
