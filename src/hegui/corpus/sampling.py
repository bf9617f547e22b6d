"""Deterministic sampling by record key, the same on every engine and every run.

A record's place in a sample depends only on ``hash(seed, record_key)``, never on which worker read
it or in what order, so a local run, a Ray run and a resumed run pick the same records:

- the **automated-check sample** (≥ 10% of all records, GB/T 45654 §9): a record is in it when its
  hash, read as a number in [0, 1), is below the rate;
- the **manual-review sample** (4,000 records from the whole training set): bottom-k on the same
  hash. Each shard keeps its k smallest; the audit merges the shards' lists and keeps the k smallest
  overall. The k smallest of uniform hashes are a uniform sample without replacement, and the
  merge of per-shard bottom-k lists holds the global bottom-k, so the sample is exactly the one a
  single pass over the whole corpus would draw.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
from collections.abc import Iterable

# The hash is read as a 64-bit integer; ranks are its 16 hex digits, which sort as the numbers do.
HASH_BITS = 64
HASH_SPACE = 1 << HASH_BITS
DEFAULT_MANUAL_K = 4000
DEFAULT_AUTO_RATE = 0.10


@functools.lru_cache(maxsize=16)
def _seed_key(seed: str) -> bytes:
    # blake2b keys are at most 64 bytes: hash the seed, so seeds that differ late still differ.
    return hashlib.blake2b(seed.encode("utf-8"), digest_size=32).digest()


def record_hash(seed: str, key: str) -> int:
    """A 64-bit hash of ``(seed, key)``; keyed blake2b, the same on every platform and Python
    (unlike ``hash()``, which is salted per process)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, key=_seed_key(seed)).digest()
    return int.from_bytes(digest, "big")


def unit(h: int) -> float:
    """The hash as a number in [0, 1)."""
    return h / HASH_SPACE


def rank(h: int) -> str:
    """The hash as a fixed-width hex string: string order is numeric order (for merging lists)."""
    return f"{h:016x}"


def in_auto_sample(h: int, rate: float) -> bool:
    """Whether a record with hash ``h`` is in the automated-check sample at ``rate``."""
    return h < int(rate * HASH_SPACE)


class BottomK:
    """The ``k`` items with the smallest hashes seen so far (a bounded max-heap)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._heap: list[tuple[int, int, dict[str, str]]] = []
        self._n = 0

    def would_keep(self, h: int) -> bool:
        """Cheap test before building the item: most records are not kept once the heap is full."""
        return self.k > 0 and (len(self._heap) < self.k or -self._heap[0][0] > h)

    def offer(self, h: int, item: dict[str, str]) -> None:
        if not self.would_keep(h):
            return
        self._n += 1
        entry = (-h, self._n, item)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[dict[str, str]]:
        """The kept items, smallest hash first."""
        return [item for _, _, item in sorted(self._heap, key=lambda e: -e[0])]


def merge_bottom_k(lists: Iterable[Iterable[dict[str, str]]], k: int = DEFAULT_MANUAL_K) -> list[dict[str, str]]:
    """The ``k`` candidates with the smallest ``rank`` across the shards' lists (for the audit)."""
    merged = heapq.merge(*(sorted(items, key=lambda c: c["rank"]) for items in lists), key=lambda c: c["rank"])
    out: list[dict[str, str]] = []
    for cand in merged:
        if len(out) >= k:
            break
        out.append(cand)
    return out


def excerpt(text: str, limit: int) -> str:
    """At most ``limit`` characters, whitespace runs collapsed so a spreadsheet row stays readable."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"
