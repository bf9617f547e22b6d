"""The GB 45438 Annex E implicit label: one compact JSON record with seven fields in a fixed order.

``{"AIGC":{"Label":"1","ContentProducer":…,"ProduceID":…,"ReservedCode1":…,"ContentPropagator":…,
"PropagateID":…,"ReservedCode2":…}}``. XMP (``TC260:AIGC``) stores only the inner object.

hegui writes that form; :func:`read_label_json` also reads the other shapes labels of other tools
are found in (bare object, numbers for the reserved codes and ids, nulls), and says what differed.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from hegui.errors import UserError

if TYPE_CHECKING:
    from hegui.config import HeguiConfig, ProviderConfig

FIELDS: tuple[str, ...] = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)
_ATTRS: tuple[str, ...] = (
    "label",
    "content_producer",
    "produce_id",
    "reserved_code1",
    "content_propagator",
    "propagate_id",
    "reserved_code2",
)
LABEL_MEANINGS = {
    "1": "AI-generated",
    "2": "possibly AI-generated (user-declared)",
    "3": "suspected AI-generated (platform-detected)",
}


class LabelFormatError(UserError):
    """An implicit label (or a file that should hold one) is malformed."""


def charset_problem(value: str) -> str | None:
    """The first character outside GB 45438's value set (0x21, 0x23–0x5B, 0x5D–0x7E), described."""
    for i, ch in enumerate(value):
        o = ord(ch)
        if not (o == 0x21 or 0x23 <= o <= 0x5B or 0x5D <= o <= 0x7E):
            shown = {" ": "space", '"': 'double quote "', "\\": "backslash \\"}.get(ch, repr(ch))
            return f"character {shown} (U+{o:04X}) at position {i} is not allowed (only 0x21, 0x23-0x5B, 0x5D-0x7E)"
    return None


@dataclass(frozen=True)
class AIGCLabel:
    """One implicit label. ``label``: "1" AI-generated, "2" possibly (user-declared), "3" suspected."""

    label: str
    content_producer: str
    produce_id: str
    reserved_code1: str = ""
    content_propagator: str = ""
    propagate_id: str = ""
    reserved_code2: str = ""

    def as_dict(self) -> dict[str, str]:
        """The inner object as an ordered dict with the standard's key names."""
        return {name: getattr(self, attr) for name, attr in zip(FIELDS, _ATTRS, strict=True)}

    def inner_json(self) -> str:
        """Compact JSON of the inner object (what XMP ``TC260:AIGC`` holds)."""
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))

    def to_json(self) -> str:
        """Compact JSON ``{"AIGC":{…}}`` with the keys in the standard's order."""
        return '{"AIGC":' + self.inner_json() + "}"

    @classmethod
    def from_json(cls, s: str | bytes) -> AIGCLabel:
        """Parse any shape :func:`read_label_json` accepts. Raises :class:`LabelFormatError`."""
        return read_label_json(s).label

    def validate(self) -> None:
        """Check ``Label`` and the character set of every value (GB 45438 Annex E)."""
        if self.label not in LABEL_MEANINGS:
            raise LabelFormatError(
                f'implicit label field \'Label\' must be "1", "2" or "3", not {self.label!r}'
            )
        for name, attr in zip(FIELDS, _ATTRS, strict=True):
            value = getattr(self, attr)
            if name in ("ContentProducer", "ProduceID") and not value:
                raise LabelFormatError(f"implicit label field {name!r} must not be empty")
            problem = charset_problem(value)
            if problem:
                raise LabelFormatError(f"implicit label field {name!r}: {problem}")

    def with_propagator(self, propagator: str, propagate_id: str | None = None) -> AIGCLabel:
        """A copy with new propagator fields (and no propagator signature yet)."""
        return replace(
            self,
            content_propagator=propagator,
            propagate_id=propagate_id or new_content_id(),
            reserved_code2="",
        )


LabelShape = Literal["wrapped", "bare", "wrapped-string"]
"""How a label was written: ``{"AIGC":{…}}``, the bare inner object ``{…}``, or ``{"AIGC":"{…}"}``."""

_REQUIRED = ("Label", "ContentProducer", "ProduceID")
_NAME_FIELDS = ("ContentProducer", "ContentPropagator")
"""Provider names or codes: a JSON number here has lost its meaning (a code's leading zeros)."""
_ID_FIELDS = ("ProduceID", "PropagateID")


class _JsonNumber(str):
    """A JSON number kept as its literal text: no float rounding, no lost digits of a long id."""

    __slots__ = ()

    @property
    def is_integer(self) -> bool:
        return self.removeprefix("-").isdigit()


