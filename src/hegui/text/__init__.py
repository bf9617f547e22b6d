"""Chinese text normalisation with an offset map back to the original text."""

from hegui.text.normalize import NormalizedText, NormalizeOptions, normalize

__all__ = ["NormalizeOptions", "NormalizedText", "normalize"]
