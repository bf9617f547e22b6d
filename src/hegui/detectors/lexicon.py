"""Lexicon detector: exact matching of keyword lists over normalised text, with an allow-list and
hot reload.

All lists share one ahocorasick-rs automaton (overlapping matches, character offsets). Patterns go
through :func:`hegui.text.normalize` like the text, so ``賭 博``, ``赌\u200b博`` and ``ＤＵ博`` all
hit ``赌博``. Entries may ask for pinyin (``dubo``, ``du博``) or initial-letter (``db``) variants.
Allow phrases suppress a hit whose span lies inside theirs (``打击赌博`` allows the ``赌博`` in it).

Reload builds a new automaton and then swaps one reference, so a request in flight keeps the old
one and never sees a half-built state. Entries staff add at run time (kept in the ledger database by
:mod:`hegui.cases.lexicon_entries`) come in as :class:`ExtraEntries` through :meth:`LexiconDetector.use_entries`,
beside the files: the detector takes data, not a database, so it stays free of the ledger. See
``docs/lexicon.md``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hegui import taxonomy
from hegui.detectors.base import Cost, Detector, Finding, StreamMode
from hegui.detectors.lexicon_files import (
    Format,
    LexiconEntry,
    ListSpec,
    WordList,
    known_code,
    load_allow,
    load_list,
    spec_from_argument,
)
from hegui.errors import ConfigError
from hegui.text import NormalizedText, NormalizeOptions, normalize_many
from hegui.text.pinyin import initials_variant, pinyin_variants

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "lexicons"
BUILTIN_LIST = DATA_DIR / "starter.tsv"
BUILTIN_ALLOW = DATA_DIR / "starter_allow.txt"
BUILTIN_NAME = "starter"


def _check_code(value: str | None) -> str | None:
    if value is None:
        return None
    code = known_code(value)
    if code is None:
        raise ValueError(f"unknown risk code {value!r} (see `hegui risks`)")
    return code


class LexiconFileConfig(BaseModel):
    """One lexicon file."""

    model_config = ConfigDict(extra="forbid")
    path: str
    """File path, relative to the config file."""
    name: str | None = None
    """List name used in evidence ids (``lexicon:<name>:<index>``); default: the file name stem."""
    format: Format = "auto"
    """``auto`` (by extension; ``.txt`` with tabs is tsv), ``text``, ``tsv``, ``tags``, ``csv``, ``xlsx``."""
    risk: str | None = None
    """Risk code of every entry of a plain list (and of tsv lines without a risk column)."""
    category_map: dict[str, str] = Field(default_factory=dict)
    """Spreadsheet category / tag / risk cell → risk code."""
    default_risk: str | None = None
    """Risk for categories that are not mapped (otherwise they are an error)."""
    pinyin: bool | None = None
    """Add pinyin variants for every entry (default: ``lexicon.pinyin``)."""
    initials: bool | None = None
    """Add initial-letter variants for every entry (default: ``lexicon.initials``)."""

    @field_validator("risk", "default_risk")
    @classmethod
    def _risk_code(cls, v: str | None) -> str | None:
        return _check_code(v)

    @field_validator("category_map")
    @classmethod
    def _map_codes(cls, v: dict[str, str]) -> dict[str, str]:
        return {str(k): str(_check_code(str(code))) for k, code in v.items()}


class LexiconConfig(BaseModel):
    """The ``lexicon`` section of ``hegui.yaml``."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    builtin: bool = True
    """Use the starter list and allow-list shipped with hegui (a starter, not a complete library)."""
    files: list[LexiconFileConfig] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)
    """Allow phrases: a hit inside one of them is not reported."""
    allow_files: list[str] = Field(default_factory=list)
    """Files of allow phrases, one a line."""
    auto_reload_seconds: float = Field(default=0.0, ge=0)
    """Check the files' modification times at most this often and reload on change; 0 = off."""
    pinyin: bool = False
    """Default for files: add pinyin variants for every entry."""
    initials: bool = False
    """Default for files: add initial-letter variants for every entry."""
    pinyin_mixed_max_chars: int = Field(default=4, ge=0, le=8)
    """Words of up to this many ideographs also get every pinyin/character mix (2^n variants)."""
    db_sync_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often each gateway worker checks the ledger for staff lexicon/allow entries added or removed
    (``hegui lexicon entries``) and rebuilds its lexicon when they changed."""


def file_config_from_argument(arg: str) -> LexiconFileConfig:
    """A ``files`` entry for a CLI ``--lexicon`` argument: ``PATH`` or ``PATH:RISK`` (absolute path)."""
    spec = spec_from_argument(arg)
    return LexiconFileConfig(path=str(spec.path.resolve()), name=spec.name, risk=spec.risk)


# ----------------------------------------------------------------------------- extra entries

EXTRA_LIST = "database"
"""List name of the extra (staff) entries; their evidence id is ``lexicon:database:<entry id>``."""


@dataclass(frozen=True, slots=True)
class ExtraBlockEntry:
    """A keyword from outside the files, with its one risk and a stable id for evidence."""

    id: str
    text: str
    risk: str


@dataclass(frozen=True, slots=True)
class ExtraEntries:
    """Keywords and allow phrases from outside the files (staff entries in the ledger database),
    matched with the same normalisation as the files' entries."""

    block: tuple[ExtraBlockEntry, ...] = ()
    allow: tuple[str, ...] = ()