def _reject_constant(name: str) -> Any:
    raise LabelFormatError(f"implicit label is not valid JSON ({name} is not a JSON value)")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of repeated keys silently; a label saying two things is inconsistent.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise LabelFormatError(f"implicit label repeats the field {key!r}")
        out[key] = value
    return out


@dataclass(frozen=True)
class LabelReading:
    """A label as found in a file, with what its written form did differently from Annex E."""

    label: AIGCLabel
    shape: LabelShape
    deviations: tuple[str, ...] = ()
    """Accepted departures from the standard's form (JSON numbers, nulls, missing optional fields)."""
    numbers: frozenset[str] = frozenset()
    """Fields written as JSON numbers (their literal text is the value read)."""


def read_label_json(s: str | bytes, *, _depth: int = 0) -> LabelReading:
    """Read an implicit label in any shape in circulation, or raise :class:`LabelFormatError`.

    Accepted: the wrapped ``{"AIGC":{…}}``, the bare inner object (what XMP ``TC260:AIGC`` holds,
    and what some tools write everywhere), the inner object nested as a JSON string; any JSON
    whitespace and a leading BOM; ``Label`` as a number; ``ReservedCode1``/``ReservedCode2`` as any
    JSON number, ``ProduceID``/``PropagateID`` as an integer (read as their literal text); ``null``
    or a missing key for the four optional fields (read as empty). Rejected: anything else that
    is not a string, unknown or repeated keys, a missing or null required field, NaN/Infinity.
    The values' own constraints (``Label`` 1/2/3, character set) are :meth:`AIGCLabel.validate`'s.
    """
    if isinstance(s, bytes):
        try:
            s = s.decode("utf-8")
        except UnicodeDecodeError:
            raise LabelFormatError("implicit label is not UTF-8") from None
    text = s.lstrip("\ufeff").strip()
    try:
        data: Any = json.loads(
            text,
            parse_int=_JsonNumber,
            parse_float=_JsonNumber,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except json.JSONDecodeError as exc:
        raise LabelFormatError(f"implicit label is not valid JSON ({exc.msg} at char {exc.pos})") from None
    shape: LabelShape = "bare"
    if isinstance(data, dict) and set(data) == {"AIGC"}:
        data, shape = data["AIGC"], "wrapped"
        if isinstance(data, str) and not isinstance(data, _JsonNumber):
            # Some writers nest the record as a JSON string (once; deeper is not a label).
            if _depth:
                raise LabelFormatError("implicit label nests the record as a JSON string more than once")
            inner = read_label_json(data, _depth=_depth + 1)
            return replace(inner, shape="wrapped-string")
    if not isinstance(data, dict):
        raise LabelFormatError("implicit label must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise LabelFormatError(f"implicit label has unknown field {unknown[0]!r}")
    values: dict[str, str] = {}
    deviations: list[str] = []
    numbers: set[str] = set()
    missing: list[str] = []
    for name, attr in zip(FIELDS, _ATTRS, strict=True):
        v = data.get(name)
        if v is None:
            if name in _REQUIRED:
                raise LabelFormatError(f"implicit label lacks the required field {name!r}")
            if name in data:
                deviations.append(f"{name} is null (read as empty)")
            else:
                missing.append(name)
            v = ""
        elif isinstance(v, _JsonNumber):
            if name in _NAME_FIELDS or (name in _ID_FIELDS and not v.is_integer):
                raise LabelFormatError(f"implicit label field {name!r} must be a string")
            numbers.add(name)
            deviations.append(f"{name} is a JSON number (read as {str(v)!r})")
            v = str(v)
        elif not isinstance(v, str):
            raise LabelFormatError(f"implicit label field {name!r} must be a string")
        values[attr] = v
    if missing:
        deviations.append(f"no {', '.join(missing)} (read as empty)")
    return LabelReading(AIGCLabel(**values), shape, tuple(deviations), frozenset(numbers))


def new_content_id() -> str:
    """A unique, time-ordered id: 12 hex digits of milliseconds since 1970 + 20 random hex digits."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def new_label(cfg: HeguiConfig | ProviderConfig, *, label: str = "1") -> AIGCLabel:
    """A fresh, unsigned label for content this provider generates.

    ``ContentProducer`` is the 27-character provider code when ``provider.uscc`` is set, else the
    provider name; the propagator fields equal the producer's (first write, Annex E note 1).
    """
    from hegui.config import HeguiConfig
    from hegui.labeling.provider_code import content_producer

    provider = cfg.provider if isinstance(cfg, HeguiConfig) else cfg
    producer = content_producer(provider)
    pid = new_content_id()
    result = AIGCLabel(
        label=str(label),
        content_producer=producer,
        produce_id=pid,
        content_propagator=producer,
        propagate_id=pid,
    )
    result.validate()
    return result
