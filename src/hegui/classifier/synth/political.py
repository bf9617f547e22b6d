"""Political prompts: requests for content of risks A.1.a (subversion), A.1.b (national security
and image) and A.1.c (separatism), abstract (they ask; they carry no such content) — label 1; and
their benign look-alikes, neutral questions and requests on history, law, the constitution and
current affairs through the same frames — label 0.

The public pools have almost no A.1.a–c rows; a model trained on them has never seen the genre.
"""

from __future__ import annotations

from hegui.classifier.synth._core import Row, RowMaker, Style, half, label_schedule, load_data, pick

GENRE = "political"
RISKS: tuple[str, ...] = ("A.1.a", "A.1.b", "A.1.c")


def generate(n: int, *, seed: int = 0, style: Style = "train", unsafe_share: float = 0.5) -> list[Row]:
    """``n`` prompts (``unsafe_share`` of them unsafe), deterministic by seed."""
    d = load_data(GENRE)
    frames = half(d["frames"], style)
    aims = {k: half(v, style) for k, v in d["aims"].items()}
    questions = half(list(enumerate(d["benign_questions"])), style)
    fill = {k: half(d[k], style) for k in ("platform", "who", "voice")}
    phr = load_data("phrasing")
    lead_ins, tails = half(phr["lead_ins"], style), half(phr["tails"], style)
    m = RowMaker(GENRE, seed, style)
    want = label_schedule(n, unsafe_share)
    for _ in m.attempts(n):
        if len(m.rows) >= n:
            break
        rng = m.rng
        values = {k: pick(rng, v) for k, v in fill.items()}
        if want[len(m.rows)]:
            risk = pick(rng, RISKS)
            frame = pick(rng, frames)
            text = (
                pick(rng, lead_ins)
                + frame["text"].format(aim=pick(rng, aims[risk]), **values)
                + pick(rng, tails)
            )
            m.add(text, 1, kind="prompt", category=f"political:{risk}", template=frame["id"], tc260=risk)
        elif rng.random() < 0.2:
            i, q = pick(rng, questions)
            m.add(
                pick(rng, lead_ins) + q,
                0,
                kind="prompt",
                category="political:benign_question",
                template=f"pol.q{i:02d}",
            )
        else:
            frame = pick(rng, frames)
            text = (
                pick(rng, lead_ins)
                + frame["text"].format(aim=pick(rng, aims["benign"]), **values)
                + pick(rng, tails)
            )
            m.add(text, 0, kind="prompt", category="political:benign", template=frame["id"])
    return m.rows


__all__ = ["GENRE", "RISKS", "generate"]
