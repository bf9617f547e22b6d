"""Keyword matchers and normalisation on Chinese text, measured in one run.

Lexicon: houbb/sensitive-word (64,419 words) from ``../shared/data`` (or ``$HEGUI_SHARED_DATA``).
Text: the development pool's comments and prompts, joined and cut into 2,000-character documents
(the shape of gateway traffic), plus a disguised copy (spaces, zero-width characters, full-width and
traditional forms inserted) that forces the slow paths.

Prints, per engine: build time, whole-text MB/s and µs per document; then hegui's normalisation
and ``LexiconDetector`` (normalise + detect) against the raw ahocorasick-rs matcher as a ratio.
pyahocorasick and the official ``opencc`` are measured only when installed (they are not hegui
dependencies): ``pip install pyahocorasick opencc``.

    .venv/bin/python bench/matchers.py [--docs 500]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    env = os.environ.get("HEGUI_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Fastest of ``repeat`` runs, in seconds of this thread's CPU time: the machine is shared, and
    CPU time (plus the minimum) filters out the time other processes hold the cores."""
    best = float("inf")
    for _ in range(repeat):
        t = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t)
    return best


def disguise(doc: str, rng: random.Random) -> str:
    from opencc_pyo3 import OpenCC

    s2t = OpenCC("s2t")
    out: list[str] = []
    for ch in s2t.convert(doc):
        out.append(ch)
        r = rng.random()
        if r < 0.03:
            out.append(" ")
        elif r < 0.05:
            out.append("\u200b")
        elif r < 0.06:
            out.append("*")
    return "".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=500, help="number of 2,000-char documents")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds for the detector figures")
    args = ap.parse_args()

    data = shared_data()
    dict_path = data / "lexicons" / "houbb" / "sensitive_word_dict.txt"
    pool = data / "dev_pool.jsonl"
    if not dict_path.exists() or not pool.exists():
        print(f"skipped: development data not found at {data} (set HEGUI_SHARED_DATA)")
        return 0
    words = [w.strip() for w in dict_path.read_text(encoding="utf-8").splitlines() if w.strip()]
    big = "".join(json.loads(line)["text"] for line in pool.read_text(encoding="utf-8").splitlines())
    docs = [big[i : i + 2000] for i in range(0, len(big) - 2000, 2000)][: args.docs]
    whole = "".join(docs)
    mb = len(whole.encode("utf-8")) / 1e6
    rng = random.Random(7)
    disguised = [disguise(d, rng) for d in docs]
    print(f"lexicon: {len(words):,} words; text: {len(docs)} docs x 2,000 chars = {mb:.1f} MB UTF-8\n")

    rows: list[tuple[str, str, str, str, str]] = []

    def matcher_row(name: str, build: Callable[[], object], run_doc: Callable[[str], object]) -> float:
        t = time.thread_time()
        build()
        built = time.thread_time() - t
        t_whole = best_of(lambda: run_doc(whole), 3)
        t_docs = best_of(lambda: [run_doc(d) for d in docs])
        per_doc = t_docs / len(docs) * 1e6
        rows.append((name, f"{built:.3f} s", f"{mb / t_whole:.1f}", f"{mb / t_docs:.1f}", f"{per_doc:.1f}"))
        return per_doc

    import ahocorasick_rs

    holder: dict[str, object] = {}

    def build_rs() -> None:
        holder["rs"] = ahocorasick_rs.AhoCorasick(words)

    def build_rs_ll() -> None:
        holder["ll"] = ahocorasick_rs.AhoCorasick(words, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)

    matcher_row(
        "ahocorasick-rs (overlapping)",
        build_rs,
        lambda d: holder["rs"].find_matches_as_indexes(d, overlapping=True),  # type: ignore[attr-defined]
    )
    matcher_row(
        "ahocorasick-rs (leftmost-longest)",
        build_rs_ll,
        lambda d: holder["ll"].find_matches_as_indexes(d),  # type: ignore[attr-defined]
    )
    try:
        import ahocorasick

        def build_py() -> None:
            a = ahocorasick.Automaton()
            for i, w in enumerate(words):
                a.add_word(w, i)
            a.make_automaton()
            holder["py"] = a

        matcher_row("pyahocorasick (iter)", build_py, lambda d: list(holder["py"].iter(d)))  # type: ignore[attr-defined]
    except ImportError:
        print("pyahocorasick not installed: skipped (pip install pyahocorasick)")

    print(f"{'matcher':36} {'build':>8} {'whole MB/s':>11} {'docs MB/s':>10} {'us/doc':>8}")
    for r in rows:
        print(f"{r[0]:36} {r[1]:>8} {r[2]:>11} {r[3]:>10} {r[4]:>8}")

    # ---------------------------------------------------------------- normalisation
    import unicodedata

    from opencc_pyo3 import OpenCC

    from hegui.detectors.lexicon import LexiconDetector
    from hegui.detectors.lexicon_files import ListSpec
    from hegui.text import normalize

    t = time.thread_time()
    normalize("x")
    tables_s = time.thread_time() - t
    print(f"\nnormalisation tables built in {tables_s:.2f} s (once per process)")
    norm_rows: list[tuple[str, float]] = []

    def per_doc(fn: Callable[[str], object], corpus: list[str]) -> float:
        return best_of(lambda: [fn(d) for d in corpus]) / len(corpus) * 1e6

    cc = OpenCC("t2s")
    norm_rows.append(("unicodedata NFKC only", per_doc(lambda d: unicodedata.normalize("NFKC", d), docs)))
    norm_rows.append(("opencc-pyo3 t2s (phrase) only", per_doc(cc.convert, docs)))
    try:
        import opencc

        occ = opencc.OpenCC("t2s")
        norm_rows.append(("opencc (official) t2s only", per_doc(occ.convert, docs)))
    except ImportError:
        print("official opencc not installed: skipped (pip install opencc)")
    norm_rows.append(("hegui normalize (plain docs)", per_doc(normalize, docs)))
    for name, us in norm_rows:
        print(f"{name:36} {us:8.1f} us/doc")

    # ---------------------------------------------------------------- detector
    t = time.thread_time()
    det = LexiconDetector.from_lists([ListSpec(path=dict_path, name="houbb", format="text", risk="A1h")])
    build_s = time.thread_time() - t
    rs = holder["rs"]

    def fresh(corpus: list[str]) -> list[str]:
        # ahocorasick-rs caches a UTF-8 copy inside each str; gateway traffic is always new strings.
        return [d.encode().decode() for d in corpus]

    # Interleave the contenders round by round and keep each one's best round, so a burst of load
    # on the shared machine hits all of them alike.
    stages: dict[str, Callable[[str], object]] = {
        "raw": lambda d: rs.find_matches_as_indexes(d, overlapping=True),  # type: ignore[attr-defined]
        "normalize": normalize,
        "pipeline": lambda d: det.detect(normalize(d)),
    }
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fn in stages.items():
            for label, corpus in (("", docs), (" disguised", disguised)):
                batch = fresh(corpus)
                t = time.thread_time()
                for d in batch:
                    fn(d)
                us = (time.thread_time() - t) / len(batch) * 1e6
                best[name + label] = min(best.get(name + label, float("inf")), us)
    hits_plain = sum(len(det.detect(normalize(d))) for d in docs) / len(docs)
    hits_dis = sum(len(det.detect(normalize(d))) for d in disguised) / len(disguised)
    raw_hits = sum(len(rs.find_matches_as_indexes(d, overlapping=True)) for d in docs) / len(docs)  # type: ignore[attr-defined]
    raw_dis_hits = sum(len(rs.find_matches_as_indexes(d, overlapping=True)) for d in disguised) / len(docs)  # type: ignore[attr-defined]
    print(f"\nLexiconDetector on houbb: built in {build_s:.2f} s, {det.pattern_count:,} patterns, holdback {det.holdback()}")
    print(f"best of {args.rounds} interleaved rounds, fresh strings, us per 2,000-char doc:")
    print(f"{'':34} {'plain':>8} {'disguised':>10}")
    print(f"{'raw ahocorasick-rs (baseline)':34} {best['raw']:8.1f} {best['raw disguised']:10.1f}"
          f"   hits/doc {raw_hits:.1f} / {raw_dis_hits:.1f}")
    print(f"{'hegui normalize':34} {best['normalize']:8.1f} {best['normalize disguised']:10.1f}")
    print(f"{'normalize + LexiconDetector.detect':34} {best['pipeline']:8.1f} {best['pipeline disguised']:10.1f}"
          f"   findings/doc {hits_plain:.1f} / {hits_dis:.1f}")
    print(f"{'throughput vs raw matcher':34} {best['raw'] / best['pipeline']:8.0%}"
          f" {best['raw disguised'] / best['pipeline disguised']:10.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
