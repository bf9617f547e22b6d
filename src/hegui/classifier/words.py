"""Word uni- and bigrams from jieba segmentation (an alternative family, measured in the LOSO run).

jieba ships its dictionary inside the wheel; its cache of the parsed dictionary is written to
``tempfile.gettempdir()`` (set here explicitly), never next to the package or in the home folder.
Segmenting costs about 1.8 ms per 1,000 characters on one core, more than the whole detector budget,
which is why word features are evaluated but not shipped (see ``docs/classifier.md``).
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Callable
from typing import Any

from hegui.classifier.features import preprocess

_JIEBA: Any = None


def _jieba() -> Any:
    global _JIEBA
    if _JIEBA is None:
        try:
            import jieba
        except ImportError:  # pragma: no cover - optional dependency
            raise RuntimeError("word features need jieba (pip install jieba)") from None
        jieba.setLogLevel(logging.WARNING)
        jieba.dt.tmp_dir = tempfile.gettempdir()
        _JIEBA = jieba
    return _JIEBA


def word_analyzer(bigrams: bool = True) -> Callable[[str], list[str]]:
    jb = _jieba()

    def analyze(text: str) -> list[str]:
        words = [w for w in jb.lcut(preprocess(text), HMM=False) if w.strip()]
        grams = ["w:" + w for w in words]
        if bigrams:
            grams.extend(f"w:{a}|{b}" for a, b in itertools.pairwise(words))
        return grams

    return analyze
