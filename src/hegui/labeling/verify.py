"""The label verifier: read the implicit label of any supported file and judge it.

It reports the label's fields, whether ``ReservedCode1`` (producer) and ``ReservedCode2``
(propagator) verify, whether the content changed since signing, and, where it can be checked, whether
the explicit label is present. Outcomes map to exit codes: 0 labelled and consistent, 1 unlabelled,
3 tampered (bad hegui signature, changed content, malformed or conflicting labels).

A platform reads labels written by any tool (Labeling Measures Art. 6), so the label and its
signature are judged apart: a well-formed label in another tool's shape (bare object, numbers, see
:func:`~hegui.labeling.metadata.read_label_json`) whose ``ReservedCode1`` is empty or not hegui's
format is reported with exit 0 and a ``signature`` of ``absent`` or ``not-hegui``. Only integrity
data claiming hegui's format (``s1.``/``h1.``) can make a label tampered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hegui.errors import ConfigError, UserError
from hegui.labeling.formats import Kind, handler_for, kind_of
from hegui.labeling.metadata import (
    LABEL_MEANINGS,
    AIGCLabel,
    LabelFormatError,
    LabelReading,
    read_label_json,
)
from hegui.labeling.signing import (
    SignatureStatus,
    is_hegui_code,
    load_public_key,
    load_trusted_public_key,
    verify_propagation,
    verify_signature,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from hegui.config import HeguiConfig

EXIT_VALID = 0
EXIT_UNLABELLED = 1
EXIT_TAMPERED = 3

SIGNATURE_SUMMARY: dict[SignatureStatus, str] = {
    SignatureStatus.VALID: "valid",
    SignatureStatus.UNVERIFIED: "unverifiable",
    SignatureStatus.HASH_ONLY: "absent",
    SignatureStatus.UNSIGNED: "absent",
    SignatureStatus.NOT_HEGUI: "not-hegui",
    SignatureStatus.INVALID: "invalid",
    SignatureStatus.UNKNOWN_KEY: "invalid",
    SignatureStatus.CONTENT_CHANGED: "invalid",
    SignatureStatus.MALFORMED: "invalid",
}
"""The producer signature in one word: ``valid``, ``unverifiable`` (hegui's, no key to check it),
``absent`` (empty, or a content hash only), ``not-hegui`` (someone else's integrity data) or
``invalid`` (hegui integrity data that fails: exit 3)."""


@dataclass
class VerifyReport:
    path: Path
    kind: Kind
    raw: str | None = None
    label: AIGCLabel | None = None
    readings: dict[str, LabelReading] = field(default_factory=dict)
    """How the label was written in each place it was found (shape, accepted deviations)."""
    problems: list[str] = field(default_factory=list)
    """Reasons the label is not trustworthy (each makes the exit code 3)."""
    notes: list[str] = field(default_factory=list)
    producer: SignatureStatus | None = None
    propagator: SignatureStatus | None = None
    explicit: bool | None = None
    """Explicit label seen (True), not seen (False), or not checkable (None)."""
    explicit_note: str = ""
    c2pa: str | None = None
    """C2PA manifest state (``Valid``/``Trusted``/``Invalid``/``absent``); None when not checked."""
    watermark: str | None = None
    """Invisible watermark: ``matches``, ``other-label``, ``absent``, or None when not checked."""

    @property
    def status(self) -> str:
        if self.raw is None:
            return "unlabelled"
        return "tampered" if self.problems else "valid"

    @property
    def exit_code(self) -> int:
        return {"unlabelled": EXIT_UNLABELLED, "tampered": EXIT_TAMPERED}.get(self.status, EXIT_VALID)

    @property
    def content_changed(self) -> bool | None:
        """True when the label's digest does not match the content; None when the label has no digest."""
        statuses = [s for s in (self.producer, self.propagator) if s is not None]
        if SignatureStatus.CONTENT_CHANGED in statuses:
            return True
        if any(
            s in (SignatureStatus.VALID, SignatureStatus.UNVERIFIED, SignatureStatus.HASH_ONLY)
            for s in statuses
        ):
            return False
        return None

    @property
    def signature(self) -> str | None:
        """:data:`SIGNATURE_SUMMARY` of ``ReservedCode1``; None when no label could be read."""
        return SIGNATURE_SUMMARY[self.producer] if self.producer is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "kind": self.kind,
            "status": self.status,
            "exit_code": self.exit_code,
            "label": self.label.as_dict() if self.label else None,
            "label_meaning": LABEL_MEANINGS.get(self.label.label) if self.label else None,
            "raw": self.raw,
            "label_places": [
                {"place": place, "shape": r.shape, "deviations": list(r.deviations)}
                for place, r in self.readings.items()
            ],
            "signature": self.signature,
            "producer_signature": self.producer.value if self.producer else None,
            "propagator_signature": self.propagator.value if self.propagator else None,
            "content_changed": self.content_changed,
            "explicit_label": self.explicit,
            "explicit_note": self.explicit_note,
            "watermark": self.watermark,
            "c2pa": self.c2pa,
            "problems": self.problems,
            "notes": self.notes,
        }


_STATUS_PROBLEM = {
    SignatureStatus.INVALID: "signature does not verify: label fields were edited (or forged)",
    SignatureStatus.CONTENT_CHANGED: "content changed since signing (edited, or the label was copied from other content)",
    SignatureStatus.UNKNOWN_KEY: "signed by a key other than the trusted public key",
    SignatureStatus.MALFORMED: "claims hegui's format (s1./h1.) but does not parse as it (damaged or forged)",
}


def _shown(value: str, limit: int = 48) -> str:
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")


def _judge(
    report: VerifyReport, which: str, status: SignatureStatus, code: str = "", numeric: bool = False
) -> None:
    problem = _STATUS_PROBLEM.get(status)
    if problem:
        report.problems.append(f"{which}: {problem}")
    elif status == SignatureStatus.NOT_HEGUI:
        report.notes.append(
            f"{which}: {_shown(code)}{' (a JSON number)' if numeric else ''} is not an hegui signature "
            "(s1./h1.): another tool's integrity data, not checked"
        )
    elif status == SignatureStatus.UNVERIFIED:
        report.notes.append(f"{which}: signature not checked (no public key given); content digest matches")
    elif status == SignatureStatus.HASH_ONLY:
        report.notes.append(f"{which}: content hash only (unsigned); content matches the hash")


def _all_labels(path: Path, kind: Kind) -> dict[str, str]:
    if kind == "image":
        from hegui.labeling.fileio import read_input
        from hegui.labeling.image import read_labels

        return read_labels(read_input(path), str(path))
    raw = handler_for(path).read_label(path)
    return {"metadata": raw} if raw is not None else {}


def _check_explicit(report: VerifyReport, cfg: HeguiConfig) -> None:
    path, kind = report.path, report.kind
    try:
        if kind == "image":
            from hegui.labeling.image import explicit_label_in_file

            report.explicit = explicit_label_in_file(path, cfg)
            report.explicit_note = (
                f"looked for {cfg.labeling.image.text!r} at {cfg.labeling.image.position} as hegui draws it"
            )
        elif kind == "text":
            from hegui.labeling.documents import explicit_label_in_file as doc_check

            report.explicit = doc_check(path, cfg)
            report.explicit_note = f"looked for the labeling.text label(s) at the {cfg.labeling.text.position} of the visible text"
        elif kind == "audio":
            from hegui.labeling import audio

            found = audio.audio_has_explicit_label(path, audio.config_from(cfg))
            report.explicit = found
            report.explicit_note = (
                "listened for the 短长短短 cue at the start/end"
                if found is not None
                else "cue check not applicable"
            )
        elif kind == "video":
            from hegui.labeling import video

            vconf = video.config_from(cfg)
            font = cfg.resolve_path(vconf.font) if vconf.font else None
            report.explicit = video.video_has_explicit_label(path, vconf, font_path=font)
            report.explicit_note = f"looked for {vconf.text!r} on the opening {vconf.duration_s:g} s"
    except (ImportError, AttributeError):
        report.explicit, report.explicit_note = None, "explicit label check not available for this format"


def _check_c2pa(report: VerifyReport, cfg: HeguiConfig) -> None:
    """Informational: C2PA is not part of GB 45438, and propagation legitimately breaks its binding."""
    from hegui.labeling import c2pa_manifest
    from hegui.labeling.fileio import read_input
    from hegui.labeling.image import sniff

    data = read_input(report.path)
    anchors = None
    if cfg.labeling.c2pa.trust_anchors:
        anchor_path = cfg.resolve_path(cfg.labeling.c2pa.trust_anchors)
        try:
            anchors = anchor_path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"labeling.c2pa.trust_anchors: cannot read {anchor_path} ({exc.strerror})"
            ) from None
    reading = c2pa_manifest.read_bytes(data, sniff(data, str(report.path)), anchors)
    if reading is None:
        return
    report.c2pa = reading.state
    if reading.state == "Invalid":
        report.notes.append(
            "C2PA manifest invalid ("
            + ", ".join(reading.codes or ["no detail"])
            + "): the file changed after "
            "C2PA signing (hegui label propagate does this)"
        )


