"""Spam and ad posts: gambling, loans, fraud lures, sex services, grey goods and personal-data
sales, each with a contact handle (WeChat, QQ, phone, short URL, Telegram) in one of the
disguises of :mod:`hegui.classifier.synth.disguise` (label 1); and hard negatives (label 0):
ordinary posts that carry contact details without a lure, lure words in a benign sense without a
contact, anti-fraud warnings with a hotline, everyday chat with numbers.

Real traffic is full of the first kind and the public pools have none; the negatives keep a model
(and the ads detector) from learning "a phone number means spam".
"""

from __future__ import annotations

import random
import string
from typing import Any

from hegui.classifier.synth import disguise
from hegui.classifier.synth._core import Row, RowMaker, Style, half, label_schedule, load_data, pick

GENRE = "ads"
CATEGORIES: tuple[str, ...] = ("gambling", "loan", "fraud", "sex", "grey_goods", "pi_sale")
CONTACT_TYPES: tuple[str, ...] = ("wechat", "qq", "phone", "url", "telegram")
_ID_SEPS: tuple[str, ...] = ("：", ":", " ", "", "→", "➕", "～")


class _Pools:
    """The ``style`` half of every list in ``ads.yaml`` and ``disguises.yaml``."""

    def __init__(self, style: Style) -> None:
        d = load_data(GENRE)
        self.categories: dict[str, dict[str, Any]] = {
            name: {
                "tc260": c["tc260"],
                "lures": half(c["lures"], style),
                "perks": half(c["perks"], style),
            }
            for name, c in d["categories"].items()
        }
        self.intros: list[str] = half(d["intros"], style)
        self.ctas: list[str] = half(d["ctas"], style)
        self.emojis: list[str] = half(d["emojis"], style)
        self.verbs: list[str] = half(d["verbs"], style)
        self.handle_words: list[str] = half(d["handle_words"], style)
        c = d["contacts"]
        self.prefixes: dict[str, list[str]] = {k: half(v["prefixes"], style) for k, v in c.items()}
        self.domains: list[str] = half(c["url"]["domains"], style)
        self.shorteners: list[str] = half(c["url"]["shorteners"], style)
        self.templates: list[dict[str, str]] = half(d["templates"], style)
        neg = d["negatives"]
        self.negatives: dict[str, list[dict[str, str]]] = {
            k: half(v, style) for k, v in neg.items() if k not in ("slots", "leads", "tails")
        }
        self.slots: dict[str, list[str]] = {k: half(v, style) for k, v in neg["slots"].items()}
        self.leads: list[str] = half(neg["leads"], style)
        self.tails: list[str] = half(neg["tails"], style)
        self.homophones = disguise.homophone_table(style)


def phone_number(rng: random.Random) -> str:
    """A mainland mobile number shape (1[3-9] + 9 digits); random, so rarely a real one."""
    return "1" + pick(rng, "3456789") + "".join(pick(rng, string.digits) for _ in range(9))


def qq_number(rng: random.Random) -> str:
    return pick(rng, "123456789") + "".join(pick(rng, string.digits) for _ in range(rng.randint(5, 9)))


def _handle_value(kind: str, rng: random.Random, p: _Pools) -> tuple[str, list[str]]:
    """The handle value of a contact type, disguised; returns (text, disguises applied)."""
    if kind == "phone":
        text, how = disguise.disguise_digits(phone_number(rng), rng)
        return text, [how]
    if kind == "qq":
        text, how = disguise.disguise_digits(qq_number(rng), rng)
        return text, [how]
    digits = "".join(pick(rng, string.digits) for _ in range(rng.randint(3, 6)))
    word = pick(rng, p.handle_words)
    if kind == "wechat":
        value = pick(
            rng, (f"{word}{digits}", f"{word}_{digits}", f"{word}{pick(rng, p.handle_words)}{digits}")
        )
        if rng.random() < 0.25:
            return disguise.fullwidth(value), ["fullwidth"]
        return value, []
    if kind == "telegram":
        return f"@{word}{pick(rng, p.handle_words)}{digits}", []
    # url: a short domain or a shortener path
    if rng.random() < 0.5:
        host = f"{word}{digits}.{pick(rng, p.domains)}"
        value = pick(rng, (host, f"www.{host}", f"https://{host}", f"{host}/?r={digits}"))
    else:
        path = "".join(pick(rng, string.ascii_letters + string.digits) for _ in range(6))
        value = f"{pick(rng, p.shorteners)}/{path}"
    if rng.random() < 0.3:
        # "xx88 点 cc": the dot spelled out, so a URL filter misses it
        value = value.replace(".", pick(rng, (" 点 ", "。", "(点)", "dot")), 1)
        return value, ["spelled_dot"]
    return value, []


