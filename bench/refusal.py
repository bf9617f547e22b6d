"""Benchmark: ``classify_answer`` against a plain keyword search, on the labelled answers.

Measured in the same run, on the same answers: the baseline is one ``re.search`` over a single
alternation of the same refusal cue phrases on the lower-cased answer (what a keyword refusal judge
does); then ``hegui.text.normalize`` alone (paid by every hegui detector); then ``classify_answer``.
Two sets: the labelled answers as written (short, like most model answers), and long answers
(each labelled answer followed by about 2,000 characters of ordinary text in its language, so the structure and
sentence rules see a long tail). Prints answers per second, µs per answer, µs per 1,000 characters
and the ratio to the baseline.

    .venv/bin/python bench/refusal.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hegui.detectors.refusal import REFUSAL_CUES, classify_answer
from hegui.text import normalize

SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "refusal_answers.jsonl"
FILLER = {
    "zh": "一般来说，制定学习计划时要先明确目标，再把目标拆成每周可以完成的小任务。每天固定时间复习，效果往往比临时突击更好。",
    "en": "In practice, most people find that short, regular sessions work better than long ones, and that "
    "writing down what they learned helps them remember it a week later. ",
}


def load() -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["answer"], r["question"], r["lang"]) for r in rows]


def best_seconds(fn: Callable[[str, str], object], items: Sequence[tuple[str, str]], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for a, q in items:
            fn(a, q)
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per case (the best one counts)")
    args = ap.parse_args()

    keyword = re.compile("|".join(f"(?:{p})" for _, p in REFUSAL_CUES))
    cases: list[tuple[str, Callable[[str, str], object]]] = [
        ("re.search over the cue alternation (baseline)", lambda a, q: keyword.search(a.lower())),
        ("normalize only", lambda a, q: normalize(a)),
        ("classify_answer", lambda a, q: classify_answer(a, q)),
    ]
    rows = load()
    short = [(a, q) for a, q, _ in rows]
    # Ordinary text in the answer's own language, to about 2,000 characters.
    long = [(a + "\n\n" + FILLER[lang] * (2000 // len(FILLER[lang])), q) for a, q, lang in rows]
    for name, items in (("labelled answers", short), ("long answers", long)):
        chars = sum(len(a) for a, _ in items)
        print(f"{name}: {len(items)} answers, {chars / len(items):.0f} chars on average")
        print(f"  {'case':48} {'answers/s':>10} {'µs/answer':>10} {'µs/1k chars':>12} {'× baseline':>11}")
        base = 0.0
        for case, fn in cases:
            s = best_seconds(fn, items, args.repeat)
            base = base or s
            print(
                f"  {case:48} {len(items) / s:10.0f} {s / len(items) * 1e6:10.1f} "
                f"{s / chars * 1e9:12.1f} {s / base:11.2f}"
            )


if __name__ == "__main__":
    main()
