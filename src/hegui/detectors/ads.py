"""Ad-structure detector (``ads``): a lure near a contact handle.

Harmful posts in the wild are mostly ads: gambling, loans, fraud, sex services, grey goods and
personal-data sales, each with a way to get in touch. A word list sees few of them (the words are
disguised, and many lure words have benign senses); the *structure* gives them away: an offer
(``百家乐``, ``不查征信``, ``日结兼职``) within ``distance`` characters of a contact handle (a WeChat or
QQ id behind a prefix such as ``vx`` / ``薇`` / ``➕V`` / ``扣扣``, a mobile number, a short URL, a
Telegram ``@name``), written in any of the disguises ads use.

Rule, on the normalised text (:func:`hegui.text.normalize` already folds full-width forms, enclosed
digits, traditional characters and drops separators and emoji between CJK characters):

1. Lures: Aho-Corasick over the word list (``hegui/data/synth/ad_lures.yaml`` + ``extra_lures``):
   ``strong`` words (weight 0.9) name an illegal offer, ``weak`` words (0.5) have benign senses
   and count only with a perk word (``日结``, ``秒到账`` …) near the pair. No lure, no
   further work: this is the fast path almost all traffic takes.
2. Contacts, looked for only within ``distance`` of a lure, on a copy where Chinese numerals read
   as digits (``一三八`` / ``壹叁捌`` / ``幺`` → ``138``): a prefixed id (1.0), an 11-digit mobile number
   with up to two symbols between digits (0.9), a short URL or a domain with a spelled-out dot
   (0.9), a Telegram handle (0.8), a bare 6–10-digit number (0.55), an e-mail address (0.5), a
   landline or 400 number (0.45, businesses use them).
3. Score of a (lure, contact) pair = lure weight × contact strength, + 0.15 with a perk word and
   + 0.05 with a call to action (``加``, ``私聊`` …) in the window; × ``warning_factor`` when warning
   words (``诈骗``, ``警惕``, ``96110`` …) are in the text: an anti-fraud notice quotes lures and
   gives a hotline. One finding per lure category, its best pair, span from lure to contact.

Risks: gambling, loans, fraud and grey goods → ``A1h``; sex services → ``A1f``; sales of personal
information → ``A4f``. A contact alone or a lure alone gives no finding. See ``docs/ads.md``.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field

from hegui.detectors.base import Detector, Finding
from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.text import NormalizedText

STRONG_WEIGHT = 0.9
WEAK_WEIGHT = 0.5
PERK_BONUS = 0.15
CTA_BONUS = 0.05

CATEGORY_RISK: dict[str, str] = {
    "gambling": "A1h",
    "loan": "A1h",
    "fraud": "A1h",
    "sex": "A1f",
    "grey_goods": "A1h",
    "pi_sale": "A4f",
}

# Chinese numerals read as digits, one character for one so offsets stay put; only the contact
# search reads this copy ("一夜情" must stay a lure word).
_NUMERALS = str.maketrans(
    {
        **{c: str(i) for i, c in enumerate("〇一二三四五六七八九")},
        **{c: str(i) for i, c in enumerate("零壹贰叁肆伍陆柒捌玖")},
        "幺": "1",
        "两": "2",
    }
)

_SEP = r"[\s:：=→~～\-_.,，、|/>＞+➕]{0,3}"
_PREFIX = (
    r"(?:vx|wx|v信|微信|威信|薇信|徾信|危信|wei信|微心|微❤|加薇|加v|\+v|➕v|➕薇|薇|威|卫星|微|v|"
    r"qq|扣扣|企鹅|q群|抠抠|q|扣|tg|telegram|飞机|纸飞机|电报|✈️?)号?"
)
# a handle id: letters, digits, _ and -, with a digit in it or six characters long
_HANDLE = re.compile(
    rf"(?<![a-z0-9@]){_PREFIX}{_SEP}(?P<id>@?[a-z0-9][a-z0-9_\-]{{3,24}})(?![a-z0-9_])",
)
# digits with up to two symbols between them (spaces, dashes, emoji); not punctuation that ends a
# clause, so "13800138000，一小时" does not run on into the next number
_GAP = r"[^0-9a-z\u4e00-\u9fff\n,，。;；!！?？()（）]"
_DIGITS = re.compile(rf"(?<![0-9.])\d(?:{_GAP}{{0,2}}\d){{4,14}}(?![0-9])")
# "裸、条、借、款": normalisation keeps 、 (it is punctuation), ads use it as a separator. Only runs
# of single characters count: "苹果、香蕉" is an enumeration, not a split word.
_SPLIT_RUN = re.compile(r"(?<![\u4e00-\u9fff])[\u4e00-\u9fff](?:、[\u4e00-\u9fff](?![\u4e00-\u9fff])){2,}")
_URL = re.compile(
    r"(?<![@a-z0-9\-.])(?:https?://)?(?:www\.)?[a-z0-9][a-z0-9\-]{0,30}(?:\.|\s?(?:点|\(点\)|dot)\s?|。)"
    r"(?:[a-z0-9\-]+\.)*(?:com|cn|cc|vip|top|xyz|net|me|io|app|club|site|win|bet|co|ly|im|org|info|shop|live|fun)"
    r"(?![a-z])(?:/[\w\-./?=&%]*)?"
)
_EMAIL = re.compile(r"[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+")
_TELEGRAM = re.compile(r"(?<![a-z0-9._%+\-])@[a-z][a-z0-9_]{4,31}")
_OFFICIAL = re.compile(r"\.(?:gov|edu|org)\.cn|\.gov\b|\.edu\b")


@dataclass(frozen=True, slots=True)
class Contact:
    start: int
    end: int
    kind: str
    strength: float


@dataclass(frozen=True, slots=True)
class _Lure:
    category: str
    weight: float


class AdsConfig(BaseModel):
    """Config of the ads detector (the ``detectors.ads`` section)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    distance: int = Field(default=50, ge=5, le=500)
    """Most normalised characters between the end of a lure and a contact (either order)."""
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    """Findings below this score are not reported."""
    warning_factor: float = Field(default=0.4, ge=0.0, le=1.0)
    """Factor on the score when warning words (``诈骗``, ``警惕``, ``96110`` …) are in the text."""
    extra_lures: str | None = None
    """A UTF-8 file of extra lure words, one ``word<TAB>category[<TAB>strong|weak]`` a line
    (``#`` comments); relative to the config file."""
    pinyin: bool = True
    """Also match the pinyin spellings of the strong lure words (``baijiale``, ``bai家乐``)."""