def _is_own(label: AIGCLabel, cfg: HeguiConfig) -> bool:
    """Does the label claim this provider as producer (then only this provider's key may sign it)?"""
    from hegui.labeling.provider_code import content_producer

    try:
        own = {content_producer(cfg.provider), cfg.provider.name}
    except UserError:
        own = {cfg.provider.name}
    return label.content_producer in own


def verify_file(
    path: Path,
    cfg: HeguiConfig,
    *,
    public_key: Ed25519PublicKey | None = None,
    public_key_path: Path | None = None,
    propagator_key_path: Path | None = None,
    check_explicit: bool = True,
) -> VerifyReport:
    """Read and judge the implicit label of ``path``. Raises UserError for unreadable/broken files."""
    path = Path(path)
    kind = kind_of(path)
    report = VerifyReport(path=path, kind=kind)
    found = _all_labels(path, kind)
    if check_explicit:
        _check_explicit(report, cfg)
    if kind == "image":
        _check_c2pa(report, cfg)
    reading = None
    if kind == "image" and cfg.labeling.image.watermark:
        from hegui.labeling.image import watermark_in_file

        reading = watermark_in_file(path)
        report.watermark = "absent" if not reading.present else None
    if not found:
        if reading is not None and reading.present:
            report.watermark = "found"
            report.notes.append(
                "hegui watermark found in the pixels: this image was labelled, its metadata removed"
            )
        return report
    report.raw = next(iter(found.values()))
    try:
        for place, raw in found.items():
            report.readings[place] = read_label_json(raw)
        parsed = [r.label for r in report.readings.values()]
        label = parsed[0]
        if any(p != label for p in parsed[1:]):
            report.problems.append(f"the file holds conflicting labels ({', '.join(found)})")
        label.validate()
    except LabelFormatError as exc:
        report.problems.append(str(exc))
        return report
    report.label = label
    numbers = next(iter(report.readings.values())).numbers
    if reading is not None and reading.present:
        if reading.matches(label.produce_id):
            report.watermark = "matches"
        else:
            report.watermark = "other-label"
            report.problems.append("the invisible watermark was made for a different label (label replaced)")
    handler = handler_for(path)
    digest: bytes = handler.content_digest(path)
    if label.reserved_code1 and not is_hegui_code(label.reserved_code1):
        # Another tool's integrity data: hegui cannot check it, so it neither proves nor disproves.
        report.producer = SignatureStatus.NOT_HEGUI
    else:
        key = public_key or load_trusted_public_key(cfg, public_key_path)
        report.producer = verify_signature(label, digest, key)
        trusted_given = public_key is not None or public_key_path is not None or bool(cfg.labeling.public_key)
        if report.producer is SignatureStatus.UNKNOWN_KEY and not trusted_given and not _is_own(label, cfg):
            # Our own key cannot judge another provider's signature: check the content binding only.
            report.producer = verify_signature(label, digest, None)
            report.notes.append(
                f"ReservedCode1: signed by another key (producer {label.content_producer}); "
                "pass --public-key with that producer's key to check the signature"
            )
    _judge(report, "ReservedCode1", report.producer, label.reserved_code1, "ReservedCode1" in numbers)
    if (
        report.producer in (SignatureStatus.UNSIGNED, SignatureStatus.HASH_ONLY, SignatureStatus.NOT_HEGUI)
        and cfg.labeling.require_signature
    ):
        report.problems.append("ReservedCode1: no hegui signature, but labeling.require_signature is on")
    if label.reserved_code2 and not is_hegui_code(label.reserved_code2):
        report.propagator = SignatureStatus.NOT_HEGUI
        _judge(report, "ReservedCode2", report.propagator, label.reserved_code2, "ReservedCode2" in numbers)
    elif label.reserved_code2:
        pkey = load_public_key(propagator_key_path, "--propagator-key") if propagator_key_path else None
        report.propagator = verify_propagation(label, digest, pkey)
        _judge(report, "ReservedCode2", report.propagator)
    elif (label.content_propagator, label.propagate_id) != (label.content_producer, label.produce_id):
        report.notes.append("propagator fields differ from the producer's but carry no ReservedCode2")
    return report


