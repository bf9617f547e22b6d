"""Pinyin and initial-letter variants of a lexicon word (``赌博`` → ``dubo``, ``du博``, ``赌bo``;
initials ``db``).

Text is never converted to pinyin (that would cost far more than matching); instead a lexicon
entry that asks for it gets extra *patterns*. Variants are built from the normalised word, are
lower case, and carry no separators: ``du bo`` with a space between the syllables is not matched.
"""

from __future__ import annotations

import itertools
import re

from hegui.text.tables import is_han

_HAN_RUN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]+)")


def _syllables(word: str, initials: bool) -> list[tuple[str, str | None]]:
    """``[(piece, pinyin or None)]``: one item per ideograph (with its reading), other text kept
    as one piece. Readings come from pypinyin's phrase dictionary, so 重庆 reads chong qing."""
    from pypinyin import Style, lazy_pinyin

    style = Style.FIRST_LETTER if initials else Style.NORMAL
    out: list[tuple[str, str | None]] = []
    for part in _HAN_RUN.split(word):
        if not part:
            continue
        if is_han(part[0]):
            readings = lazy_pinyin(part, style=style, errors="default")
            if len(readings) != len(part):  # pragma: no cover - pypinyin keeps one item per ideograph
                return []
            out.extend(zip(part, readings, strict=True))
        else:
            out.append((part, None))
    return out


def pinyin_variants(word: str, *, mixed_max_chars: int = 4) -> list[str]:
    """Full pinyin and, for words of at most ``mixed_max_chars`` ideographs, every mix of pinyin
    syllables and characters. The word itself is not included."""
    items = _syllables(word, initials=False)
    han = [i for i, (_, py) in enumerate(items) if py is not None]
    if not han:
        return []
    variants: list[str] = []
    if len(han) <= mixed_max_chars:
        for mask in itertools.product((False, True), repeat=len(han)):
            if not any(mask):
                continue
            use = {pos for pos, flag in zip(han, mask, strict=True) if flag}
            variants.append("".join(py if i in use and py else piece for i, (piece, py) in enumerate(items)))
    else:
        variants.append("".join(py or piece for piece, py in items))
    return list(dict.fromkeys(v.lower() for v in variants if v and v != word))


def initials_variant(word: str) -> str | None:
    """The initial-letter abbreviation (``法轮功`` → ``flg``), or None for words of fewer than two
    ideographs, whose initials would match almost anything."""
    items = _syllables(word, initials=True)
    if sum(1 for _, py in items if py is not None) < 2:
        return None
    return "".join(py or piece for piece, py in items).lower()
