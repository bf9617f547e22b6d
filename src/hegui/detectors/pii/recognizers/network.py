"""E-mail addresses and IP addresses (IPv4, IPv6)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence

from hegui.detectors.pii.recognizers.base import Pattern, Recognizer, _starting
from hegui.detectors.pii.scan import Segment

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
