"""Answers judged with their question, and the cascade to a guard model, on the public dev data.

    .venv/bin/python bench/cascade.py [--rows 300] [--low 0.35] [--high 0.9] [--latency-ms 20]

1. **Answers with their question** (``latent_jailbreak``: model answers with the prompt they answer,
   human safe/unsafe labels): the default moderator on the answer alone, then with ``context=`` (the
   refusal excuse), then with ``classifier.context_mode: max`` as well. Precision, recall, F1, FPR.
2. **Cascade share**: per real source of ``dev_pool.jsonl`` and ``extra_pool.jsonl`` (up to
   ``--rows`` rows each, seeded sample), the share of texts whose classifier score falls in
   [``low``, ``high``) and so would go to the guard; and within that band how many are unsafe (what
   the guard has to get right). Single-class sources show what they can: a band on all-unsafe
   jailbench rows is recall at stake, on all-safe cvalues rows false positives at stake.
3. **Latency** with the mock guard answering after ``--latency-ms``: per-text wall time of
   ``acheck`` for the classifier alone and for the cascade, p50 and p99, on the same texts in the
   same run. The guard's own quality cannot be measured here (no guard weights): only its cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from hegui.config import HeguiConfig  # noqa: E402
from hegui.detectors.classifier import ClassifierConfig, ClassifierDetector  # noqa: E402
from hegui.detectors.guard import CascadeDetector, MockBackend, MockConfig, detector_for  # noqa: E402
from hegui.moderation import Moderator  # noqa: E402
from hegui.text import normalize  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
REAL_SOURCES = ["cold", "jade_db", "cvalues", "safetybench", "swsr", "rtplx_zh", "latent_jailbreak",
                "jailbench", "multijail_zh"]


def load_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in ("dev_pool.jsonl", "extra_pool.jsonl"):
        with open(DATA / name, encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh if line.strip())
    return rows


def metrics(pairs: list[tuple[int, bool]]) -> str:
    tp = sum(1 for y, p in pairs if y and p)
    fp = sum(1 for y, p in pairs if not y and p)
    fn = sum(1 for y, p in pairs if y and not p)
    tn = sum(1 for y, p in pairs if not y and not p)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return f"P {prec:.3f}  R {rec:.3f}  F1 {f1:.3f}  FPR {fpr:.3f}  (tp {tp} fp {fp} fn {fn} tn {tn})"


def answers_with_question(rows: list[dict[str, Any]]) -> None:
    lj = [r for r in rows if r["source"] == "latent_jailbreak"]
    print(f"\n## 1. Answers with their question: latent_jailbreak, {len(lj)} answers "
          f"({sum(r['label'] for r in lj)} unsafe)\n")
    plain = Moderator.from_config(HeguiConfig())
    joint = Moderator.from_config(HeguiConfig(classifier=ClassifierConfig(context_mode="max")))
    runs = {
        "answer alone (before)": lambda r: plain.check(r["text"], "output"),
        "with question: refusal excuse": lambda r: plain.check(r["text"], "output", context=r["prompt"]),
        "with question: excuse + context_mode max": lambda r: joint.check(r["text"], "output", context=r["prompt"]),
    }
    for name, run in runs.items():
        t0 = time.perf_counter()
        verdicts = [(r["label"], run(r)) for r in lj]
        ms = (time.perf_counter() - t0) * 1000 / len(lj)
        excused = sum(1 for _, v in verdicts if v.excused_by)
        excused_unsafe = sum(1 for y, v in verdicts if v.excused_by and y)
        print(f"{name:44s} {metrics([(y, not v.allowed) for y, v in verdicts])}  "
              f"excused {excused} ({excused_unsafe} unsafe)  {ms:.2f} ms/answer")


def cascade_share(rows: list[dict[str, Any]], clf: ClassifierDetector, per_source: int, low: float,
                  high: float, seed: int) -> dict[str, list[str]]:
    print(f"\n## 2. Share sent to the guard: band [{low}, {high}), classifier threshold {clf.threshold:.3f}, "
          f"up to {per_source} rows a source\n")
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    rng = random.Random(seed)
    samples: dict[str, list[str]] = {}
    header = (f"{'source':17s} {'rows':>5s} {'unsafe':>6s} {'to guard':>9s} {'band unsafe':>11s} "
              f"{'band safe':>9s} {'clf flags':>9s} {'of which in band':>16s}")
    print(header)
    total = escalated = 0
    for src in REAL_SOURCES:
        pool = by_source.get(src, [])
        if not pool:
            print(f"{src:17s} (absent)")
            continue
        sample = rng.sample(pool, min(per_source, len(pool)))
        samples[src] = [r["text"] for r in sample]
        band_unsafe = band_safe = flags = flags_in_band = 0
        for r in sample:
            best = clf.best_window(normalize(r["text"]))
            score = best.score if best else 0.0
            in_band = low <= score < high
            flagged = score >= clf.threshold
            flags += flagged
            flags_in_band += flagged and in_band
            if in_band:
                band_unsafe += r["label"] == 1
                band_safe += r["label"] == 0
        n = len(sample)
        unsafe = sum(r["label"] for r in sample)
        total += n
        escalated += band_unsafe + band_safe
        print(f"{src:17s} {n:5d} {unsafe:6d} {(band_unsafe + band_safe) / n:9.1%} {band_unsafe:11d} "
              f"{band_safe:9d} {flags:9d} {flags_in_band:16d}")
    print(f"{'all':17s} {total:5d} {'':6s} {escalated / total:9.1%}")
    return samples


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def latency(samples: dict[str, list[str]], clf: ClassifierDetector, low: float, high: float,
            latency_ms: float) -> None:
    texts = [t for ts in samples.values() for t in ts]
    backend = MockBackend(MockConfig(latency_ms=latency_ms))
    cascade = CascadeDetector(classifier=clf, guard=detector_for(backend), low=low, high=high)
    alone = Moderator([clf], Moderator.from_config(HeguiConfig(), only=[]).policy)
    both = Moderator([cascade], alone.policy)

    async def timed(m: Moderator) -> list[float]:
        out = []
        for t in texts:
            t0 = time.perf_counter()
            await m.acheck(t, "output")
            out.append((time.perf_counter() - t0) * 1000)
        return out

    base = asyncio.run(timed(alone))
    casc = asyncio.run(timed(both))
    print(f"\n## 3. Latency per text (acheck, ms), mock guard answering after {latency_ms:g} ms, "
          f"{len(texts)} texts\n")
    print(f"{'':22s} {'p50':>8s} {'p90':>8s} {'p99':>8s} {'mean':>8s}")
    for name, xs in (("classifier alone", base), ("cascade", casc)):
        print(f"{name:22s} {percentile(xs, .5):8.3f} {percentile(xs, .9):8.3f} {percentile(xs, .99):8.3f} "
              f"{sum(xs) / len(xs):8.3f}")
    added = [c - b for c, b in zip(casc, base, strict=True)]
    print(f"{'added':22s} {percentile(added, .5):8.3f} {percentile(added, .9):8.3f} {percentile(added, .99):8.3f} "
          f"{sum(added) / len(added):8.3f}")
    print(f"guard calls {backend.calls} of {len(texts)} texts ({backend.calls / len(texts):.1%})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=300, help="rows sampled per source for the share and latency")
    ap.add_argument("--low", type=float, default=0.35, help="grey band lower bound (classifier score)")
    ap.add_argument("--high", type=float, default=0.9, help="grey band upper bound")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="mock guard answer time")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (DATA / "dev_pool.jsonl").is_file():
        print(f"skipped: {DATA} not found (the public dev data)")
        return 0
    rows = load_rows()
    answers_with_question(rows)
    clf = ClassifierDetector.from_config(ClassifierConfig())
    samples = cascade_share(rows, clf, args.rows, args.low, args.high, args.seed)
    latency(samples, clf, args.low, args.high, args.latency_ms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