NO_EXTRA = ExtraEntries()


# ----------------------------------------------------------------------------- compiled state


@dataclass(frozen=True, slots=True)
class _Sources:
    specs: tuple[ListSpec, ...]
    allow: tuple[str, ...]
    allow_files: tuple[Path, ...]
    builtin: bool
    mixed_max_chars: int = 4


def _fingerprint(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    out: list[tuple[str, int, int]] = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), -1, -1))
    return tuple(out)


_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


@dataclass(frozen=True, slots=True)
class _Compiled:
    automaton: Any
    targets: tuple[tuple[tuple[str, str, str], ...], ...]
    """Per pattern: (risk, evidence id, kind) triples; empty for pure allow phrases."""
    allow: tuple[bool, ...]
    """Per pattern: whether it is an allow phrase."""
    edges: bytes
    """Per pattern: 1 = must not follow an ASCII letter/digit, 2 = must not precede one."""
    has_allow: bool
    max_len: int
    lists: tuple[WordList, ...]
    allow_phrases: tuple[str, ...]
    fingerprint: tuple[tuple[str, int, int], ...]
    patterns: int
    extra: ExtraEntries = NO_EXTRA
    """The extra entries this state was built with (a file reload keeps them)."""
    extra_index: dict[str, int] = field(default_factory=dict)
    """Extra entry id → its index in the ``database`` list (for :meth:`LexiconDetector.entry`)."""


def _edge_flags(pattern: str) -> int:
    # Latin patterns (pinyin, initials, English words) must not match inside a longer word:
    # "sex" in "sussex", "dubo" in "dubois".
    flags = 0
    if pattern[0] in _ASCII_ALNUM:
        flags |= 1
    if pattern[-1] in _ASCII_ALNUM:
        flags |= 2
    return flags


def _extra_list(extra: ExtraEntries) -> WordList:
    return WordList(EXTRA_LIST, "ledger database", tuple(
        LexiconEntry(e.text, (e.risk,), i, 0) for i, e in enumerate(extra.block)))


