"""Jailbreak prompts: role-play, hypothetical, developer-mode, translation, fiction and other
wrappers around harmful questions (label 1) and around benign ones (label 0), with the very same
wrappers on both sides.

JailBench's rows are all unsafe, so a model trained on it learns "a wrapper means unsafe" and
blocks every role-play request; these rows teach it to read the question inside.
"""

from __future__ import annotations

from hegui.classifier.synth._core import Row, RowMaker, Style, half, label_schedule, load_data, pick

GENRE = "jailbreak"


def generate(n: int, *, seed: int = 0, style: Style = "train", unsafe_share: float = 0.5) -> list[Row]:
    """``n`` wrapped prompts (``unsafe_share`` of them around harmful questions), deterministic."""
    d = load_data(GENRE)
    wrappers = half(d["wrappers"], style)
    benign = half(d["benign"], style)
    harmful = half(d["harmful"], style)
    phr = load_data("phrasing")
    lead_ins, tails = half(phr["lead_ins"], style), half(phr["tails"], style)
    m = RowMaker(GENRE, seed, style)
    want = label_schedule(n, unsafe_share)
    for _ in m.attempts(n):
        if len(m.rows) >= n:
            break
        rng = m.rng
        w = pick(rng, wrappers)
        if want[len(m.rows)]:
            h = pick(rng, harmful)
            q, tc260, label = h["q"], h["tc260"], 1
        else:
            q, tc260, label = pick(rng, benign), "", 0
        text = pick(rng, lead_ins) + w["text"].format(q=q) + pick(rng, tails)
        m.add(
            text,
            label,
            kind="prompt",
            category=f"jailbreak:{w['family']}:{'harmful' if label else 'benign'}",
            template=w["id"],
            tc260=tc260,
        )
    return m.rows


__all__ = ["GENRE", "generate"]
