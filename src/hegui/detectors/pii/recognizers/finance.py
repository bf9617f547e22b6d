"""Bank cards (Luhn and issuer prefix) and 统一社会信用代码 (GB 32100 check character)."""

from __future__ import annotations

from hegui.detectors.pii.recognizers.base import (
    _DIGITS6,
    _NA,
    _NDA,
    _NOT_AFTER_ALNUM,
    _NOT_IN_ALNUM_RUN,
    _NOT_IN_RUN,
    _RUN_END_ALNUM,
    Pattern,
    Recognizer,
    _compact,
    _grouped,
    _starting,
)

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
    split_lengths, split_prefix = plain_lengths, "62|4|35|60|65|95|5[1-5]|2[2-7]"  # plausible_card_prefix
    patterns = (
        Pattern("card", _starting("[1-9]", r"\d{15,18}" + _NDA), 0.9),
        # groups of four with one consistent separator: 6222 0212 3456 7890 123, 6222-…, 6222.…
        Pattern(
            "card_grouped",
            _starting(
                "[1-9]",
                r"\d{3}(?P<s>[ .-])\d{4}(?:(?P=s)\d{4}){2}(?:(?P=s)\d{1,3})?(?![0-9])(?!(?P=s)\d)",
                _NOT_IN_RUN,
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
_USCC_CHAR = "[0-9a-hj-npqrtuwxy]"


class UsccRecognizer(Recognizer):
    kind = "CN_USCC"
    context = ("信用代码", "统一社会", "营业执照", "税号", "uscc")
    prefilter = _DIGITS6
    scan = "segment"
    min_length, min_run, min_digits = 18, 1, 6
    plain_lengths = frozenset({18})
    # the plain pattern's guards read only the characters next to it: it is found in runs already
    split_lengths, split_prefix, split_patterns = frozenset({18}), "[0-9]", ("uscc_grouped",)
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
        # in groups (9111 0000 6000 3734 1L, 91 110000 600037341 L; the first 8 are digits): only
        # after a context word, as a run of numbers passes the check character one time in 31
        Pattern(
            "uscc_grouped",
            _starting("[0-9]", _grouped(7) + _grouped(10, _USCC_CHAR) + _RUN_END_ALNUM, _NOT_IN_ALNUM_RUN),
            0.0,
            1.0,
        ),
    )
    max_length = 35  # 18 characters and 17 separators
    priority = 8

    def validate_result(self, value: str) -> bool:
        from stdnum.cn import uscc

        value = _compact(value)
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
