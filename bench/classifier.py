"""Classifier speed: the shipped model against the previous one, scikit-learn and the alternative families.

    .venv/bin/python bench/classifier.py [--rows 3000] [--model PATH] [--previous PATH|REV]

Texts: rows of ``../shared/data/dev_pool.jsonl`` (short comments and prompts), and the same text
joined into ~2,000-character documents (long answers). Times are CPU seconds of this process
(``time.process_time``), i.e. one core, so other load on the machine does not inflate them much.
The aim is ≤ 1 ms per 1,000 characters.

``--previous`` is the model shipped before issue 14 (char LR on ``dev_pool`` only), read from git
history (revision ``1fa04a6`` by default) into a temp file, so both are timed in the same run. The
alternative families are timed at their inference cost with the shapes the LOSO run trained (the
weights do not change the time): jieba word n-grams (segmentation + lookup) and the char CNN. The
fastText-style model collapses to one weight vector over the same n-grams, so it costs what the
char LR costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hegui.classifier.features import make_analyzer  # noqa: E402
from hegui.classifier.model import RiskModel, default_model_path  # noqa: E402
from hegui.detectors.classifier import ClassifierDetector  # noqa: E402
from hegui.text import normalize  # noqa: E402

PREVIOUS_REV = "1fa04a6"


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


def detector_fn(det: ClassifierDetector, normalized: dict[str, Any]) -> Callable[[str], object]:
    def run(t: str) -> object:
        return det.detect(normalized[t])

    return run


def previous_model(spec: str, tmp: Path) -> Path | None:
    p = Path(spec)
    if p.exists():
        return p
    out = tmp / "previous_risk_zh.npz"
    try:
        blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{spec}:src/hegui/data/models/risk_zh.npz"],
                              check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    out.write_bytes(blob)
    return out


def alternatives(rows: list[str], long_docs: list[str]) -> list[tuple[str, float, float]]:
    out: list[tuple[str, float, float]] = []
    try:
        from hegui.classifier.words import word_analyzer

        wa = word_analyzer()
        wa("预热")  # load the dictionary before timing
        vocab = {g: i for i, g in enumerate(sorted({g for t in rows[:1000] for g in wa(t)}))}

        def word_lookup(t: str) -> int:
            return sum(1 for g in wa(t) if g in vocab)

        out.append(("word 1–2-grams (jieba) features only", per_1k(word_lookup, rows, 1),
                    per_1k(word_lookup, long_docs, 1)))
    except RuntimeError:
        pass
    from hegui.classifier.cnn import CharCNN, CNNOptions

    o = CNNOptions()
    rng = np.random.default_rng(0)
    cnn = CharCNN(chars={ch: i + 2 for i, ch in enumerate(sorted(set("".join(rows)))[: o.vocab - 2])},
                  emb=rng.standard_normal((o.vocab, o.dim)).astype(np.float32),
                  conv=rng.standard_normal((o.width * o.dim, o.filters)).astype(np.float32),
                  conv_b=np.zeros(o.filters, np.float32), out=rng.standard_normal(o.filters).astype(np.float32),
                  bias=0.0, width=o.width, max_len=300)
    out.append((f"char CNN (emb {o.dim}, conv {o.width}×{o.filters}), 300-char windows",
                per_1k(cnn.decision_one, rows, 1),
                per_1k(lambda d: [cnn.decision_one(d[i : i + 300]) for i in range(0, len(d), 300)], long_docs, 1)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--previous", default=PREVIOUS_REV, help="path or git revision of the previous model")
    ap.add_argument("--no-alternatives", action="store_true")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dev_pool.jsonl")
    args = ap.parse_args()
    if not args.data.exists():
        print(f"skip: {args.data} not found", file=sys.stderr)
        return 0
    with args.data.open(encoding="utf-8") as fh:
        rows = [json.loads(line)["text"] for _, line in zip(range(args.rows), fh, strict=False)]
    joined = "。".join(rows)
    long_docs = [joined[i : i + 2000] for i in range(0, len(joined) - 2000, 2000)][:150]
    short_label = f"short ({len(rows)} rows, avg {len(joined) / len(rows):.0f} ch)"
    long_label = f"long ({len(long_docs)} docs of 2,000 ch)"

    with tempfile.TemporaryDirectory() as tmp:
        models = [("current", args.model)]
        prev = previous_model(args.previous, Path(tmp))
        if prev is not None:
            models.append((f"previous ({args.previous})", prev))
        print(f"{'model':<22}{'texts':<34}{'sklearn ms/1k':>14}{'hegui ms/1k':>13}{'speed-up':>10}{'detector':>10}")
        for name, path in models:
            t0 = time.perf_counter()
            model = RiskModel.load(path)
            load_s = time.perf_counter() - t0
            det = ClassifierDetector(model=model, threshold=model.threshold)
            base = sklearn_baseline(model)
            # the baseline and hegui agree (same model), so the comparison is like for like
            for t in rows[:50]:
                assert abs(base(t) - model.score(t)) < 1e-4
            print(f"{name}: {path.stat().st_size / 1e6:.1f} MB, {len(model.featurizer):,} features, "
                  f"load {load_s * 1000:.0f} ms")
            for label, texts in ((short_label, rows), (long_label, long_docs)):
                b = per_1k(base, texts)
                h_score = per_1k(model.score, texts)
                # normalisation is the moderator's (shared by all detectors), so it is done outside the timing
                normalized = {t: normalize(t) for t in texts}
                h_det = per_1k(detector_fn(det, normalized), texts)
                print(f"{'':<22}{label:<34}{b:>14.3f}{h_score:>13.3f}{b / h_score:>9.1f}×{h_det:>10.3f}")
    if not args.no_alternatives:
        print("alternative families (inference cost only):")
        for label, s, lg in alternatives(rows, long_docs):
            print(f"  {label:<58} short {s:.3f}  long {lg:.3f} ms/1k")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
