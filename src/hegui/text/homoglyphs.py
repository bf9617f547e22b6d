"""The small, documented tables behind character folding (see ``docs/text.md``).

NFKC already folds full-width forms, circled/parenthesised letters and digits, Kangxi radicals,
CJK compatibility ideographs and mathematical letters. These tables add what NFKC leaves alone but
filter dodgers use. Each entry is here because it *looks like* its target in ordinary fonts; the
tables are deliberately small, because every fold also merges words that were different.
"""

from __future__ import annotations


def _pairs(spec: str) -> dict[str, str]:
    """``"аa еe"`` → ``{"а": "a", "е": "e"}`` (whitespace-separated two-character pairs)."""
    out: dict[str, str] = {}
    for pair in spec.split():
        if len(pair) != 2:
            raise ValueError(f"bad homoglyph pair {pair!r}")
        out[pair[0]] = pair[1]
    return out


# Cyrillic and Greek letters that render like Latin ones (the classic mixed-script spoof).
CYRILLIC_GREEK = _pairs(
    "аa вb еe ѐe ёe кk мm нh оo рp сc тt уy хx іi їi јj ѕs ԁd ԛq ԝw ӏl һh ɡg "
    "АA ВB ЕE ЀE ЁE КK МM НH ОO РP СC ТT УY ХX ІI ЇI ЈJ ЅS ԚQ ԜW Ӏl "
    "αa βb εe ηn ιi κk νv οo ρp τt υu χx ωw "
    "ΑA ΒB ΕE ΖZ ΗH ΙI ΚK ΜM ΝN ΟO ΡP ΤT ΥY ΧX"
)

# Digits and letters in enclosed/dingbat forms that have no NFKC decomposition.
ENCLOSED: dict[str, str] = {
    "〇": "0",  # CJK "zero" in dates and numbers (二〇二三) and as a round letter O
    "⓿": "0",
    **{chr(0x2776 + i): str(i + 1) for i in range(9)},  # ❶…❾ dingbat negative circled digits
    **{chr(0x2780 + i): str(i + 1) for i in range(9)},  # ➀…➈ dingbat circled sans-serif digits
    **{chr(0x278A + i): str(i + 1) for i in range(9)},  # ➊…➒ dingbat negative circled sans-serif
    **{chr(0x24F5 + i): str(i + 1) for i in range(9)},  # ⓵…⓽ double circled digits
    **{chr(0x1F150 + i): chr(ord("a") + i) for i in range(26)},  # 🅐…🅩 negative circled letters
    **{chr(0x1F170 + i): chr(ord("a") + i) for i in range(26)},  # 🅰…🆉 negative squared letters
}

# Multi-character expansions for dingbat tens (➉ etc.), kept out of the 1:1 table.
ENCLOSED_EXPANSIONS: dict[str, str] = {"❿": "10", "➉": "10", "➓": "10", "⓾": "10"}

# CJK radical-supplement forms (U+2E80…) that are drawn exactly like a common ideograph; NFKC maps
# only two of them. Used to write 氵去 车仑 style split characters or to swap in a look-alike.
CJK_RADICALS = _pairs(
    "⺀冫 ⺁厂 ⺇几 ⺎兀 ⺓幺 ⺔彐 ⺗心 ⺙攵 ⺜日 ⺝月 ⺟母 ⺠民 ⺡氵 ⺢氺 ⺣灬 ⺤爫 ⺦丬 ⺨犭 ⺩王 "
    "⺫罒 ⺬示 ⺭礻 ⺯糸 ⺰纟 ⺶羊 ⺹耂 ⺼肉 ⺾艹 ⻁虎 ⻂衤 ⻄西 ⻅见 ⻆角 ⻈讠 ⻉贝 ⻋车 ⻍辶 ⻏阝 "
    "⻐钅 ⻑長 ⻓长 ⻔门 ⻖阝 ⻗雨 ⻘青 ⻙韦 ⻚页 ⻛风 ⻜飞 ⻝食 ⻠饣 ⻢马 ⻣骨 ⻤鬼 ⻥鱼 ⻦鸟 "
    "⻧卤 ⻨麦 ⻩黄 ⻪黾 ⻬齐 ⻭齿 ⻯龙"
)

# Ideographs that are visually identical to another, more common one (not covered by NFKC or t2s).
CJK_VARIANTS = _pairs("囗口")

HOMOGLYPHS: dict[str, str] = {**CYRILLIC_GREEK, **ENCLOSED, **CJK_RADICALS, **CJK_VARIANTS}

# Characters that render as nothing (or as blank) but are not Unicode format characters, so the
# category-based rule (Cf, Mn, Me, Cc) misses them: Hangul fillers and the Mongolian vowel separator.
INVISIBLE: frozenset[str] = frozenset("\u115f\u1160\u3164\uffa0\u180e\u2800")

# Punctuation (besides dashes Pd, connectors Pc and all symbols S*) that counts as a separator
# *between* CJK characters. Chinese sentence punctuation (，。、：；！？ and their ASCII forms after
# NFKC) is deliberately NOT here: removing it would join the end of one clause to the start of the
# next (打赌，博士 → 赌博).
SEPARATOR_PUNCTUATION: frozenset[str] = frozenset("*./\\#@&%·•・‧∙⋅")

# NFKC expansions we refuse: the Chinese ellipsis ……  would become ...... (slow path and a
# separator run in nearly every chat message).
NFKC_KEEP: frozenset[str] = frozenset("…‥")
