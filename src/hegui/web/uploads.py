"""Complaint attachments: the real type sniffed from the bytes, then stored atomically under a random name.

What a browser declares (``Content-Type``) and what the file is called are chosen by the sender, so
neither decides anything: the content must *be* an image Pillow can open and verify, a PDF (``%PDF-``
header), or UTF-8 text without NUL or control characters. A file whose name or declared type claims
another kind than its content (an HTML page called ``x.png``) is refused too: that mismatch is what a
disguised file looks like. Files go outside any web root, named by :func:`secrets.token_hex`, written
to a temporary file first and moved into place with :func:`os.replace`, so a half-written file never
carries a real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from hegui.cases.store import AttachmentIn

_PILLOW_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
_EXTENSIONS = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".pdf": "application/pdf", ".txt": "text/plain", ".text": "text/plain", ".log": "text/plain",
}
_ALLOWED_CONTROL = {"\t", "\n", "\r", "\f"}
_MARKUP_STARTS = ("<!doctype", "<html", "<script", "<svg", "<?xml", "<body", "<head", "<iframe")


class UploadRefused(ValueError):
    """The file cannot be accepted; the message says why, in a key of :mod:`hegui.web.messages`."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


def _kind(media_type: str) -> str:
    return media_type.split("/")[0] if media_type.startswith("image/") else media_type


def sniff(data: bytes) -> str | None:
    """The media type the bytes really are (one of the attachment types), or None."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    image = _sniff_image(data)
    if image is not None:
        return image
    if _is_plain_text(data):
        return "text/plain"
    return None


def _sniff_image(data: bytes) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # a decompression bomb is refused, not decoded
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format
                img.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
            SyntaxError, ValueError, EOFError):
        return None
    return _PILLOW_FORMATS.get(fmt or "")


def _is_plain_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return False
    if any((ord(ch) < 32 and ch not in _ALLOWED_CONTROL) or 0x7F <= ord(ch) < 0xA0 for ch in text):
        return False
    # markup is not plain text, whatever it is called: a browser would render it
    head = text.lstrip("\ufeff \t\r\n").lower()
    return not head.startswith(_MARKUP_STARTS)


def check(data: bytes, filename: str, declared_type: str, *, allowed: list[str], max_bytes: int) -> str:
    """The file's real media type, or :class:`UploadRefused` (empty, too large, unknown or disguised)."""
    if not data:
        raise UploadRefused("upload_empty")
    if len(data) > max_bytes:
        raise UploadRefused("upload_too_large", limit=max_bytes // 1024)
    real = sniff(data)
    if real is None or real not in allowed:
        raise UploadRefused("upload_type")
    claimed = [_EXTENSIONS.get(Path(filename).suffix.lower()), (declared_type or "").split(";")[0].strip().lower()]
    for claim in claimed:
        # ``application/octet-stream`` and unknown extensions claim nothing; a known kind must match
        if claim and (claim in _EXTENSIONS.values()) and _kind(claim) != _kind(real):
            raise UploadRefused("upload_disguised")
    return real


@dataclass
class StoredFile:
    path: Path
    attachment: AttachmentIn

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def store(data: bytes, media_type: str, original_name: str, folder: Path) -> StoredFile:
    """Write ``data`` into ``folder`` under a random name (temp file + ``os.replace``)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = secrets.token_hex(16)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    safe_name = "".join(ch for ch in Path(original_name).name if ch.isprintable())[:200]
    return StoredFile(folder / name, AttachmentIn(stored_name=name, media_type=media_type, size=len(data),
                                                  sha256=hashlib.sha256(data).hexdigest(),
                                                  original_name=safe_name))