def _compile(sources: _Sources, options: NormalizeOptions, extra: ExtraEntries = NO_EXTRA) -> _Compiled:
    import ahocorasick_rs

    lists: list[WordList] = []
    allow_phrases: list[str] = list(sources.allow)
    watched: list[Path] = []
    if sources.builtin:
        lists.append(load_list(ListSpec(path=BUILTIN_LIST, name=BUILTIN_NAME, format="tsv")))
        allow_phrases += load_allow(BUILTIN_ALLOW)
    for spec in sources.specs:
        lists.append(load_list(spec))
        watched.append(spec.path)
    for path in sources.allow_files:
        allow_phrases += load_allow(path)
        watched.append(path)
    extra_list = _extra_list(extra) if extra.block else None
    if extra_list is not None:
        lists.append(extra_list)
    allow_phrases += extra.allow
    names = [wl.name for wl in lists]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"lexicon: two lists are named {dup!r}; give one of them a different `name`"
                          + (f" ({EXTRA_LIST!r} is the staff entries' list)" if dup == EXTRA_LIST else ""))

    def evidence(wl: WordList, e: LexiconEntry) -> str:
        # staff entries keep their database id: an index would shift when an earlier one is removed
        if wl is extra_list:
            return f"lexicon:{EXTRA_LIST}:{extra.block[e.index].id}"
        return f"lexicon:{wl.name}:{e.index}"

    entries = [(wl, e) for wl in lists for e in wl.entries]
    normalised = normalize_many([e.word for _, e in entries], options)
    index: dict[str, int] = {}
    patterns: list[str] = []
    targets: list[dict[str, tuple[str, str, str]]] = []
    allow_flags: list[bool] = []

    def slot(p: str) -> int:
        i = index.get(p)
        if i is None:
            i = index[p] = len(patterns)
            patterns.append(p)
            targets.append({})
            allow_flags.append(False)
        return i

    variant_words: list[str] = []
    variant_owner: list[int] = []
    for k, ((wl, e), norm) in enumerate(zip(entries, normalised, strict=True)):
        p = norm.strip()
        if not p:
            continue
        t = targets[slot(p)]
        for risk in e.risks:
            # One finding per risk; when several entries share a pattern, the first one names it.
            t.setdefault(risk, (risk, evidence(wl, e), wl.name))
        if e.pinyin:
            for v in pinyin_variants(p, mixed_max_chars=sources.mixed_max_chars):
                variant_words.append(v)
                variant_owner.append(k)
        if e.initials:
            v2 = initials_variant(p)
            if v2:
                variant_words.append(v2)
                variant_owner.append(k)
    for v, k in zip(normalize_many(variant_words, options), variant_owner, strict=True):
        v = v.strip()
        if not v:
            continue
        wl, e = entries[k]
        t = targets[slot(v)]
        for risk in e.risks:
            t.setdefault(risk, (risk, evidence(wl, e), wl.name))
    for a in normalize_many(allow_phrases, options):
        a = a.strip()
        if a:
            allow_flags[slot(a)] = True

    automaton = (
        ahocorasick_rs.AhoCorasick(patterns, matchkind=ahocorasick_rs.MatchKind.Standard) if patterns else None
    )
    return _Compiled(
        automaton=automaton,
        targets=tuple(tuple(t.values()) for t in targets),
        allow=tuple(allow_flags),
        edges=bytes(_edge_flags(p) for p in patterns),
        has_allow=any(allow_flags),
        max_len=max((len(p) for p in patterns), default=0),
        lists=tuple(lists),
        allow_phrases=tuple(a for a in allow_phrases if a.strip()),
        fingerprint=_fingerprint(watched),
        patterns=len(patterns),
        extra=extra,
        extra_index={e.id: i for i, e in enumerate(extra.block)},
    )


# ----------------------------------------------------------------------------- detector


