"""What every generator shares: the row schema, the two styles and their disjoint halves, the
seeded random source and the data files under ``hegui/data/synth``.

Rows follow the schema of ``dev_pool.jsonl`` / ``extra_pool.jsonl`` (``id``, ``text``, ``label``,
``source``, ``kind``, ``tc260``, ``category``, ``split``; ``prompt`` on ``response`` rows) plus
``template``, the id of the template the row was made from, so a test can show that the two styles
share none. ``source`` always starts with ``gen_`` so every figure can keep generated rows apart
from real ones.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from importlib import resources
from typing import Any, Literal, NotRequired, TypedDict, TypeVar, get_args

import yaml

Style = Literal["train", "heldout"]
STYLES: tuple[Style, ...] = get_args(Style)
Kind = Literal["comment", "prompt", "response"]

T = TypeVar("T")


class Row(TypedDict):
    id: str
    text: str
    label: int
    source: str
    kind: str
    tc260: str
    category: str
    split: str
    template: str
    prompt: NotRequired[str]


def half(items: Sequence[T], style: Style) -> list[T]:
    """The ``style`` half of a pool: even positions for ``train``, odd for ``heldout``.

    A fixed rule on position (not a random draw) so the halves never change between runs and a
    reader of the YAML file can tell which half an item is in. Pools of one item are shared: there
    is nothing to split (the data files avoid them for templates and vocabulary)."""
    seq = list(items)
    if len(seq) < 2:
        return seq
    return seq[0::2] if style == "train" else seq[1::2]


@functools.cache
def load_data(name: str) -> dict[str, Any]:
    """The parsed ``hegui/data/synth/<name>.yaml`` (cached; callers must not mutate it)."""
    path = resources.files("hegui").joinpath(f"data/synth/{name}.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):  # pragma: no cover - the files are ours
        raise ValueError(f"data/synth/{name}.yaml: not a mapping")
    return data


def rng_for(genre: str, seed: int, style: Style) -> random.Random:
    """A random source that depends only on genre, seed and style: string seeds are hashed with
    SHA-512 by :mod:`random`, so the stream does not depend on ``PYTHONHASHSEED``."""
    return random.Random(f"hegui-synth:{genre}:{style}:{seed}")


class RowMaker:
    """Collects the rows of one generator run, numbering them and dropping repeated texts."""

    def __init__(self, genre: str, seed: int, style: Style) -> None:
        self.genre = genre
        self.source = f"gen_{genre}"
        self.style: Style = style
        self.rng = rng_for(genre, seed, style)
        self.rows: list[Row] = []
        self._seen: set[tuple[str, str]] = set()

    def add(
        self,
        text: str,
        label: int,
        *,
        kind: Kind,
        category: str,
        template: str,
        tc260: str = "",
        prompt: str | None = None,
    ) -> bool:
        """Append a row unless the same (prompt, text) was made before; True when appended."""
        key = (prompt or "", text)
        if key in self._seen:
            return False
        self._seen.add(key)
        row: Row = {
            "id": f"{self.source}/{self.style}/{len(self.rows):05d}",
            "text": text,
            "label": label,
            "source": self.source,
            "kind": kind,
            "tc260": tc260,
            "category": category,
            "split": self.style,
            "template": template,
        }
        if prompt is not None:
            row["prompt"] = prompt
        self.rows.append(row)
        return True

    def attempts(self, n: int) -> range:
        """Enough tries to reach ``n`` distinct rows when the pools allow it, and a bound when not."""
        return range(max(50, n * 40))


def pick(rng: random.Random, items: Sequence[T]) -> T:
    return items[rng.randrange(len(items))]


def label_schedule(n: int, unsafe_share: float) -> list[int]:
    """Exactly ``round(n * unsafe_share)`` ones spread evenly over ``n`` positions, so every prefix
    of a run has about the same mix."""
    ones = round(n * unsafe_share)
    return [1 if (i + 1) * ones // n > i * ones // n else 0 for i in range(n)] if n else []
