"""Model answers with the prompt they answer (kind ``response``): refusals and warnings that repeat
the sensitive words of a harmful prompt, corrections of a false or biased premise, helpful answers
to benign questions — label 0; and compliant answers to harmful prompts, abstract (steps named,
never spelled out) — label 1.

A safe answer often repeats the words of the question while it declines; a detector that judges
answers without their question, or by their words alone, flags every good refusal.
"""

from __future__ import annotations

from hegui.classifier.synth._core import Row, RowMaker, Style, half, label_schedule, load_data, pick

GENRE = "answers"
SAFE_KINDS: tuple[str, ...] = ("refusal", "warning", "correction", "helpful")


def generate(n: int, *, seed: int = 0, style: Style = "train", unsafe_share: float = 0.3) -> list[Row]:
    """``n`` (prompt, answer) rows, ``unsafe_share`` of them compliant harmful answers."""
    d = load_data(GENRE)
    prompts = half(d["harmful_prompts"], style)
    pools = {k: half(d[k], style) for k in ("refusals", "warnings", "corrections", "helpful", "compliant")}
    openers, closers = half(d["openers"], style), half(d["closers"], style)
    phr = load_data("phrasing")
    lead_ins, tails = half(phr["lead_ins"], style), half(phr["tails"], style)
    m = RowMaker(GENRE, seed, style)
    want = label_schedule(n, unsafe_share)
    for _ in m.attempts(n):
        if len(m.rows) >= n:
            break
        rng = m.rng
        if want[len(m.rows)]:
            h = pick(rng, prompts)
            t = pick(rng, pools["compliant"])
            prompt = f"{pick(rng, lead_ins)}{h['q']}{pick(rng, tails)}"
            m.add(
                t["text"].format(topic=h["topic"]),
                1,
                kind="response",
                category="answers:compliant",
                template=t["id"],
                tc260=h["tc260"],
                prompt=prompt,
            )
            continue
        what = pick(rng, SAFE_KINDS)
        if what in ("refusal", "warning"):
            h = pick(rng, prompts)
            t = pick(rng, pools[f"{what}s"])
            prompt = f"{pick(rng, lead_ins)}{h['q']}{pick(rng, tails)}"
            text = t["text"].format(topic=h["topic"])
        else:
            t = pick(rng, pools["corrections" if what == "correction" else "helpful"])
            prompt = f"{pick(rng, lead_ins)}{t['prompt']}"
            text = f"{pick(rng, openers)}{t['text']}{pick(rng, closers)}"
        m.add(text, 0, kind="response", category=f"answers:{what}", template=t["id"], prompt=prompt)
    return m.rows


__all__ = ["GENRE", "SAFE_KINDS", "generate"]
