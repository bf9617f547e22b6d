"""Vehicle plates: province, city letter, five or six characters."""

from __future__ import annotations

from hegui.detectors.pii.recognizers.base import _NA, Pattern, Recognizer, _compact
from hegui.detectors.pii.scan import Segment

PROVINCE_ABBREVIATIONS = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


class PlateRecognizer(Recognizer):
    """Province + city letter + 5 characters (regular) or 6 (new energy, D/F first or last)."""

    kind = "CN_PLATE"
    context = ("车牌", "牌照", "号牌", "车号", "plate")
    prefilter = "[" + PROVINCE_ABBREVIATIONS + "][a-hj-np-z]"
    scan = "segment"
    # the tail (at least 4 characters, 2 of them digits) is in a segment; the province is just
    # before the segment (京a12345, 京a 12345, 京a-12345) or 3 before it (京a·12345). Plates cannot overlap
    # (each has one province character, at its start), so a window may start inside another match.
    min_length, min_digits, lead = 4, 2, 3
    patterns = (
        Pattern(
            "plate",
            "["
            + PROVINCE_ABBREVIATIONS
            + r"][a-hj-np-z][·•・ .-]?(?P<tail>[a-hj-np-z0-9]{5,6}|[a-hj-np-z0-9]{4}[挂学警港澳])"
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
