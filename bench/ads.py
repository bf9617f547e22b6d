"""Benchmark: the ads detector against the lexicon detector, on the same texts, in one run.

Texts: 1,000-character documents cut from the real pools (``dev_pool.jsonl`` + ``extra_pool.jsonl``:
comments and prompts without ads, the fast path), and documents made of generated ads (every one
has lures and contacts, the slow path). Both detectors get the same ``NormalizedText``; the cost of
``normalize`` itself (paid once for all detectors) is printed as the baseline. Prints µs per 1,000
characters (CPU time, best of three) and the ratio to the built-in lexicon detector, and checks
the target of ≤ 0.1 ms per 1,000 characters on the real documents.

    .venv/bin/python bench/ads.py [--docs 400]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hegui.classifier import synth
from hegui.detectors.ads import AdsDetector
from hegui.detectors.lexicon import LexiconDetector
from hegui.text import NormalizedText, normalize

DOC_CHARS = 1000
TARGET_US = 100.0  # 0.1 ms per 1,000 characters


def real_text() -> str:
    env = os.environ.get("HEGUI_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    parts: list[str] = []
    for name in ("dev_pool.jsonl", "extra_pool.jsonl"):
        pool = path / name
        if pool.exists():
            with pool.open(encoding="utf-8") as fh:
                parts += [json.loads(line)["text"] for line in fh]
    if not parts:
        raise SystemExit(f"no pools under {path} (set HEGUI_SHARED_DATA)")
    return "\n".join(parts)


def cut_docs(text: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [text[s : s + DOC_CHARS] for s in (rng.randrange(0, len(text) - DOC_CHARS) for _ in range(n))]


def per_kchar_us(
    fn: Callable[[NormalizedText], object], docs: Sequence[NormalizedText], repeat: int = 3
) -> float:
    chars = sum(len(d.original) for d in docs)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for d in docs:
            fn(d)
        best = min(best, time.process_time() - t0)
    return best / chars * 1000 * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=400, help="documents per set")
    args = ap.parse_args()

    t0 = time.perf_counter()
    ads = AdsDetector()
    ads_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    lexicon = LexiconDetector.from_paths([], builtin=True)
    lex_build = time.perf_counter() - t0

    real = [normalize(d) for d in cut_docs(real_text(), args.docs, seed=5)]
    ad_text = "\n".join(
        r["text"]
        for style in synth.STYLES
        for r in synth.generate("ads", 2000, seed=5, style=style)
        if r["label"]
    )
    adverts = [normalize(d) for d in cut_docs(ad_text, args.docs, seed=6)]

    rows = []
    for name, docs in (("real pools (no ads)", real), ("generated ads", adverts)):
        base = per_kchar_us(lambda d: normalize(d.original), docs)
        t_lex = per_kchar_us(lexicon.detect, docs)
        t_ads = per_kchar_us(ads.detect, docs)
        hits = sum(bool(ads.detect(d)) for d in docs)
        rows.append((name, base, t_lex, t_ads, hits, len(docs)))

    print(
        f"documents: {args.docs} per set, {DOC_CHARS} chars; built ads in {ads_build * 1000:.0f} ms, "
        f"lexicon (built-in) in {lex_build * 1000:.0f} ms"
    )
    print(
        f"{'texts':22} {'normalize':>10} {'lexicon':>9} {'ads':>9} {'ads/lexicon':>12} {'docs flagged':>13}"
    )
    for name, base, t_lex, t_ads, hits, n in rows:
        print(f"{name:22} {base:10.1f} {t_lex:9.1f} {t_ads:9.1f} {t_ads / t_lex:12.2f} {hits:>6}/{n}")
    print(
        "µs per 1,000 characters (CPU, best of 3); target for ads ≤ 100 on real texts:",
        "met" if rows[0][3] <= TARGET_US else "NOT met",
    )


if __name__ == "__main__":
    main()
