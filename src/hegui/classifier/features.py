"""Character n-gram TF-IDF features.

Chinese has no spaces, and offensive or harmful text is often spelled with variants, so character
n-grams beat word segmentation here (and need no segmenter dictionary). Training uses scikit-learn's
``TfidfVectorizer`` with :func:`analyze` as the analyzer; inference uses :class:`Featurizer`, which
computes the same vector for one text without scikit-learn's per-call overhead (a test checks they
agree).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt

_WS = re.compile(r"\s+")


def preprocess(text: str) -> str:
    """NFKC, lower case, whitespace runs → one space: the same for training and inference."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


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


class Featurizer:
    """Sparse L2-normalised sublinear TF-IDF vector of one text, from a fixed vocabulary."""

    def __init__(self, vocab: Sequence[str], idf: npt.NDArray[np.float32], ngram_range: tuple[int, int]):
        if len(vocab) != len(idf):
            raise ValueError("vocabulary and idf lengths differ")
        self.vocab = list(vocab)
        self.index: dict[str, int] = {g: i for i, g in enumerate(self.vocab)}
        self.idf = np.asarray(idf, dtype=np.float32)
        self.ngram_range = ngram_range
        self._analyze = make_analyzer(ngram_range)

    def __len__(self) -> int:
        return len(self.vocab)

    def transform_one(self, text: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        grams = self._analyze(text)
        if len(grams) < 600:
            # short texts (most chat messages): Counter + a Python loop beats numpy's per-call overhead
            get = self.index.get
            ks: list[int] = []
            cs: list[int] = []
            for gram, c in Counter(grams).items():
                j = get(gram)
                if j is not None:
                    ks.append(j)
                    cs.append(c)
            if not ks:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            ind = np.array(ks, dtype=np.int64)
            counts = np.array(cs, dtype=np.float32)
        else:
            # long texts: dict.get over map() runs the lookups in C and numpy counts the hits
            ids = np.fromiter(map(self.index.get, grams, repeat(-1)), dtype=np.int64, count=len(grams))
            ids = ids[ids >= 0]
            if ids.size == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            ind, n = np.unique(ids, return_counts=True)
            counts = n.astype(np.float32)
        val = ((1.0 + np.log(counts)) * self.idf[ind]).astype(np.float32, copy=False)
        norm = float(np.sqrt(np.dot(val, val)))
        if norm > 0:
            val /= norm
        return ind, val
