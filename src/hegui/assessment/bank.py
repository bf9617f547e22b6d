"""A question bank item and what it may say (GB/T 45654 §8; ``spec/regulation.md`` §1.5).

Three kinds of bank: ``generated`` (generated-content questions, one of the 31 risks each; the
answer is judged for that risk), ``should_refuse`` (one of the 17 A.1/A.2 risks; the model should
refuse) and ``should_not_refuse`` (one of the 13 topics below; the model should answer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hegui import taxonomy

BankKind = Literal["generated", "should_refuse", "should_not_refuse"]
BANK_KINDS: tuple[BankKind, ...] = ("generated", "should_refuse", "should_not_refuse")

Expected = Literal["safe_answer", "refuse", "answer"]
"""What the model should do: answer without the item's risk (generated), refuse, or answer."""
EXPECTED_FOR_KIND: dict[BankKind, Expected] = {
    "generated": "safe_answer", "should_refuse": "refuse", "should_not_refuse": "answer",
}

TOPICS: dict[str, tuple[str, str]] = {
    # code: (zh, en), in the order the standard lists them: the state, then individuals
    "state_system": ("国家制度", "state system"),
    "beliefs": ("信仰", "beliefs"),
    "image": ("国家形象", "national image"),
    "culture": ("文化", "culture"),
    "customs": ("习俗", "customs"),
    "ethnicity": ("民族", "ethnicity"),
    "geography": ("地理", "geography"),
    "history": ("历史", "history"),
    "heroes_martyrs": ("英雄烈士", "heroes and martyrs"),
    "gender": ("性别", "gender"),
    "age": ("年龄", "age"),
    "occupation": ("职业", "occupation"),
    "health": ("健康", "health"),
}
"""The aspects of the non-refusal bank (≥ 20 items each)."""

CONTENT_RISK_CODES: frozenset[str] = frozenset(r.code for r in taxonomy.CONTENT_RISKS)
REFUSAL_RISK_CODES: tuple[str, ...] = taxonomy.KEYWORD_RISKS
"""The 17 A.1 + A.2 risks the should-refuse bank covers."""

ItemOrigin = Literal["starter", "imported", "template", "model"]


class BankItem(BaseModel):
    """One question. ``risk`` is set for ``generated`` and ``should_refuse``; ``topic`` for
    ``should_not_refuse``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=80)
    """Stable id, unique in the bank (a run keys answers by it, so resuming never re-asks)."""
    kind: BankKind
    question: str = Field(min_length=1)
    risk: str | None = None
    topic: str | None = None
    expected: Expected | None = None
    """Defaults from the kind."""
    notes: str = ""
    """Judging notes (判定要点): what makes an answer pass or fail."""
    language: Literal["zh", "en"] = "zh"
    origin: ItemOrigin = "imported"
    seed_id: str | None = None
    """For expanded items: the item it was made from."""
    review: str = ""
    """The reviewer's mark on an expanded item (empty: not reviewed; ``ok``; ``drop``)."""

    @model_validator(mode="after")
    def _check(self) -> BankItem:
        if self.expected is None:
            self.expected = EXPECTED_FOR_KIND[self.kind]
        if self.kind == "should_not_refuse":
            if self.topic not in TOPICS:
                raise ValueError(f"topic {self.topic!r}: one of {', '.join(TOPICS)}")
            if self.risk is not None:
                raise ValueError("a should_not_refuse item has a topic, not a risk")
        else:
            if self.risk is not None:
                self.risk = taxonomy.normalize_code(self.risk)
            if self.risk is None or self.risk not in CONTENT_RISK_CODES:
                raise ValueError(f"risk {self.risk!r}: one of the 31 risk codes (A1a … A5b)")
            if self.kind == "should_refuse" and self.risk not in REFUSAL_RISK_CODES:
                raise ValueError(f"risk {self.risk}: a should_refuse item takes one of the 17 A.1/A.2 risks")
            if self.topic is not None:
                raise ValueError(f"a {self.kind} item has a risk, not a topic")
        return self


def canonical_json(items: list[BankItem]) -> bytes:
    """The items in id order as compact, key-sorted JSON: the input of :meth:`Bank.digest`, so the
    digest does not change with file format, column order or row order."""
    rows = [i.model_dump(mode="json") for i in sorted(items, key=lambda i: i.id)]
    return json.dumps(rows, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass
class Bank:
    """Items of one or more bank files, ids unique. ``sources`` names the files they came from."""

    items: list[BankItem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def digest(self) -> str:
        """SHA-256 (hex) of :func:`canonical_json`: the runner refuses to resume against a bank
        whose digest changed."""
        return hashlib.sha256(canonical_json(self.items)).hexdigest()

    def by_kind(self) -> dict[BankKind, list[BankItem]]:
        """Items per kind, every kind present (possibly empty), file order kept."""
        out: dict[BankKind, list[BankItem]] = {k: [] for k in BANK_KINDS}
        for item in self.items:
            out[item.kind].append(item)
        return out

    def get(self, item_id: str) -> BankItem | None:
        return next((i for i in self.items if i.id == item_id), None)

    def counted(self) -> list[BankItem]:
        """Items that count towards the standard's sizes: all but those a reviewer marked ``drop``."""
        return [i for i in self.items if i.review != "drop"]
