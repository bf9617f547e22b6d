"""Labeling settings (``labeling:`` in hegui.yaml).

Explicit label texts are checked against GB 45438 §5: a text label must contain an AI element
("AI" or "人工智能") and "生成" and/or "合成", so a config that would produce a non-compliant label is
rejected when it is loaded, naming the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ImagePosition = Literal[
    "bottom-right", "bottom-left", "top-right", "top-left", "top", "bottom", "left", "right"
]


def explicit_label_problem(text: str) -> str | None:
    """Why ``text`` is not a GB 45438 explicit label, or None when it is one."""
    has_ai = "AI" in text or "人工智能" in text
    has_gen = "生成" in text or "合成" in text
    if has_ai and has_gen:
        return None
    missing = []
    if not has_ai:
        missing.append('"AI" or "人工智能"')
    if not has_gen:
        missing.append('"生成" or "合成"')
    return f"explicit label {text!r} must contain {' and '.join(missing)} (GB 45438 §5)"


def _check_label(value: str) -> str:
    problem = explicit_label_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class TextLabelConfig(BaseModel):
    """Explicit and implicit labels on text (chat answers, .txt/.md/.html/.docx files)."""

    model_config = ConfigDict(extra="forbid")
    prefix: str = "【AI生成】"
    """Explicit label put before the text."""
    suffix: str = "（本内容由人工智能生成）"
    """Explicit label put after the text."""
    position: Literal["start", "end", "both"] = "start"
    """Where the explicit text label goes."""
    plain_implicit: Literal["trailer", "sidecar"] = "trailer"
    """Plain-text implicit label: a last line ``AIGC: {…}`` or a ``FILE.aigc.json`` file beside it."""

    @field_validator("prefix", "suffix")
    @classmethod
    def _compliant(cls, value: str) -> str:
        return _check_label(value)


class DrawnLabelConfig(BaseModel):
    """An explicit label drawn as text on pixels (images and video frames)."""

    model_config = ConfigDict(extra="forbid")
    text: str = "AI生成"
    """Text drawn on the image or frames."""
    position: ImagePosition = "bottom-right"
    """Edge or corner the label goes on (GB 45438: edge or corner)."""
    height_ratio: float = Field(default=0.05, ge=0.05, le=0.5)
    """Glyph height as a share of the shorter side; GB 45438 asks for at least 0.05."""
    font: str | None = None
    """TrueType/OpenType font (.ttf/.otf/.ttc) for ``text``; unset uses the bundled Noto Sans SC subset."""

    @field_validator("text")
    @classmethod
    def _compliant(cls, value: str) -> str:
        return _check_label(value)


class ImageLabelConfig(DrawnLabelConfig):
    """Explicit label drawn on images."""

    watermark: bool = False
    """Also hide an invisible watermark (DWT-DCT-SVD) tied to the label's ProduceID in the pixels."""


class VideoLabelConfig(DrawnLabelConfig):
    """Explicit label burnt into video frames (used by :mod:`hegui.labeling.video`)."""

    position: ImagePosition = "top-left"
    """Edge or corner of the frame."""
    duration_s: float = Field(default=2.0, ge=2.0)
    """Seconds the label stays on from the first frame (GB 45438: ≥ 2 s on the opening frames)."""
    whole_video: bool = False
    """Keep the label on every frame, not only the opening ``duration_s``."""
    crf: int = Field(default=18, ge=0, le=51)
    """libx264 constant rate factor of the re-encode (lower is better; 18 is visually lossless)."""
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
    ] = "veryfast"
    """libx264 speed/size trade-off of the re-encode."""
    audio: Literal["copy", "aac"] = "copy"
    """``copy`` keeps the audio packets when the container takes the codec; ``aac`` always re-encodes."""


class AudioLabelConfig(BaseModel):
    """Explicit label added to audio (used by :mod:`hegui.labeling.audio`)."""

    model_config = ConfigDict(extra="forbid")
    cue: Literal["morse", "clip", "none"] = "morse"
    """``morse``: the rhythm 短长短短 (Morse "AI"); ``clip``: a spoken-label recording; ``none``: metadata only."""
    clip: str | None = None
    """Spoken-label audio file for ``cue: clip``."""
    position: Literal["start", "end", "both"] = "start"
    """Where the cue goes."""
    tone_hz: float = Field(default=880.0, gt=20.0, lt=20000.0)
    """Pitch of the cue."""
    unit_ms: int = Field(default=100, ge=40, le=400)
    """Length of one Morse unit (a dot); a dash is three units."""
    level_db: float = Field(default=0.0, ge=-40, le=20)
    """Cue loudness relative to the content's, in dB."""
    pad_ms: int = Field(default=250, ge=0, le=5000)
    """Silence between the cue and the content."""

    @model_validator(mode="after")
    def _clip_given(self) -> AudioLabelConfig:
        if self.cue == "clip" and not self.clip:
            raise ValueError("cue 'clip' needs labeling.audio.clip (the spoken-label file)")
        return self


class C2PAConfig(BaseModel):
    """Optional C2PA manifest on labelled images (needs the ``c2pa`` extra)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    """Embed a signed C2PA manifest in labelled images, beside the GB 45438 metadata."""
    cert_chain: str | None = None
    """PEM certificate chain, signing certificate first."""
    private_key: str | None = None
    """PEM (PKCS#8) private key of the signing certificate."""
    algorithm: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"
    """Signature algorithm matching the key."""
    tsa_url: str | None = None
    """RFC 3161 time-stamp server; unset signs offline."""
    trust_anchors: str | None = None
    """PEM root certificates the verifier trusts (``Trusted`` instead of ``Valid``)."""
    thumbnail: bool = False
    """Let the C2PA SDK add a thumbnail to the manifest (adds tens of KB)."""

    @model_validator(mode="after")
    def _files_given(self) -> C2PAConfig:
        if self.enabled and not (self.cert_chain and self.private_key):
            raise ValueError("enabled needs cert_chain and private_key")
        return self


class LabelingConfig(BaseModel):
    """GB 45438 labels: what is added to generated content, and how labels are signed."""

    model_config = ConfigDict(extra="forbid")
    explicit: bool = True
    """Add explicit (visible/audible) labels; ``--no-explicit`` turns them off per command."""
    signing_key: str | None = None
    """Ed25519 private key (PEM) signing ``ReservedCode1``; unset writes a content hash only."""
    public_key: str | None = None
    """Ed25519 public key (PEM) the verifier trusts; unset derives it from ``signing_key``."""
    require_signature: bool = False
    """``hegui label verify`` fails (exit 3) on labels that carry no signature."""
    text: TextLabelConfig = Field(default_factory=TextLabelConfig)
    image: ImageLabelConfig = Field(default_factory=ImageLabelConfig)
    video: VideoLabelConfig = Field(default_factory=VideoLabelConfig)
    audio: AudioLabelConfig = Field(default_factory=AudioLabelConfig)
    c2pa: C2PAConfig = Field(default_factory=C2PAConfig)