_CONTEXT = 12
"""Characters either side of a pair in which perk and call-to-action words count."""


class _Spans:
    """Sorted match spans, asked whether one lies inside ``[lo, hi)``."""

    def __init__(self, matches: list[tuple[Any, int, int]]) -> None:
        spans = sorted((s, e) for _, s, e in matches)
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]

    def inside(self, lo: int, hi: int) -> bool:
        i = bisect.bisect_left(self.starts, lo)
        while i < len(self.starts) and self.starts[i] < hi:
            if self.ends[i] <= hi:
                return True
            i += 1
        return False


def _data() -> dict[str, Any]:
    path = resources.files("hegui").joinpath("data/synth/ad_lures.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def read_extra_lures(path: Path) -> list[tuple[str, str, bool]]:
    """``(word, category, strong)`` from an extra lure file; a bad line is a one-line UserError."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: lure file not found (detectors.ads.extra_lures)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read lure file ({exc})") from None
    out: list[tuple[str, str, bool]] = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) < 2 or not parts[0]:
            raise UserError(f"{path}:{lineno}: expected word<TAB>category[<TAB>strong|weak]")
        word, category = parts[0], parts[1]
        if category not in CATEGORY_RISK:
            raise UserError(
                f"{path}:{lineno}: unknown category {category!r}; one of {', '.join(CATEGORY_RISK)}"
            )
        strength = parts[2] if len(parts) > 2 and parts[2] else "strong"
        if strength not in ("strong", "weak"):
            raise UserError(f"{path}:{lineno}: third field must be strong or weak, got {strength!r}")
        out.append((word, category, strength == "strong"))
    return out


@cache
def _pinyin_variants(word: str) -> tuple[str, ...]:
    from hegui.text.pinyin import pinyin_variants

    # short romanisations ("dubo" is fine, "du" is not) would match inside ordinary ids
    return tuple(v for v in pinyin_variants(word) if len(v) >= 4)


class _WordSet:
    """Aho-Corasick automaton over normalised words with a payload per pattern."""

    def __init__(self, words: dict[str, Any]) -> None:
        import ahocorasick_rs

        self.patterns = [w for w in words if w]
        self.payload = [words[w] for w in self.patterns]
        self._ac = (
            ahocorasick_rs.AhoCorasick(self.patterns, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)
            if self.patterns
            else None
        )

    def find(self, text: str) -> list[tuple[Any, int, int]]:
        if self._ac is None:
            return []
        return [(self.payload[i], s, e) for i, s, e in self._ac.find_matches_as_indexes(text)]

    def any_in(self, text: str) -> bool:
        return bool(self._ac is not None and self._ac.find_matches_as_indexes(text))


def _fold_table() -> dict[int, str]:
    """NFKC + lower case for the characters ads write handles with (full-width forms, enclosed and
    parenthesised digits, Latin capitals, ideographic full stop …), one character for one."""
    table: dict[int, str] = {}
    ranges = [
        (0x41, 0x5A),
        (0xC0, 0x24F),
        (0x2150, 0x24FF),
        (0x2776, 0x2793),
        (0x3000, 0x303F),
        (0xFF00, 0xFFEF),
    ]
    for lo, hi in ranges:
        for cp in range(lo, hi + 1):
            c = chr(cp)
            f = unicodedata.normalize("NFKC", c).lower()
            if len(f) == 1 and f != c:
                table[cp] = f
    return table


_FOLD = _fold_table()


def fold(text: str) -> str:
    """NFKC and lower case, one character for one (a character whose folding has several is
    kept), so spans in the result are spans in ``text``: ``１３８`` → ``138``, ``①`` → ``1``. A
    ``str.translate`` table, so it runs at C speed."""
    return text.translate(_FOLD)


def find_contacts(text: str) -> list[Contact]:
    """Contact handles in ``text`` (folded with :func:`fold`; spans in ``text``), the strongest
    kept where two overlap. Public for tests and for the docs' examples."""
    t = text.translate(_NUMERALS)
    found: list[Contact] = []
    for m in _EMAIL.finditer(t):
        found.append(Contact(m.start(), m.end(), "email", 0.5))
    for m in _URL.finditer(t):
        official = _OFFICIAL.search(m.group()) is not None
        found.append(Contact(m.start(), m.end(), "url", 0.3 if official else 0.9))
    for m in _HANDLE.finditer(t):
        ident = m.group("id")
        if not (any(c.isdigit() for c in ident) or len(ident) >= 6):
            continue
        # a one-letter prefix ("v", "q") with a short id is too easy to hit by chance
        prefix_len = m.start("id") - m.start()
        if (
            prefix_len <= 2
            and t[m.start()] in "vq"
            and sum(c.isdigit() for c in ident) < 5
            and len(ident) < 6
        ):
            continue
        found.append(Contact(m.start(), m.end(), "handle", 1.0))
    for m in _TELEGRAM.finditer(t):
        found.append(Contact(m.start(), m.end(), "telegram", 0.8))
    for m in _DIGITS.finditer(t):
        digits = re.sub(r"\D", "", m.group())
        if len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789":
            found.append(Contact(m.start(), m.end(), "mobile", 0.9))
        elif digits.startswith(("400", "800", "0")) and len(digits) >= 10:
            found.append(Contact(m.start(), m.end(), "landline", 0.45))
        elif 6 <= len(digits) <= 10:
            found.append(Contact(m.start(), m.end(), "number", 0.55))
    # keep the strongest of overlapping spans (a QQ number is also a bare number)
    found.sort(key=lambda c: (-c.strength, c.start))
    kept: list[Contact] = []
    for c in found:
        if not any(c.start < k.end and k.start < c.end for k in kept):
            kept.append(c)
    kept.sort(key=lambda c: c.start)
    return kept


@dataclass
class AdsDetector(Detector):
    name: ClassVar[str] = "ads"
    cost = "cheap"
    # pairs span up to `distance` characters plus a handle: checked on sentence segments, like
    # the other structural detectors; inputs (where ads arrive) come whole
    stream_mode = "segment"

    config: AdsConfig = field(default_factory=AdsConfig)
    base_dir: Path | None = None
    risks: tuple[str, ...] = field(default=("A1h", "A1f", "A4f"), kw_only=True)

    def __post_init__(self) -> None:
        from hegui.text import normalize

        data = _data()
        words: dict[str, _Lure] = {}
        entries: list[tuple[str, str, bool]] = []
        for category, spec in data["categories"].items():
            entries += [(w, category, True) for w in spec.get("strong", [])]
            entries += [(w, category, False) for w in spec.get("weak", [])]
        if self.config.extra_lures:
            p = Path(self.config.extra_lures)
            if not p.is_absolute() and self.base_dir is not None:
                p = self.base_dir / p
            entries += read_extra_lures(p)
        for word, category, strong in entries:
            lure = _Lure(category, STRONG_WEIGHT if strong else WEAK_WEIGHT)
            forms = [normalize(str(word)).text]
            if strong and self.config.pinyin:
                forms += list(_pinyin_variants(forms[0]))
            for form in forms:
                old = words.get(form)
                if old is None or old.weight < lure.weight:
                    words[form] = lure
        self._lures = _WordSet(words)
        self._perks = _WordSet({normalize(str(w)).text: True for w in data["perks"]})
        self._ctas = _WordSet({normalize(str(w)).text: True for w in data["ctas"]})
        self._warnings = _WordSet({normalize(str(w)).text: True for w in data["warnings"]})

    @classmethod
    def from_config(cls, config: AdsConfig, base_dir: Path | str | None = None) -> AdsDetector:
        return cls(config=config, base_dir=Path(base_dir) if base_dir is not None else None)

    def detect(self, text: NormalizedText) -> list[Finding]:
        if not self.config.enabled:
            return []
        t = text.text
        lures = self._lures.find(t)
        if "、" in t:
            lures += self._compact_lures(t)
        if lures and not self._perks.any_in(t):
            # weak lures count only with a perk word near them: none in the text, none at all
            lures = [x for x in lures if x[0].weight >= STRONG_WEIGHT]
        if not lures:
            return []
        d = self.config.distance
        contacts = self._contacts_near(text, lures)
        if not contacts:
            return []
        warned = self._warnings.any_in(t)
        perks = _Spans(self._perks.find(t))
        ctas = _Spans(self._ctas.find(t))
        contacts.sort(key=lambda c: c.start)
        cstarts = [c.start for c in contacts]
        best: dict[str, tuple[float, int, int, str, float]] = {}
        for lure, ls, le in lures:
            # contacts that start within reach: handles are short, so 60 characters before the lure
            first = bisect.bisect_left(cstarts, ls - d - 60)
            last = bisect.bisect_right(cstarts, le + d)
            for c in contacts[first:last]:
                gap = c.start - le if c.start >= le else ls - c.end
                if gap > d or (c.start < le and ls < c.end):
                    continue  # too far, or the lure sits inside the handle ("vip" in an id)
                s, e = min(ls, c.start), max(le, c.end)
                perk = perks.inside(s - _CONTEXT, e + _CONTEXT)
                if lure.weight < STRONG_WEIGHT and not perk:
                    continue  # "证件" near a phone number is a lost-and-found notice
                score = lure.weight * c.strength + (PERK_BONUS if perk else 0.0)
                if ctas.inside(s - _CONTEXT, e + _CONTEXT):
                    score += CTA_BONUS
                if warned:
                    score *= self.config.warning_factor
                score = min(1.0, score)
                if score > best.get(lure.category, (-1.0, 0, 0, "", 0.0))[0]:
                    best[lure.category] = (score, s, e, c.kind, lure.weight)
        kept = {k: v for k, v in best.items() if v[0] >= self.config.min_score}
        strong = [(s, e) for _, s, e, _, w in kept.values() if w >= STRONG_WEIGHT]
        out: list[Finding] = []
        for category, (score, s, e, kind, weight) in kept.items():
            if weight < STRONG_WEIGHT and any(s < se and ss < e for ss, se in strong):
                continue  # "出售" (weak, grey goods) in front of 公民个人信息 (strong, PI sale)
            start, end = text.to_original(s, e)
            out.append(
                Finding(
                    CATEGORY_RISK[category], start, end, score, self.name, f"ads:{category}:{kind}", category
                )
            )
        out.sort(key=lambda f: (f.start, -f.score))
        return out

    def _contacts_near(self, text: NormalizedText, lures: list[tuple[_Lure, int, int]]) -> list[Contact]:
        """Contacts within reach of the lures, in normalised coordinates. They are looked for in
        the *original* text, folded one character for one (NFKC, lower case): normalisation drops
        the symbols between a CJK character and a Latin one, so ``章✈@name`` would lose the ``@``
        and ``✈`` that make it a handle."""
        t = text.text
        reach = self.config.distance + 40
        ns = max(0, min(s for _, s, _ in lures) - reach)
        ne = min(len(t), max(e for _, _, e in lures) + reach)
        lo, hi = text.to_original(ns, ne) if ne > ns else (0, 0)
        window = fold(text.original[lo:hi])
        out: list[Contact] = []
        starts = text.starts
        for c in find_contacts(window):
            cs = bisect.bisect_left(starts, c.start + lo)
            ce = bisect.bisect_left(starts, c.end + lo)
            if ce > cs:
                out.append(Contact(cs, ce, c.kind, c.strength))
        return out

    def _compact_lures(self, t: str) -> list[tuple[_Lure, int, int]]:
        """Lures written with 、 between their characters, spans mapped back to ``t``."""
        out: list[tuple[_Lure, int, int]] = []
        for m in _SPLIT_RUN.finditer(t):
            # characters sit at every other position of the run
            base, compact = m.start(), m.group()[::2]
            out += [(lure, base + 2 * s, base + 2 * (e - 1) + 1) for lure, s, e in self._lures.find(compact)]
        return out

    def holdback(self) -> int:
        return 0


__all__ = ["CATEGORY_RISK", "AdsConfig", "AdsDetector", "Contact", "find_contacts", "read_extra_lures"]