@dataclass
class LexiconDetector(Detector):
    """Keyword lists → findings (risk of the entry, score 1.0, span in the original text)."""

    name: ClassVar[str] = "lexicon"
    cost: ClassVar[Cost] = "cheap"
    stream_mode: ClassVar[StreamMode] = "window"

    sources: _Sources = field(repr=False)
    options: NormalizeOptions = field(default_factory=NormalizeOptions, repr=False)
    auto_reload_seconds: float = 0.0
    last_reload_error: str | None = field(default=None, init=False)
    """Why the last automatic reload failed (the previous lists stay in force); None after success."""
    _compiled: _Compiled = field(init=False, repr=False)
    _next_check: float = field(default=0.0, init=False, repr=False)
    _reload_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _reloading: threading.Thread | None = field(default=None, init=False, repr=False)
    _fixed_risks: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._compiled = _compile(self.sources, self.options)
        self._next_check = time.monotonic() + self.auto_reload_seconds
        self._fixed_risks = bool(self.risks)
        self._update_risks()

    def _update_risks(self) -> None:
        if not self._fixed_risks:
            self.risks = tuple(sorted({r for wl in self._compiled.lists for e in wl.entries for r in e.risks}))

    # -- construction

    @classmethod
    def from_config(cls, cfg: LexiconConfig, base_dir: Path | str) -> LexiconDetector:
        """Build from the ``lexicon`` config section; relative paths are resolved against ``base_dir``."""
        base = Path(base_dir)

        def resolve(p: str) -> Path:
            q = Path(p).expanduser()
            return q if q.is_absolute() else base / q

        specs = tuple(
            ListSpec(
                path=resolve(f.path),
                name=f.name or Path(f.path).stem,
                format=f.format,
                risk=f.risk,
                category_map=dict(f.category_map),
                default_risk=f.default_risk,
                pinyin=cfg.pinyin if f.pinyin is None else f.pinyin,
                initials=cfg.initials if f.initials is None else f.initials,
            )
            for f in cfg.files
        )
        sources = _Sources(
            specs=specs,
            allow=tuple(cfg.allow),
            allow_files=tuple(resolve(p) for p in cfg.allow_files),
            builtin=cfg.builtin,
            mixed_max_chars=cfg.pinyin_mixed_max_chars,
        )
        if not cfg.enabled:
            # A disabled section yields a detector that matches nothing (and reads no files).
            sources = _Sources(specs=(), allow=(), allow_files=(), builtin=False)
        return cls(sources=sources, auto_reload_seconds=cfg.auto_reload_seconds)

    @classmethod
    def from_paths(
        cls,
        paths: Sequence[str | Path],
        *,
        builtin: bool = False,
        allow: Sequence[str] = (),
        allow_files: Sequence[str | Path] = (),
    ) -> LexiconDetector:
        """Build from CLI-style arguments: ``PATH`` (tsv/csv/xlsx that carry their risks) or
        ``PATH:RISK`` (a plain word list whose entries all get ``RISK``)."""
        specs = tuple(spec_from_argument(str(p)) for p in paths)
        sources = _Sources(
            specs=specs,
            allow=tuple(allow),
            allow_files=tuple(Path(p) for p in allow_files),
            builtin=builtin,
        )
        return cls(sources=sources)

    @classmethod
    def from_lists(cls, lists: Sequence[ListSpec], *, builtin: bool = False, allow: Sequence[str] = ()) -> LexiconDetector:
        return cls(sources=_Sources(specs=tuple(lists), allow=tuple(allow), allow_files=(), builtin=builtin))

    # -- state

    @property
    def lists(self) -> tuple[WordList, ...]:
        return self._compiled.lists

    @property
    def allow_phrases(self) -> tuple[str, ...]:
        return self._compiled.allow_phrases

    @property
    def pattern_count(self) -> int:
        return self._compiled.patterns

    def entry(self, evidence_id: str) -> tuple[WordList, LexiconEntry] | None:
        """The list and entry an evidence id (``lexicon:<list>:<index>``) names, in the current lists."""
        prefix, _, rest = evidence_id.partition(":")
        name, _, index = rest.rpartition(":")
        c = self._compiled
        if prefix == "lexicon" and name == EXTRA_LIST and index in c.extra_index:
            wl = next(wl for wl in c.lists if wl.name == EXTRA_LIST)
            return wl, wl.entries[c.extra_index[index]]
        if prefix != "lexicon" or not index.isdigit():
            return None
        for wl in self._compiled.lists:
            if wl.name == name and int(index) < len(wl.entries):
                return wl, wl.entries[int(index)]
        return None

    def holdback(self) -> int:
        """Longest pattern or allow phrase, in normalised characters (pinyin variants included)."""
        return self._compiled.max_len

    @property
    def extra_entries(self) -> ExtraEntries:
        return self._compiled.extra

    def reload(self) -> None:
        """Re-read every file and swap in the new automaton (the extra entries stay as they are). On
        error the old lists stay in force and the ``ConfigError`` propagates."""
        self._rebuild(None)

    def use_entries(self, extra: ExtraEntries) -> None:
        """Rebuild with these extra entries beside the files (re-read too) and swap, as :meth:`reload`
        does; on error the old lists and entries stay in force and the ``ConfigError`` propagates."""
        self._rebuild(extra)

    def _rebuild(self, extra: ExtraEntries | None) -> None:
        with self._reload_lock:
            new = _compile(self.sources, self.options, self._compiled.extra if extra is None else extra)
            self._compiled = new  # a single reference swap: readers see old or new, never a mix
            self.last_reload_error = None
            self._update_risks()

    def files_changed(self) -> bool:
        """Whether any watched file's modification time or size differs from the loaded state."""
        c = self._compiled
        return _fingerprint(Path(p) for p, _, _ in c.fingerprint) != c.fingerprint

    def poll(self) -> bool:
        """Reload now if a file changed; returns whether it reloaded. Errors are kept in
        ``last_reload_error`` (and logged), and the previous lists stay in force."""
        if not self.files_changed():
            return False
        try:
            self.reload()
        except ConfigError as exc:
            self.last_reload_error = str(exc)
            log.warning("lexicon reload failed, keeping the previous lists: %s", exc)
            # Do not retry a broken file on every check; wait for its next change.
            self._compiled = _replace_fingerprint(self._compiled)
            return False
        log.info("lexicon reloaded (%d patterns)", self._compiled.patterns)
        return True

    def _maybe_poll(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.auto_reload_seconds
        if self._reloading is not None and self._reloading.is_alive():
            return
        if self.files_changed():
            # Rebuild off the request path; requests keep using the current automaton meanwhile.
            self._reloading = threading.Thread(target=self.poll, name="hegui-lexicon-reload", daemon=True)
            self._reloading.start()

    def wait_reload(self, timeout: float | None = None) -> None:
        """Wait for a background reload started by the file check (for tests and shutdown)."""
        t = self._reloading
        if t is not None:
            t.join(timeout)

    # -- matching

    def detect(self, text: NormalizedText) -> list[Finding]:
        if self.auto_reload_seconds:
            self._maybe_poll()
        c = self._compiled
        if c.automaton is None or not text.text:
            return []
        s = text.text
        matches = c.automaton.find_matches_as_indexes(s, overlapping=True)
        if not matches:
            return []
        allow_spans = [(a, b) for i, a, b in matches if c.allow[i]] if c.has_allow else []
        n = len(s)
        targets, edges = c.targets, c.edges
        starts, ends = text.starts, text.ends
        out: list[Finding] = []
        for i, st, en in matches:
            tg = targets[i]
            if not tg:
                continue
            edge = edges[i]
            if edge and (
                (edge & 1 and st > 0 and s[st - 1] in _ASCII_ALNUM)
                or (edge & 2 and en < n and s[en] in _ASCII_ALNUM)
            ):
                continue
            if allow_spans and any(a <= st and en <= b for a, b in allow_spans):
                continue
            o_start, o_end = starts[st], ends[en - 1]  # NormalizedText.to_original, inlined (hot loop)
            for risk, evidence, kind in tg:
                out.append(Finding(risk, o_start, o_end, 1.0, "lexicon", evidence, kind))
        return out

    # -- reporting

    def stats(self) -> LexiconStats:
        return LexiconStats.of(self._compiled.lists, self._compiled.patterns, len(self._compiled.allow_phrases))


def _replace_fingerprint(c: _Compiled) -> _Compiled:
    from dataclasses import replace

    return replace(c, fingerprint=_fingerprint(Path(p) for p, _, _ in c.fingerprint))


# ----------------------------------------------------------------------------- statistics

# GB/T 45654 §8 (spec/regulation.md §1.5): keyword library size and per-risk minimums.
MIN_TOTAL = 10_000
MIN_PER_A1 = 200
MIN_PER_A2 = 100
MAX_CJK_CHARS = 10
MAX_FOREIGN_WORDS = 5


def too_long(word: str) -> bool:
    """Over the standard's keyword length note: > 10 Chinese characters or > 5 foreign words (L)."""
    cjk = sum(1 for ch in word if "\u3400" <= ch <= "\u9fff" or "\U00020000" <= ch <= "\U0003ffff")
    if cjk:
        return cjk > MAX_CJK_CHARS
    return len(word.split()) > MAX_FOREIGN_WORDS


@dataclass(frozen=True, slots=True)
class LexiconStats:
    total: int
    """Distinct keywords over all lists."""
    per_risk: dict[str, int]
    """Distinct keywords per risk code (a keyword with two risks counts for both)."""
    lists: dict[str, int]
    patterns: int
    allow: int
    too_long: int

    @staticmethod
    def minimum(code: str) -> int:
        cat = taxonomy.category_of(code)
        return MIN_PER_A1 if cat is taxonomy.Category.A1 else MIN_PER_A2 if cat is taxonomy.Category.A2 else 0

    def shortfalls(self) -> list[tuple[str, int, int]]:
        """(risk code, count, minimum) for each of the 17 keyword risks below its minimum."""
        return [
            (code, self.per_risk.get(code, 0), self.minimum(code))
            for code in taxonomy.KEYWORD_RISKS
            if self.per_risk.get(code, 0) < self.minimum(code)
        ]

    @property
    def meets_standard(self) -> bool:
        return self.total >= MIN_TOTAL and not self.shortfalls()

    @classmethod
    def of(cls, lists: Iterable[WordList], patterns: int, allow: int) -> LexiconStats:
        words: set[str] = set()
        per_risk: dict[str, set[str]] = {}
        per_list: Counter[str] = Counter()
        long = 0
        for wl in lists:
            per_list[wl.name] += len(wl.entries)
            for e in wl.entries:
                if e.word not in words and too_long(e.word):
                    long += 1
                words.add(e.word)
                for r in e.risks:
                    per_risk.setdefault(r, set()).add(e.word)
        return cls(
            total=len(words),
            per_risk={k: len(v) for k, v in sorted(per_risk.items(), key=lambda kv: _risk_order(kv[0]))},
            lists=dict(per_list),
            patterns=patterns,
            allow=allow,
            too_long=long,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "minimum_total": MIN_TOTAL,
            "per_risk": {
                code: {"count": self.per_risk.get(code, 0), "minimum": self.minimum(code)}
                for code in (*taxonomy.KEYWORD_RISKS, *(c for c in self.per_risk if c not in taxonomy.KEYWORD_RISKS))
            },
            "shortfalls": [c for c, _, _ in self.shortfalls()],
            "meets_standard": self.meets_standard,
            "lists": self.lists,
            "patterns": self.patterns,
            "allow_phrases": self.allow,
            "too_long": self.too_long,
        }


def _risk_order(code: str) -> int:
    codes = [r.code for r in taxonomy.RISKS]
    return codes.index(code) if code in codes else len(codes)
