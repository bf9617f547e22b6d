"""Normalisation: NFKC, full-width → half-width, traditional → simplified, case folding,
removal of zero-width and separator characters, homoglyph folding. Keeps an offset map so that
every span in the normalised text maps back to the original.

PLACEHOLDER: identity normalisation; the text/lexicon work replaces this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NormalizeOptions:
    traditional_to_simplified: bool = True
    remove_separators: bool = True
    fold_homoglyphs: bool = True
    casefold: bool = True


@dataclass(frozen=True, slots=True)
class NormalizedText:
    original: str
    text: str
    starts: list[int] = field(repr=False)
    """``starts[i]``: index in ``original`` where normalised char ``i`` comes from."""
    ends: list[int] = field(repr=False)
    """``ends[i]``: index in ``original`` just past the source of normalised char ``i``."""

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a normalised span ``[start, end)`` to the span of the original text it came from."""
        if start >= end:
            pos = self.starts[start] if start < len(self.starts) else len(self.original)
            return pos, pos
        return self.starts[start], self.ends[end - 1]


def normalize(text: str, options: NormalizeOptions | None = None) -> NormalizedText:
    n = len(text)
    return NormalizedText(text, text, list(range(n)), list(range(1, n + 1)))
