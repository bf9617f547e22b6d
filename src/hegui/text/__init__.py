"""Chinese text normalisation with an offset map back to the original text."""

from hegui.text.normalize import (
    DEFAULT_OPTIONS,
    NormalizedText,
    NormalizeOptions,
    normalize,
    normalize_many,
)

__all__ = ["DEFAULT_OPTIONS", "NormalizeOptions", "NormalizedText", "normalize", "normalize_many"]
