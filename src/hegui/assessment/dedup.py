"""Dropping duplicate questions within each bank kind.

*Exact* duplicates are questions equal after hegui's own normalisation (:func:`hegui.text.normalize`:
full-width, traditional characters, homoglyphs, separators between characters) with spaces and
punctuation removed. *Near* duplicates are questions whose character n-gram shingles have a Jaccard
similarity of at least ``threshold`` (MinHash LSH from datasketch finds the candidates, the exact
Jaccard of the shingle sets decides), or, with ``method="rapidfuzz"``, whose rapidfuzz ``ratio``
is at least ``threshold``. The earliest item wins, and seeds win over variants.

A template variant is never a duplicate of its own seed, nor of another variant of that seed: an
obfuscated variant normalises back to its seed by design, and the template is the point of it. Two
variants made by the same template from different seeds share the template's text; they are never
*near* duplicates of each other (their seeds were already compared), only exact ones. Model
paraphrases get no such pass: one that repeats its seed is dropped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from hegui.assessment.bank import Bank, BankItem

Method = Literal["minhash", "rapidfuzz"]
Reason = Literal["exact", "near"]
NUM_PERM = 128


@dataclass(frozen=True)
class Dropped:
    item_id: str
    kept_id: str
    reason: Reason
    similarity: float


@dataclass
class DedupResult:
    bank: Bank
    dropped: list[Dropped] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"exact": 0, "near": 0}
        for d in self.dropped:
            out[d.reason] += 1
        return out


def dedup_key(text: str, *, normalized: bool = True) -> str:
    """The text two questions are compared by: hegui-normalised with whitespace and punctuation
    removed, or (``normalized=False``) NFKC and case-folded with whitespace removed."""
    if not normalized:
        # As written: only width, case and whitespace are ignored, so an obfuscation (``毒*品``) stays.
        return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if not ch.isspace())
    from hegui.text import normalize

    t = normalize(text).text
    return "".join(ch for ch in t if unicodedata.category(ch)[0] in "LNS" and not ch.isspace())


def shingles(key: str, n: int) -> set[str]:
    if len(key) <= n:
        return {key} if key else set()
    return {key[i:i + n] for i in range(len(key) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _template_of(item: BankItem) -> str | None:
    if item.origin != "template" or item.seed_id is None or "~" not in item.id:
        return None
    return item.id.rsplit("~", 1)[1]


def _siblings(a: BankItem, b: BankItem) -> bool:
    """Variants of different seeds by one template: alike by construction, not duplicates."""
    ta = _template_of(a)
    return ta is not None and ta == _template_of(b) and a.seed_id != b.seed_id


def _same_seed(a: BankItem, b: BankItem) -> bool:
    """A template variant and its own seed, or two template variants of one seed."""

    def variant(x: BankItem) -> bool:
        return x.origin == "template" and x.seed_id is not None

    if variant(a) and variant(b):
        return a.seed_id == b.seed_id
    if variant(a) and b.seed_id is None:
        return a.seed_id == b.id
    if variant(b) and a.seed_id is None:
        return b.seed_id == a.id
    return False


def _exempt(a: BankItem, b: BankItem) -> bool:
    return _same_seed(a, b) or _siblings(a, b)


def _ordered(items: list[BankItem]) -> list[int]:
    # Seeds first (in file order), then variants (in file order): seeds win.
    return sorted(range(len(items)), key=lambda i: (items[i].seed_id is not None, i))


def dedup(
    bank: Bank,
    *,
    threshold: float = 0.8,
    ngram: int = 2,
    method: Method = "minhash",
    normalized: bool = True,
) -> DedupResult:
    """Drop exact and near duplicates within each kind; the result keeps file order."""
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    items = bank.items
    keep = [True] * len(items)
    dropped: list[Dropped] = []
    by_kind: dict[str, list[int]] = {}
    for i in _ordered(items):
        by_kind.setdefault(items[i].kind, []).append(i)
    for order in by_kind.values():
        keys = {i: dedup_key(items[i].question, normalized=normalized) for i in order}
        exact: dict[str, list[int]] = {}
        survivors: list[int] = []
        for i in order:
            same = exact.setdefault(keys[i], [])
            first = next((j for j in same if not _same_seed(items[i], items[j])), None)
            if first is not None:
                keep[i] = False
                dropped.append(Dropped(items[i].id, items[first].id, "exact", 1.0))
            else:
                same.append(i)
                survivors.append(i)
        near = _near_minhash if method == "minhash" else _near_rapidfuzz
        for i, j, sim in near(items, survivors, keys, threshold, ngram):
            keep[i] = False
            dropped.append(Dropped(items[i].id, items[j].id, "near", sim))
    kept = [it for it, k in zip(items, keep, strict=True) if k]
    return DedupResult(Bank(items=kept, sources=list(bank.sources)), dropped)


def _near_minhash(
    items: list[BankItem], order: list[int], keys: dict[int, str], threshold: float, ngram: int
) -> Iterable[tuple[int, int, float]]:
    from datasketch import MinHash, MinHashLSH

    sets = {i: shingles(keys[i], ngram) for i in order}
    hashes = MinHash.bulk([[s.encode("utf-8") for s in sets[i]] for i in order], num_perm=NUM_PERM)
    # LSH tuned a little below the threshold: it only proposes candidates, the exact Jaccard decides,
    # so a lower LSH threshold trades a few extra comparisons for fewer missed pairs.
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.1), num_perm=NUM_PERM)
    for i, mh in zip(order, hashes, strict=True):
        best: tuple[int, float] | None = None
        for j in lsh.query(mh):
            if _exempt(items[i], items[j]):
                continue
            sim = jaccard(sets[i], sets[j])
            if sim >= threshold and (best is None or sim > best[1] or (sim == best[1] and j < best[0])):
                best = (j, sim)
        if best is not None:
            yield i, best[0], best[1]
        else:
            lsh.insert(i, mh)


def _near_rapidfuzz(
    items: list[BankItem], order: list[int], keys: dict[int, str], threshold: float, ngram: int
) -> Iterable[tuple[int, int, float]]:
    from rapidfuzz import fuzz, process

    kept_keys: list[str] = []
    kept_ids: list[int] = []
    cutoff = threshold * 100
    for i in order:
        found: tuple[int, float] | None = None
        if kept_keys:
            for _, score, pos in process.extract(
                keys[i], kept_keys, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None
            ):
                j = kept_ids[pos]
                if not _exempt(items[i], items[j]):
                    found = (j, score / 100)
                    break
        if found is not None:
            yield i, found[0], found[1]
        else:
            kept_keys.append(keys[i])
            kept_ids.append(i)
