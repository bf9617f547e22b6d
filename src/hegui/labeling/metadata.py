"""The GB 45438 Annex E implicit label: one compact JSON record with seven fields in a fixed order.

``{"AIGC":{"Label":"1","ContentProducer":…,"ProduceID":…,"ReservedCode1":…,"ContentPropagator":…,
"PropagateID":…,"ReservedCode2":…}}``. XMP (``TC260:AIGC``) stores only the inner object.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

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
        """Parse the outer ``{"AIGC":{…}}`` or the inner object. Raises :class:`LabelFormatError`."""
        if isinstance(s, bytes):
            try:
                s = s.decode("utf-8")
            except UnicodeDecodeError:
                raise LabelFormatError("implicit label is not UTF-8") from None
        try:
            data: Any = json.loads(s)
        except json.JSONDecodeError as exc:
            raise LabelFormatError(
                f"implicit label is not valid JSON ({exc.msg} at char {exc.pos})"
            ) from None
        if isinstance(data, dict) and set(data) == {"AIGC"}:
            data = data["AIGC"]
            if isinstance(data, str):
                # Some writers nest the inner object as a JSON string; accept it, write it properly.
                return cls.from_json(data)
        if not isinstance(data, dict):
            raise LabelFormatError("implicit label must be a JSON object")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise LabelFormatError(f"implicit label has unknown field {unknown[0]!r}")
        for name in ("Label", "ContentProducer", "ProduceID"):
            if name not in data:
                raise LabelFormatError(f"implicit label lacks the required field {name!r}")
        values: dict[str, str] = {}
        for name, attr in zip(FIELDS, _ATTRS, strict=True):
            v = data.get(name, "")
            if isinstance(v, int) and not isinstance(v, bool) and name == "Label":
                v = str(v)
            if not isinstance(v, str):
                raise LabelFormatError(f"implicit label field {name!r} must be a string")
            values[attr] = v
        return cls(**values)

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