_SIGNATURE_LINE = {
    "valid": "valid (hegui signature by the trusted key)",
    "unverifiable": "unverifiable (hegui signature, no public key to check it)",
    "not-hegui": "not hegui's (ReservedCode1 holds another tool's data; not checked)",
    "invalid": "INVALID (see the problems below)",
}


def _signature_line(report: VerifyReport) -> str:
    summary = report.signature or "-"
    if summary == "absent":
        return (
            "absent (content hash only, no signature)"
            if (report.producer is SignatureStatus.HASH_ONLY)
            else "absent (ReservedCode1 is empty: nothing shows who wrote the label)"
        )
    return _SIGNATURE_LINE.get(summary, summary)


def _place_line(place: str, reading: LabelReading) -> str:
    shape = {
        "wrapped": '{"AIGC":{…}}',
        "bare": "bare object {…}",
        "wrapped-string": '{"AIGC":"{…}"} (record as a JSON string)',
    }[reading.shape]
    return f"  read from {place}: {'; '.join([shape, *reading.deviations])}"


def format_report(report: VerifyReport) -> str:
    """Human-readable report for the terminal."""
    lines = [f"{report.path}: {report.status.upper()}"]
    if report.raw is None:
        lines.append("  no implicit label (AIGC metadata) found")
    elif report.label is None:
        lines.append(f"  label: {report.raw}")
    else:
        d = report.label.as_dict()
        lines.append(f"  Label: {d['Label']} ({LABEL_MEANINGS[report.label.label]})")
        for name in ("ContentProducer", "ProduceID", "ContentPropagator", "PropagateID"):
            lines.append(f"  {name}: {d[name] or '-'}")
        lines.append(
            f"  producer signature (ReservedCode1): {report.producer.value if report.producer else '-'}"
        )
        lines.append(f"  signature: {_signature_line(report)}")
        if report.propagator is not None:
            lines.append(f"  propagator signature (ReservedCode2): {report.propagator.value}")
        changed = report.content_changed
        lines.append(
            "  content changed since signing: "
            + ("unknown (no digest)" if changed is None else "yes" if changed else "no")
        )
    lines.extend(_place_line(place, r) for place, r in report.readings.items())
    if report.watermark is not None:
        lines.append(f"  invisible watermark: {report.watermark}")
    if report.c2pa not in (None, "absent"):
        lines.append(f"  C2PA manifest: {report.c2pa}")
    if report.explicit is not None:
        lines.append(
            f"  explicit label: {'present' if report.explicit else 'NOT FOUND'} ({report.explicit_note})"
        )
    elif report.explicit_note:
        lines.append(f"  explicit label: not checked ({report.explicit_note})")
    lines.extend(f"  problem: {p}" for p in report.problems)
    lines.extend(f"  note: {n}" for n in report.notes)
    return "\n".join(lines)
