"""Character n-gram TF-IDF features.

Chinese has no spaces, and offensive or harmful text is often spelled with variants, so character
n-grams beat word segmentation here (and need no segmenter dictionary). Training uses scikit-learn's
``TfidfVectorizer`` with :func:`make_analyzer` as the analyzer; inference uses :class:`Featurizer`,
which computes the same vector for one text without scikit-learn's per-call overhead (a test checks
they agree).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt


def preprocess(text: str) -> str:
    """NFKC, lower case, whitespace runs → one space: the same for training and inference."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def make_analyzer(ngram_range: tuple[int, int]) -> Callable[[str], list[str]]:
    lo, hi = ngram_range

    def analyze(text: str) -> list[str]:
        s = preprocess(text)
        n_chars = len(s)
        grams: list[str] = list(s) if lo == 1 else []
        for n in range(max(lo, 2), hi + 1):
            grams.extend([s[i : i + n] for i in range(n_chars - n + 1)])
        return grams

    return analyze


_BITS = 21  # every code point + 1 fits in 21 bits, so up to three characters pack exactly into a uint64
_MAX_PACKED_N = 3
_SHIFT = np.uint64(_BITS)
_ONE = np.uint64(1)


def pack_gram(gram: str) -> int:
    """The exact integer key of an n-gram of up to three characters."""
    k = 0
    for ch in gram:
        k = (k << _BITS) | (ord(ch) + 1)
    return k


class Featurizer:
    """Sparse L2-normalised sublinear TF-IDF vector of one text, from a fixed vocabulary.

    For n-grams of up to three characters the vocabulary is held as sorted integer keys (each
    character's code point in 21 bits), so a text's n-grams are built and looked up with a handful of
    vectorised numpy calls instead of one Python string per n-gram: about 2.5× faster, and no dict
    of hundreds of thousands of strings in memory. Longer n-grams use a dict.
    """

    def __init__(self, vocab: Sequence[str], idf: npt.NDArray[np.float32], ngram_range: tuple[int, int]):
        if len(vocab) != len(idf):
            raise ValueError("vocabulary and idf lengths differ")
        self.vocab = list(vocab)
        self.idf = np.asarray(idf, dtype=np.float32)
        self.ngram_range = ngram_range
        self._analyze = make_analyzer(ngram_range)
        self._index: dict[str, int] | None = None
        self.packed = ngram_range[1] <= _MAX_PACKED_N
        if self.packed:
            keys = np.fromiter(map(pack_gram, self.vocab), dtype=np.uint64, count=len(self.vocab))
            self._order = np.argsort(keys, kind="stable")
            self._keys = keys[self._order]
            if len(self._keys) > 1 and bool((self._keys[1:] == self._keys[:-1]).any()):
                raise ValueError("duplicate n-grams in the vocabulary")

    @property
    def index(self) -> dict[str, int]:
        """n-gram → feature index (built on first use)."""
        if self._index is None:
            self._index = {g: i for i, g in enumerate(self.vocab)}
        return self._index

    def __len__(self) -> int:
        return len(self.vocab)

    def _ids_packed(self, text: str) -> npt.NDArray[np.intp]:
        s = preprocess(text)
        c = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        c += _ONE
        lo, hi = self.ngram_range
        parts = [c] if lo == 1 else []
        k = c
        for n in range(2, hi + 1):
            # the n-gram keys extend the (n-1)-gram keys by one character
            k = (k[:-1] << _SHIFT) | c[n - 1 :]
            if n >= lo:
                parts.append(k)
        if len(self._keys) == 0:
            return np.zeros(0, dtype=np.intp)
        keys = np.concatenate(parts)
        pos = np.searchsorted(self._keys, keys)
        np.minimum(pos, len(self._keys) - 1, out=pos)
        return self._order[pos[self._keys[pos] == keys]]

    def _ids_dict(self, text: str) -> npt.NDArray[np.intp]:
        grams = self._analyze(text)
        ids = np.fromiter(map(self.index.get, grams, repeat(-1)), dtype=np.intp, count=len(grams))
        return ids[ids >= 0]

    def transform_one(self, text: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        ids = self._ids_packed(text) if self.packed else self._ids_dict(text)
        if ids.size == 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float64)
        ind, n = np.unique(ids, return_counts=True)
        val = (1.0 + np.log(n)) * self.idf[ind]
        norm = math.sqrt(float(np.dot(val, val)))
        if norm > 0:
            val /= norm
        return ind, val
