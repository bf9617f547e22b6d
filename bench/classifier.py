"""Classifier speed: hegui's detector path vs scikit-learn's own transform + predict, same model.

    .venv/bin/python bench/classifier.py [--rows 3000] [--model PATH]

Texts: rows of ``../shared/data/dev_pool.jsonl`` (short comments and prompts), and the same text
joined into ~2,000-character documents (long answers). Times are CPU seconds of this process
(``time.process_time``), i.e. one core, so other load on the machine does not inflate them much.
The aim is ≤ 1 ms per 1,000 characters.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hegui.classifier.features import make_analyzer  # noqa: E402
from hegui.classifier.model import RiskModel, default_model_path  # noqa: E402
from hegui.detectors.classifier import ClassifierDetector  # noqa: E402
from hegui.text import normalize  # noqa: E402


def sklearn_baseline(model: RiskModel) -> Callable[[str], float]:
    """The same features and weights through scikit-learn's TfidfVectorizer (fixed vocabulary)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer=make_analyzer(model.featurizer.ngram_range), sublinear_tf=True,
                          vocabulary=model.featurizer.index, dtype=np.float32)
    vec.idf_ = model.featurizer.idf
    coef = model.coef

    def score(text: str) -> float:
        x = vec.transform([text])
        return model.calibrate(float((x @ coef)[0]) + model.intercept)

    return score


def per_1k(fn: Callable[[str], object], texts: list[str], repeat: int = 3) -> float:
    chars = sum(map(len, texts))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for t in texts:
            fn(t)
        best = min(best, time.process_time() - t0)
    return best * 1000 / chars * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dev_pool.jsonl")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"skip: {args.data} not found", file=sys.stderr)
        return 0
    with args.data.open(encoding="utf-8") as fh:
        rows = [json.loads(line)["text"] for _, line in zip(range(args.rows), fh, strict=False)]
    joined = "。".join(rows)
    long_docs = [joined[i : i + 2000] for i in range(0, len(joined) - 2000, 2000)][:150]

    t0 = time.perf_counter()
    model = RiskModel.load(args.model)
    load_s = time.perf_counter() - t0
    det = ClassifierDetector(model=model, threshold=model.threshold)
    base = sklearn_baseline(model)
    # the baseline and hegui agree (same model), so the comparison is like for like
    for t in rows[:50]:
        assert abs(base(t) - model.score(t)) < 1e-4

    print(f"model {args.model.name}: {args.model.stat().st_size / 1e6:.1f} MB, "
          f"{len(model.featurizer):,} features, load {load_s * 1000:.0f} ms")
    print(f"{'texts':<34}{'sklearn ms/1k':>14}{'hegui ms/1k':>13}{'speed-up':>10}")
    for label, texts in ((f"short ({len(rows)} rows, avg {len(joined) / len(rows):.0f} ch)", rows),
                         (f"long ({len(long_docs)} docs of 2,000 ch)", long_docs)):
        b = per_1k(base, texts)
        h_score = per_1k(model.score, texts)
        # normalisation is the moderator's (shared by all detectors), so it is done outside the timing
        normalized = {t: normalize(t) for t in texts}
        h_det = per_1k(lambda t, nt=normalized: det.detect(nt[t]), texts)
        print(f"{label:<34}{b:>14.3f}{h_score:>13.3f}{b / h_score:>9.1f}×   (detector: windows + score "
              f"+ risk head of reported texts: {h_det:.3f} ms/1k)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
