"""Which module labels which file, by suffix.

Every format module exposes the same trio: ``write_label(src, dst, label_json)``,
``read_label(path) -> str | None`` and ``content_digest(path) -> bytes`` (SHA-256 over the content
without its label). Modules are imported on first use, so audio/video libraries load only when needed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Literal

from hegui.errors import UserError

Kind = Literal["image", "text", "audio", "video"]

FORMATS: dict[str, tuple[Kind, str]] = {
    ".jpg": ("image", "hegui.labeling.image"),
    ".jpeg": ("image", "hegui.labeling.image"),
    ".png": ("image", "hegui.labeling.image"),
    ".webp": ("image", "hegui.labeling.image"),
    ".txt": ("text", "hegui.labeling.documents"),
    ".text": ("text", "hegui.labeling.documents"),
    ".md": ("text", "hegui.labeling.documents"),
    ".markdown": ("text", "hegui.labeling.documents"),
    ".html": ("text", "hegui.labeling.documents"),
    ".htm": ("text", "hegui.labeling.documents"),
    ".docx": ("text", "hegui.labeling.documents"),
    ".wav": ("audio", "hegui.labeling.audio"),
    ".mp3": ("audio", "hegui.labeling.audio"),
    ".flac": ("audio", "hegui.labeling.audio"),
    ".ogg": ("audio", "hegui.labeling.audio"),
    ".mp4": ("video", "hegui.labeling.video"),
    ".mov": ("video", "hegui.labeling.video"),
}


def suffixes(kind: Kind) -> list[str]:
    return [s for s, (k, _m) in FORMATS.items() if k == kind]


def kind_of(path: Path) -> Kind:
    """The kind of content ``path`` holds, from its suffix; UserError for unknown suffixes."""
    entry = FORMATS.get(Path(path).suffix.lower())
    if entry is None:
        known = " ".join(sorted(FORMATS))
        raise UserError(
            f"{path}: unsupported file type {Path(path).suffix or '(no suffix)'!r} (supported: {known})"
        )
    return entry[0]


def load_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise UserError(f"labelling support module {name} is not installed in this build") from None
        raise UserError(f"{name} needs the missing package {exc.name!r}") from None


def handler_for(path: Path) -> ModuleType:
    """The format module for ``path`` (has write_label, read_label, content_digest)."""
    kind_of(path)
    module = load_module(FORMATS[Path(path).suffix.lower()][1])
    for attr in ("write_label", "read_label", "content_digest"):
        if not hasattr(module, attr):
            raise UserError(f"{module.__name__} does not provide {attr}() yet; {path} cannot be handled")
    return module
