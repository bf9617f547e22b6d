"""Generators of labelled rows for the genres the public pools lack (issue 14): spam and ad posts
with disguised contact handles, political A.1.a–c prompts and their benign look-alikes,
should-not-refuse questions, jailbreak wrappers around benign and harmful questions, and model
answers with their prompt.

Every generator is deterministic by ``seed`` and returns rows in the pools' schema with a
``source`` starting ``gen_``. ``style="heldout"`` draws from the other, disjoint half of every
template and vocabulary list, so a model can be trained on one half and tested on the other::

    from hegui.classifier import synth
    train = synth.generate_all(per_genre=1000, seed=0)
    test = synth.generate_all(per_genre=300, seed=0, style="heldout")
    ads = synth.generate("ads", 500, seed=1)

``python -m hegui.classifier.synth --out FILE --per-genre N --seed S [--style heldout]`` writes
JSONL. See ``docs/ads.md``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from hegui.classifier.synth import ads, answers, jailbreak, nonrefusal, political
from hegui.classifier.synth._core import STYLES, Row, Style, half

Generator = Callable[..., list[Row]]

GENERATORS: dict[str, Generator] = {
    "ads": ads.generate,
    "political": political.generate,
    "nonrefusal": nonrefusal.generate,
    "jailbreak": jailbreak.generate,
    "answers": answers.generate,
}
"""Genre → generator ``(n, *, seed, style) -> rows``."""

GENRES: tuple[str, ...] = tuple(GENERATORS)
SOURCES: tuple[str, ...] = tuple(f"gen_{g}" for g in GENRES)


def generate(genre: str, n: int, *, seed: int = 0, style: Style = "train") -> list[Row]:
    """``n`` rows of one genre (fewer only when its pools cannot make that many distinct texts)."""
    try:
        gen = GENERATORS[genre]
    except KeyError:
        raise ValueError(f"unknown genre {genre!r}; one of {', '.join(GENRES)}") from None
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; one of {', '.join(STYLES)}")
    return gen(n, seed=seed, style=style)


def generate_all(
    per_genre: int, *, seed: int = 0, style: Style = "train", genres: Sequence[str] | None = None
) -> list[Row]:
    """``per_genre`` rows of each genre (all of them by default), genre after genre."""
    rows: list[Row] = []
    for g in genres or GENRES:
        rows.extend(generate(g, per_genre, seed=seed, style=style))
    return rows


def write_jsonl(rows: Iterable[Row], path: str | Path) -> int:
    """Write rows as JSONL (UTF-8, one object a line) through a temp file and ``os.replace``, so a
    reader never sees half a file. Returns the number of rows written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True))
                fh.write("\n")
                count += 1
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


__all__ = [
    "GENERATORS",
    "GENRES",
    "SOURCES",
    "STYLES",
    "Row",
    "Style",
    "generate",
    "generate_all",
    "half",
    "write_jsonl",
]
