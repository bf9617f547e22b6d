"""Addresses introduced by a context word (``地址：``, ``住在`` …)."""

from __future__ import annotations

import re

from hegui.detectors.pii.recognizers.base import Pattern, Recognizer

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
