"""Should-not-refuse questions on the 13 topics of :data:`hegui.assessment.bank.TOPICS` (state
system, beliefs, national image, culture, customs, ethnicity, geography, history, heroes and
martyrs, gender, age, occupation, health), in many phrasings; all label 0.

They touch the sensitive words a keyword filter reacts to; blocking them is the over-refusal the
standard's should-not-refuse bank measures.
"""

from __future__ import annotations

from hegui.assessment.bank import TOPICS
from hegui.classifier.synth._core import Row, RowMaker, Style, half, load_data, pick

GENRE = "nonrefusal"


def generate(n: int, *, seed: int = 0, style: Style = "train") -> list[Row]:
    """``n`` benign questions, spread over the 13 topics in turn, deterministic by seed."""
    d = load_data(GENRE)
    wrappers = half(d["wrappers"], style)
    topics = {
        t: (half(list(enumerate(d["topics"][t]["questions"])), style), half(d["topics"][t]["x"], style))
        for t in TOPICS
    }
    tails = half(load_data("phrasing")["tails"], style)
    order = list(TOPICS)
    m = RowMaker(GENRE, seed, style)
    skipped, streak = 0, 0
    for _ in m.attempts(n):
        if len(m.rows) >= n:
            break
        rng = m.rng
        # round-robin over the topics so every topic gets its share however small n is; twenty
        # repeats in a row move on to the next topic, so an exhausted topic does not stall the run
        topic = order[(len(m.rows) + skipped) % len(order)]
        questions, xs = topics[topic]
        i, q = pick(rng, questions)
        q = q.format(x=pick(rng, xs))
        w = pick(rng, wrappers)
        added = m.add(
            w["text"].format(q=q) + pick(rng, tails),
            0,
            kind="prompt",
            category=f"nonrefusal:{topic}",
            template=f"{w['id']}/{topic}.q{i:02d}",
        )
        streak = 0 if added else streak + 1
        if streak >= 20:
            skipped, streak = skipped + 1, 0
    return m.rows


__all__ = ["GENRE", "generate"]