def contact(rng: random.Random, p: _Pools, kind: str | None = None) -> tuple[str, str, list[str]]:
    """A disguised contact handle: (text, contact type, disguises)."""
    kind = kind or pick(rng, CONTACT_TYPES)
    value, used = _handle_value(kind, rng, p)
    if kind == "url" and rng.random() < 0.4:
        return value, kind, used  # a bare link is announced by nothing
    return f"{pick(rng, p.prefixes[kind])}{pick(rng, _ID_SEPS)}{value}", kind, used


def _unsafe(m: RowMaker, p: _Pools) -> None:
    rng = m.rng
    cat = pick(rng, CATEGORIES)
    c = p.categories[cat]
    tpl = pick(rng, p.templates)
    lure, used = disguise.disguise_word(pick(rng, c["lures"]), rng, p.homophones)
    ctext, ctype, cused = contact(rng, p)
    ctext2, _, _ = contact(rng, p)
    perk = pick(rng, c["perks"])
    text = tpl["text"].format(
        intro=pick(rng, p.intros),
        lure=lure,
        perk=perk,
        perk2=pick(rng, [x for x in c["perks"] if x != perk] or c["perks"]),
        cta=pick(rng, p.ctas),
        contact=ctext,
        contact2=ctext2,
        emoji=pick(rng, p.emojis),
        verb=pick(rng, p.verbs),
    )
    how = "+".join(sorted(set(used + cused))) or "plain"
    m.add(
        text,
        1,
        kind="comment",
        category=f"ads:{cat}:{ctype}:{how}",
        template=tpl["id"],
        tc260=c["tc260"],
    )


def _negative(m: RowMaker, p: _Pools) -> None:
    rng = m.rng
    group = pick(rng, sorted(p.negatives))
    tpl = pick(rng, p.negatives[group])
    digits = "".join(pick(rng, string.digits) for _ in range(12))
    site = f"{pick(rng, p.handle_words)}{digits[:3]}.{pick(rng, ('com', 'cn', 'org', 'edu.cn'))}"
    phone = pick(rng, (phone_number(rng), f"0{digits[:2]}-{digits[2:10]}", f"400-{digits[:3]}-{digits[3:7]}"))
    fields = {k: pick(rng, v) for k, v in p.slots.items()}
    text = tpl["text"].format(
        phone=phone,
        email=f"{pick(rng, ('hr', 'jobs', 'info', 'tougao', 'service'))}@{site.split('.', 1)[0]}.com",
        site=site,
        digits12=digits,
        digits4=digits[:4],
        **fields,
    )
    if group in ("lure_no_contact", "warning_with_contact"):
        text = pick(rng, p.leads) + text + pick(rng, p.tails)
    m.add(text, 0, kind="comment", category=f"ads_negative:{group}", template=tpl["id"])


def generate(n: int, *, seed: int = 0, style: Style = "train", unsafe_share: float = 0.5) -> list[Row]:
    """``n`` ad posts and hard negatives (``unsafe_share`` of them ads), deterministic by seed."""
    p = _Pools(style)
    m = RowMaker(GENRE, seed, style)
    want = label_schedule(n, unsafe_share)
    for _ in m.attempts(n):
        if len(m.rows) >= n:
            break
        label = want[len(m.rows)]
        (_unsafe if label else _negative)(m, p)
    return m.rows


__all__ = ["CATEGORIES", "CONTACT_TYPES", "GENRE", "contact", "generate", "phone_number", "qq_number"]
