"""The disguises ads use to slip contact handles and lure words past keyword filters.

Each function takes the text (and a seeded :class:`random.Random` where it draws) and returns the
disguised text. They are the generator's vocabulary of evasion, and each is tested by hand against
the ads detector, which must still see through it after :func:`hegui.text.normalize`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from hegui.classifier.synth._core import Style, half, load_data, pick

LOWER_NUMERALS = "〇一二三四五六七八九"
CAPITAL_NUMERALS = "零壹贰叁肆伍陆柒捌玖"
CIRCLED = "⓪①②③④⑤⑥⑦⑧⑨"
SEPARATORS: tuple[str, ...] = (" ", "*", "-", ".", "|", "/", "_", "·", "~", "、")
EMOJIS: tuple[str, ...] = ("💰", "🔥", "✅", "⭐", "❤", "🌹", "💋", "🎁", "⚡", "🍀")

_CJK = re.compile(r"[\u4e00-\u9fff]")


def fullwidth(text: str) -> str:
    """ASCII letters, digits and symbols → their full-width forms (``abc123`` → ``ａｂｃ１２３``)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def chinese_numerals(text: str, *, capital: bool = False, yao: bool = False) -> str:
    """Digits → Chinese numerals: ``138`` → ``一三八`` (``壹叁捌`` with ``capital``). ``yao`` reads
    1 as ``幺``, as people do when they say a phone number aloud."""
    table = CAPITAL_NUMERALS if capital else LOWER_NUMERALS
    out = []
    for c in text:
        if c.isascii() and c.isdigit():
            out.append("幺" if yao and c == "1" else table[int(c)])
        else:
            out.append(c)
    return "".join(out)


def circled_digits(text: str) -> str:
    """Digits → enclosed digits (``138`` → ``①③⑧``)."""
    return "".join(CIRCLED[int(c)] if c.isascii() and c.isdigit() else c for c in text)


def spaced_digits(text: str, sep: str = " ", group: int = 0) -> str:
    """Separate a digit string: ``group`` 0 puts ``sep`` between every digit, else the phone
    grouping 3-4-4 (``138 0013 8000``) when ``group`` is 4, or fixed groups of ``group``."""
    if group == 4 and len(text) == 11:
        return sep.join((text[:3], text[3:7], text[7:]))
    if group <= 0:
        return sep.join(text)
    return sep.join(text[i : i + group] for i in range(0, len(text), group))


def split_chars(text: str, sep: str) -> str:
    """Put ``sep`` between consecutive CJK characters (``赌博`` → ``赌 * 博``)."""
    out: list[str] = []
    for i, c in enumerate(text):
        if i and _CJK.match(c) and _CJK.match(text[i - 1]):
            out.append(sep)
        out.append(c)
    return "".join(out)


def insert_emoji(text: str, rng: random.Random, emojis: Sequence[str] = EMOJIS, count: int = 1) -> str:
    """Insert ``count`` emoji at random places between CJK characters (``贷款`` → ``贷💰款``)."""
    chars = list(text)
    slots = [i for i in range(1, len(chars)) if _CJK.match(chars[i]) and _CJK.match(chars[i - 1])]
    for i in sorted(rng.sample(slots, min(count, len(slots))), reverse=True):
        chars.insert(i, pick(rng, emojis))
    return "".join(chars)


def pinyin_full(word: str) -> str:
    """``赌博`` → ``dubo``: pypinyin readings, no tones, no spaces."""
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(word))


def pinyin_initials(word: str) -> str:
    """``百家乐`` → ``bjl``: the first letter of each reading."""
    from pypinyin import Style as PinyinStyle
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(word, style=PinyinStyle.FIRST_LETTER))


def homophone_table(style: Style) -> dict[str, list[str]]:
    """Word → look-alikes for ``style`` (each key's variants split by position)."""
    raw: Mapping[str, list[str]] = load_data("disguises")["homophones"]
    return {word: half(variants, style) for word, variants in raw.items()}


def homophones(text: str, rng: random.Random, table: Mapping[str, Sequence[str]], rate: float = 1.0) -> str:
    """Replace words of ``table`` found in ``text`` by a look-alike, each with probability ``rate``;
    longer words first so ``加微`` wins over ``微信``'s parts."""
    for word in sorted(table, key=len, reverse=True):
        if word in text and rng.random() < rate:
            text = text.replace(word, pick(rng, table[word]))
    return text


def disguise_digits(digits: str, rng: random.Random) -> tuple[str, str]:
    """One of the digit disguises, drawn at random; returns (text, name of the disguise)."""
    choice = rng.randrange(8)
    if choice == 0:
        return fullwidth(digits), "fullwidth"
    if choice == 1:
        return chinese_numerals(digits, yao=rng.random() < 0.3), "numerals"
    if choice == 2:
        return chinese_numerals(digits, capital=True), "capital_numerals"
    if choice == 3:
        return circled_digits(digits), "circled"
    if choice == 4:
        return spaced_digits(digits, pick(rng, SEPARATORS), pick(rng, (0, 3, 4))), "spaced"
    if choice == 5:
        # an emoji or two inside the number
        chars = list(digits)
        for _ in range(rng.randint(1, 2)):
            chars.insert(rng.randrange(1, len(chars)), pick(rng, EMOJIS))
        return "".join(chars), "emoji_in_digits"
    if choice == 6:
        # half plain, half numerals: what a hurried poster does
        cut = len(digits) // 2
        return digits[:cut] + chinese_numerals(digits[cut:]), "mixed_numerals"
    return digits, "plain"


def disguise_word(word: str, rng: random.Random, table: Mapping[str, Sequence[str]]) -> tuple[str, list[str]]:
    """Disguise a lure phrase: homophones, then maybe separators, emoji or a pinyin spelling of
    one two-character word. Returns the text and the names of the disguises applied."""
    used: list[str] = []
    out = homophones(word, rng, table, rate=0.6)
    if out != word:
        used.append("homophone")
    r = rng.random()
    if r < 0.25:
        out = split_chars(out, pick(rng, SEPARATORS))
        used.append("split")
    elif r < 0.45:
        out = insert_emoji(out, rng, count=rng.randint(1, 2))
        used.append("emoji")
    elif r < 0.55:
        m = re.search(r"[\u4e00-\u9fff]{2}", out)
        if m:
            py = pinyin_initials(m.group()) if rng.random() < 0.5 else pinyin_full(m.group())
            out = out[: m.start()] + py + out[m.end() :]
            used.append("pinyin")
    return out, used


__all__ = [
    "CAPITAL_NUMERALS",
    "CIRCLED",
    "LOWER_NUMERALS",
    "chinese_numerals",
    "circled_digits",
    "disguise_digits",
    "disguise_word",
    "fullwidth",
    "homophone_table",
    "homophones",
    "insert_emoji",
    "pinyin_full",
    "pinyin_initials",
    "spaced_digits",
    "split_chars",
]
