"""Images: the explicit label drawn on an edge or corner, and the implicit label in XMP.

Explicit (GB 45438 §5): white text in a semi-opaque black box, so it is legible on any background;
the glyph height (ink, not the font size) is at least ``height_ratio`` (≥ 5%) of the shorter side.

Implicit (§2.4 of the spec): XMP property ``TC260:AIGC`` (namespace
``http://www.tc260.org.cn/ns/AIGC/1.0/``) holding the inner JSON object, merged into any XMP the
file already has. JPEG: APP1 XMP segment; PNG: iTXt ``XML:com.adobe.xmp`` plus an iTXt ``AIGC`` with
the full JSON; WebP: ``XMP `` chunk. Metadata is spliced into the file bytes, so adding or
changing a label never re-encodes (and never alters) the pixels.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import (
    Image,
    ImageDraw,
    ImageFont,
    ImageOps,
    ImageSequence,
    JpegImagePlugin,
    PngImagePlugin,
    UnidentifiedImageError,
)

from hegui.errors import UserError
from hegui.labeling import xmp
from hegui.labeling.fileio import read_input, write_bytes_atomic
from hegui.labeling.fonts import resolve_font
from hegui.labeling.metadata import LabelFormatError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hegui.config import HeguiConfig
    from hegui.labeling.metadata import AIGCLabel
    from hegui.labeling.watermark import WatermarkReading

BOX_ALPHA = 150
"""Opacity of the black box: any background is darkened to ≤ 41% brightness under white text."""
TEXT_COLOUR = (255, 255, 255, 255)
CRISP_BELOW_PX = 24
"""Small labels are drawn without anti-aliasing: at a few pixels, smoothed strokes turn grey."""


@dataclass(frozen=True)
class LabelLayout:
    """Where an explicit label goes on an image of a given size."""

    box: tuple[int, int, int, int]
    """The contrast box (left, top, right, bottom), right/bottom exclusive."""
    text_origin: tuple[int, int]
    """Where to draw the text (Pillow's default ``la`` anchor) so its ink sits inside the box."""
    font_path: Path
    font_size: int
    glyph_height: int
    """Ink height of the rendered text in pixels."""


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=256)
def _fit_font(path: str, text: str, target: int) -> tuple[int, tuple[int, int, int, int]]:
    """Smallest font size whose ink height for ``text`` is ≥ ``target`` px, with that ink box."""
    size: int = max(4, math.floor(target / 0.95))
    while True:
        bbox = _font(path, size).getbbox(text)
        if bbox[3] - bbox[1] >= target:
            return size, (int(bbox[0]), int(bbox[1]), int(bbox[2]), int(bbox[3]))
        size += max(1, int(target - (bbox[3] - bbox[1])) // 2)


def layout_explicit_label(
    size: tuple[int, int],
    text: str,
    *,
    position: str = "bottom-right",
    height_ratio: float = 0.05,
    font_path: str | Path | None = None,
    font_key: str = "labeling.image.font",
    extra_px: int = 2,
) -> LabelLayout:
    """Compute the box and text position; raises UserError if the label cannot fit.

    ``extra_px`` is added to the required glyph height: anti-aliased top and bottom rows are lighter
    than the label colour, so the fully coloured glyph pixels (what a measurement sees) still span
    the required height.
    """
    if not text.strip():
        raise UserError("explicit label text is empty")
    if height_ratio < 0.05:
        raise UserError(f"height_ratio {height_ratio} is below GB 45438's 5% of the shorter side")
    width, height = size
    path = resolve_font(text, font_path, font_key)
    target = max(1, math.ceil(height_ratio * min(width, height))) + extra_px
    font_size, (left, top, right, bottom) = _fit_font(str(path), text, target)
    ink_w, ink_h = right - left, bottom - top
    pad = max(2, round(ink_h * 0.3))
    margin = round(min(width, height) * 0.01)
    box_w, box_h = ink_w + 2 * pad, ink_h + 2 * pad
    if box_w + 2 * margin > width or box_h + 2 * margin > height:
        raise UserError(
            f"explicit label {text!r} ({box_w}×{box_h} px at {height_ratio:.0%} glyph height) "
            f"does not fit a {width}×{height} image; use a shorter labeling.image.text"
        )
    vertical, _, horizontal = position.partition("-")
    if position in ("left", "right"):
        vertical, horizontal = "middle", position
    elif position in ("top", "bottom"):
        horizontal = "center"
    x0 = {"left": margin, "right": width - margin - box_w, "center": (width - box_w) // 2}.get(horizontal)
    y0 = {"top": margin, "bottom": height - margin - box_h, "middle": (height - box_h) // 2}.get(vertical)
    if x0 is None or y0 is None:
        raise UserError(f"unknown label position {position!r}")
    return LabelLayout(
        box=(x0, y0, x0 + box_w, y0 + box_h),
        text_origin=(x0 + pad - left, y0 + pad - top),
        font_path=path,
        font_size=font_size,
        glyph_height=ink_h,
    )


def _drawable(img: Image.Image) -> Image.Image:
    if img.mode in ("RGB", "RGBA"):
        return img.copy()
    has_alpha = img.mode in ("LA", "PA", "La") or "transparency" in img.info
    return img.convert("RGBA" if has_alpha else "RGB")


def draw_explicit_label(
    img: Image.Image,
    text: str,
    *,
    position: str = "bottom-right",
    height_ratio: float = 0.05,
    font_path: str | None = None,
) -> Image.Image:
    """A copy of ``img`` (RGB or RGBA) with ``text`` in a contrast box on an edge or corner.

    Images in other modes are converted to RGB (RGBA if they have transparency).
    """
    out = _drawable(img)
    layout = layout_explicit_label(
        out.size, text, position=position, height_ratio=height_ratio, font_path=font_path
    )
    x0, y0 = layout.box[:2]
    region = out.crop(layout.box).convert("RGBA")
    region = Image.alpha_composite(region, Image.new("RGBA", region.size, (0, 0, 0, BOX_ALPHA)))
    draw = ImageDraw.Draw(region)
    if layout.glyph_height < CRISP_BELOW_PX:
        draw.fontmode = "1"
    draw.text(
        (layout.text_origin[0] - x0, layout.text_origin[1] - y0),
        text,
        font=_font(str(layout.font_path), layout.font_size),
        fill=TEXT_COLOUR,
    )
    out.paste(region if out.mode == "RGBA" else region.convert(out.mode), (x0, y0))
    return out


def explicit_label_present(
    img: Image.Image,
    text: str,
    *,
    position: str = "bottom-right",
    height_ratio: float = 0.05,
    font_path: str | None = None,
) -> bool:
    """Best effort: does ``img`` show ``text`` as :func:`draw_explicit_label` would draw it there?

    Re-renders the text mask at the expected place and compares brightness: glyph pixels must be
    much brighter than the rest of the box, and the box must be dark (the contrast box). Survives
    JPEG compression; a label drawn elsewhere, in another size or font, is not recognised.
    """
    # The drawn size may differ by a pixel or two (files from other hegui versions, rounding):
    # try the sizes around the one configured.
    for extra_px in (2, 1, 3, 0, 4):
        try:
            layout = layout_explicit_label(
                img.size,
                text,
                position=position,
                height_ratio=height_ratio,
                font_path=font_path,
                extra_px=extra_px,
            )
        except UserError:
            return False
        if _shows_label(img, layout, text):
            return True
    return False


def _shows_label(img: Image.Image, layout: LabelLayout, text: str) -> bool:
    x0, y0 = layout.box[:2]
    region = img.crop(layout.box).convert("L")
    mask = Image.new("L", region.size, 0)
    draw = ImageDraw.Draw(mask)
    if layout.glyph_height < CRISP_BELOW_PX:
        draw.fontmode = "1"
    draw.text(
        (layout.text_origin[0] - x0, layout.text_origin[1] - y0),
        text,
        font=_font(str(layout.font_path), layout.font_size),
        fill=255,
    )
    lum = region.tobytes()
    m = mask.tobytes()
    inside = [lum[i] for i in range(len(m)) if m[i] >= 224]
    outside = [lum[i] for i in range(len(m)) if m[i] == 0]
    if not inside or not outside:
        return False
    mean_in = sum(inside) / len(inside)
    mean_out = sum(outside) / len(outside)
    return mean_in - mean_out >= 60 and mean_out <= 150


# --- implicit label: file formats ----------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_MAX_SEGMENT = 0xFFFF - 2

ImageKind = Literal["jpeg", "png", "webp"]
SUFFIX_KINDS: dict[str, ImageKind] = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}
_PIL_FORMATS: dict[ImageKind, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def sniff(data: bytes, name: str | Path) -> ImageKind:
    """The image container from its magic bytes; LabelFormatError when it is none we label."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if not data:
        raise LabelFormatError(f"{name}: empty file")
    expected = SUFFIX_KINDS.get(Path(name).suffix.lower())
    if expected:
        raise LabelFormatError(f"{name}: not a {expected.upper()} file (bad signature)")
    raise LabelFormatError(f"{name}: not a JPEG, PNG or WebP image")


def kind_for_output(dst: Path) -> ImageKind:
    kind = SUFFIX_KINDS.get(dst.suffix.lower())
    if kind is None:
        raise UserError(f"{dst}: output must end in .jpg, .jpeg, .png or .webp")
    return kind


# JPEG ----------------------------------------------------------------------------------------------


@dataclass
class _JpegSegment:
    marker: int
    start: int
    end: int
    payload: bytes


def _jpeg_segments(data: bytes, name: str) -> tuple[list[_JpegSegment], int]:
    """Header segments before the first SOS, and the offset of that SOS marker."""
    if not data.startswith(b"\xff\xd8"):
        raise LabelFormatError(f"{name}: not a JPEG file (no SOI marker)")
    pos = 2
    segments: list[_JpegSegment] = []
    while True:
        while pos < len(data) and data[pos] == 0xFF and pos + 1 < len(data) and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 4 > len(data):
            raise LabelFormatError(f"{name}: truncated JPEG (ends inside the header at byte {pos})")
        if data[pos] != 0xFF:
            raise LabelFormatError(f"{name}: corrupt JPEG (expected a marker at byte {pos})")
        marker = data[pos + 1]
        if marker == 0xDA:
            if data.rfind(b"\xff\xd9", pos) < 0:
                raise LabelFormatError(f"{name}: truncated JPEG (no end-of-image marker)")
            return segments, pos
        if marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            raise LabelFormatError(f"{name}: corrupt JPEG (unexpected marker 0xFF{marker:02X} at byte {pos})")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise LabelFormatError(f"{name}: truncated JPEG (segment 0xFF{marker:02X} runs past the end)")
        segments.append(_JpegSegment(marker, pos, end, data[pos + 4 : end]))
        pos = end


def _jpeg_xmp(segments: list[_JpegSegment]) -> _JpegSegment | None:
    for seg in segments:
        if seg.marker == 0xE1 and seg.payload.startswith(JPEG_XMP_HEADER):
            return seg
    return None


def _jpeg_write(data: bytes, inner_json: str, name: str) -> bytes:
    segments, _sos = _jpeg_segments(data, name)
    old = _jpeg_xmp(segments)
    packet = xmp.merge(old.payload[len(JPEG_XMP_HEADER) :] if old else None, inner_json)
    payload = JPEG_XMP_HEADER + packet
    if len(payload) > _JPEG_MAX_SEGMENT:
        raise LabelFormatError(
            f"{name}: XMP packet of {len(payload)} bytes does not fit one JPEG APP1 segment"
        )
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    if old is not None:
        return data[: old.start] + segment + data[old.end :]
    # After JFIF/Exif APPn segments, where readers expect XMP.
    insert_at = 2
    for seg in segments:
        if seg.marker in (0xE0, 0xE1):
            insert_at = seg.end
        else:
            break
    return data[:insert_at] + segment + data[insert_at:]


def _jpeg_read(data: bytes, name: str) -> dict[str, str]:
    segments, _sos = _jpeg_segments(data, name)
    seg = _jpeg_xmp(segments)
    found = xmp.read(seg.payload[len(JPEG_XMP_HEADER) :]) if seg else None
    return {"xmp": found} if found is not None else {}


# PNG -----------------------------------------------------------------------------------------------


@dataclass
class _PngChunk:
    ctype: bytes
    start: int
    end: int
    body: bytes


def _png_chunks(data: bytes, name: str) -> list[_PngChunk]:
    if not data.startswith(PNG_SIGNATURE):
        raise LabelFormatError(f"{name}: not a PNG file (bad signature)")
    pos = len(PNG_SIGNATURE)
    chunks: list[_PngChunk] = []
    while True:
        if pos + 8 > len(data):
            raise LabelFormatError(f"{name}: truncated PNG (no IEND chunk)")
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise LabelFormatError(
                f"{name}: truncated PNG (chunk {ctype.decode('latin-1')!r} runs past the end)"
            )
        body = data[pos + 8 : pos + 8 + length]
        if zlib.crc32(ctype + body) != int.from_bytes(data[end - 4 : end], "big"):
            raise LabelFormatError(f"{name}: corrupt PNG (bad CRC in chunk {ctype.decode('latin-1')!r})")
        chunks.append(_PngChunk(ctype, pos, end, body))
        pos = end
        if ctype == b"IEND":
            return chunks


def _png_text(chunk: _PngChunk) -> tuple[bytes, str] | None:
    """(keyword, text) of a tEXt/zTXt/iTXt chunk."""
    keyword, sep, rest = chunk.body.partition(b"\x00")
    if not sep:
        return None
    try:
        if chunk.ctype == b"tEXt":
            return keyword, rest.decode("latin-1")
        if chunk.ctype == b"zTXt":
            return keyword, zlib.decompress(rest[1:]).decode("latin-1")
        if chunk.ctype == b"iTXt":
            compressed, _method = rest[0], rest[1]
            _lang, _, rest = rest[2:].partition(b"\x00")
            _tkey, _, text = rest.partition(b"\x00")
            return keyword, (zlib.decompress(text) if compressed else text).decode("utf-8")
    except (zlib.error, UnicodeDecodeError, IndexError):
        return None
    return None


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + ctype + body + zlib.crc32(ctype + body).to_bytes(4, "big")


def _itxt(keyword: bytes, text: str) -> bytes:
    return _png_chunk(b"iTXt", keyword + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def _png_write(data: bytes, label_json: str, inner_json: str, name: str) -> bytes:
    chunks = _png_chunks(data, name)
    old_xmp: str | None = None
    drop: set[int] = set()
    for i, chunk in enumerate(chunks):
        if chunk.ctype in (b"tEXt", b"zTXt", b"iTXt"):
            parsed = _png_text(chunk)
            if parsed is None:
                continue
            if parsed[0] == XMP_KEYWORD and old_xmp is None:
                old_xmp = parsed[1]
                drop.add(i)
            elif parsed[0] == b"AIGC":
                drop.add(i)
    new = _itxt(XMP_KEYWORD, xmp.merge(old_xmp, inner_json).decode("utf-8")) + _itxt(b"AIGC", label_json)
    first_idat = next(i for i, c in enumerate(chunks) if c.ctype in (b"IDAT", b"IEND"))
    out = [data[: len(PNG_SIGNATURE)]]
    for i, chunk in enumerate(chunks):
        if i == first_idat:
            out.append(new)
        if i not in drop:
            out.append(data[chunk.start : chunk.end])
    return b"".join(out)


def _png_read(data: bytes, name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in _png_chunks(data, name):
        if chunk.ctype in (b"tEXt", b"zTXt", b"iTXt"):
            parsed = _png_text(chunk)
            if parsed is None:
                continue
            if parsed[0] == XMP_KEYWORD:
                value = xmp.read(parsed[1])
                if value is not None:
                    found.setdefault("xmp", value)
            elif parsed[0] == b"AIGC":
                found.setdefault("png:AIGC", parsed[1])
    return found


# WebP ----------------------------------------------------------------------------------------------


@dataclass
class _RiffChunk:
    fourcc: bytes
    start: int
    end: int
    body: bytes


def _webp_chunks(data: bytes, name: str) -> list[_RiffChunk]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise LabelFormatError(f"{name}: not a WebP file (bad RIFF header)")
    size = int.from_bytes(data[4:8], "little")
    if size + 8 > len(data):
        raise LabelFormatError(f"{name}: truncated WebP (RIFF size {size + 8} > file size {len(data)})")
    pos, stop = 12, size + 8
    chunks: list[_RiffChunk] = []
    while pos < stop:
        if pos + 8 > stop:
            raise LabelFormatError(f"{name}: truncated WebP (chunk header at byte {pos})")
        fourcc = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        end = pos + 8 + length + (length & 1)
        if pos + 8 + length > stop:
            raise LabelFormatError(
                f"{name}: truncated WebP (chunk {fourcc.decode('latin-1')!r} runs past the end)"
            )
        chunks.append(_RiffChunk(fourcc, pos, min(end, stop), data[pos + 8 : pos + 8 + length]))
        pos = end
    if not chunks:
        raise LabelFormatError(f"{name}: WebP file has no chunks")
    return chunks


def _riff_chunk(fourcc: bytes, body: bytes) -> bytes:
    return fourcc + len(body).to_bytes(4, "little") + body + (b"\x00" if len(body) & 1 else b"")


def _webp_canvas(chunk: _RiffChunk, name: str) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple-format WebP's only image chunk."""
    body = chunk.body
    if chunk.fourcc == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        w = int.from_bytes(body[6:8], "little") & 0x3FFF
        h = int.from_bytes(body[8:10], "little") & 0x3FFF
        return w, h, False
    if chunk.fourcc == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise LabelFormatError(f"{name}: corrupt WebP (unreadable {chunk.fourcc.decode('latin-1')!r} header)")


def _webp_write(data: bytes, inner_json: str, name: str) -> bytes:
    chunks = _webp_chunks(data, name)
    old = next((c for c in chunks if c.fourcc == b"XMP "), None)
    xmp_chunk = _riff_chunk(b"XMP ", xmp.merge(old.body if old else None, inner_json))
    parts: list[bytes] = []
    if chunks[0].fourcc == b"VP8X":
        flagged = bytearray(chunks[0].body)
        flagged[0] |= 0x04  # XMP metadata present
        parts.append(_riff_chunk(b"VP8X", bytes(flagged)))
        parts.extend(data[c.start : c.end] for c in chunks[1:] if c.fourcc != b"XMP ")
    else:
        w, h, alpha = _webp_canvas(chunks[0], name)
        flags = 0x04 | (0x10 if alpha else 0)
        vp8x = bytes([flags, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
        parts.append(_riff_chunk(b"VP8X", vp8x))
        parts.extend(data[c.start : c.end] for c in chunks if c.fourcc != b"XMP ")
    parts.append(xmp_chunk)  # XMP comes last in the extended format
    body = b"WEBP" + b"".join(parts)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _webp_read(data: bytes, name: str) -> dict[str, str]:
    chunk = next((c for c in _webp_chunks(data, name) if c.fourcc == b"XMP "), None)
    found = xmp.read(chunk.body) if chunk else None
    return {"xmp": found} if found is not None else {}


# the format trio ------------------------------------------------------------------------------------


def embed_label(data: bytes, label_json: str, name: str = "image") -> bytes:
    """``data`` (JPEG/PNG/WebP bytes) with the implicit label merged into its metadata."""
    from hegui.labeling.metadata import AIGCLabel

    try:
        inner = AIGCLabel.from_json(label_json).inner_json()
        kind = sniff(data, name)
        if kind == "jpeg":
            return _jpeg_write(data, inner, name)
        if kind == "png":
            return _png_write(data, '{"AIGC":' + inner + "}", inner, name)
        return _webp_write(data, inner, name)
    except LabelFormatError as exc:
        if str(exc).startswith(f"{name}: "):
            raise
        raise LabelFormatError(f"{name}: {exc}") from None


def read_labels(data: bytes, name: str = "image") -> dict[str, str]:
    """Every implicit label found, by place (``xmp``, ``png:AIGC``), as raw JSON."""
    kind = sniff(data, name)
    if kind == "jpeg":
        return _jpeg_read(data, name)
    if kind == "png":
        return _png_read(data, name)
    return _webp_read(data, name)


def write_label(src: Path, dst: Path, label_json: str) -> None:
    """Copy ``src`` to ``dst`` with the implicit label in its metadata (pixels untouched)."""
    data = read_input(src)
    write_bytes_atomic(dst, embed_label(data, label_json, str(src)))


def read_label(path: Path) -> str | None:
    """The implicit label's JSON (XMP ``TC260:AIGC`` first, then PNG iTXt ``AIGC``), or None."""
    found = read_labels(read_input(path), str(path))
    return found.get("xmp") or found.get("png:AIGC")


def check_structure(data: bytes, name: str) -> ImageKind:
    """Walk the container (PNG chunks with CRCs, JPEG segments, RIFF chunks): precise errors, early."""
    kind = sniff(data, name)
    if kind == "jpeg":
        _jpeg_segments(data, name)
    elif kind == "png":
        _png_chunks(data, name)
    else:
        _webp_chunks(data, name)
    return kind


def _open(data: bytes, name: str) -> Image.Image:
    kind = check_structure(data, name)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except UnidentifiedImageError:
        raise LabelFormatError(f"{name}: not a readable {kind.upper()} image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc)
        what = (
            "truncated"
            if "truncated" in msg or "broken data stream" in msg or isinstance(exc, EOFError)
            else "corrupt"
        )
        raise LabelFormatError(f"{name}: {what} {kind.upper()} ({msg})") from None
    except Image.DecompressionBombError as exc:
        raise LabelFormatError(f"{name}: {exc}") from None
    return img


def pixel_digest(img: Image.Image) -> bytes:
    """SHA-256 over the decoded pixels of every frame (mode, size and raw bytes)."""
    h = hashlib.sha256(b"hegui-pixels-v1")
    for frame in ImageSequence.Iterator(img):
        h.update(f"\x00{frame.mode}\x00{frame.size[0]}x{frame.size[1]}\x00".encode())
        h.update(frame.tobytes())
    return h.digest()


def content_digest_bytes(data: bytes, name: str = "image") -> bytes:
    img = _open(data, name)
    try:
        return pixel_digest(img)
    except (OSError, ValueError, EOFError) as exc:
        raise LabelFormatError(f"{name}: corrupt {sniff(data, name).upper()} ({exc})") from None


def content_digest(path: Path) -> bytes:
    """SHA-256 over the decoded pixels, so metadata edits leave it unchanged and pixel edits do not."""
    return content_digest_bytes(read_input(path), str(path))


# labelling -----------------------------------------------------------------------------------------


def _encode(img: Image.Image, kind: ImageKind, source: Image.Image) -> bytes:
    """Encode with the source's colour profile, EXIF and XMP (the label is spliced in afterwards)."""
    buf = io.BytesIO()
    params: dict[str, Any] = {}
    icc = source.info.get("icc_profile")
    if icc:
        params["icc_profile"] = icc
    exif = source.getexif()
    if exif:
        exif.pop(0x0112, None)  # orientation was applied to the pixels
        params["exif"] = exif.tobytes()
    old_xmp = source.info.get("xmp")
    if kind == "png":
        info = PngImagePlugin.PngInfo()
        if isinstance(old_xmp, (bytes, str)) and old_xmp:
            info.add_itxt(
                XMP_KEYWORD.decode(),
                old_xmp.decode("utf-8", "replace") if isinstance(old_xmp, bytes) else old_xmp,
            )
        for key, value in getattr(source, "text", {}).items():
            if key not in ("AIGC", XMP_KEYWORD.decode()) and isinstance(value, str):
                info.add_itxt(key, value)
        params["pnginfo"] = info
    elif old_xmp:
        params["xmp"] = old_xmp if isinstance(old_xmp, bytes) else str(old_xmp).encode("utf-8")
    if kind == "jpeg":
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            # JPEG has no alpha: show transparent areas as white, as viewers do, not as hidden colours.
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert(
                "RGB"
            )
        elif img.mode not in ("RGB", "L", "CMYK"):
            img = img.convert("RGB")
        params["quality"] = 95
        if source.format == "JPEG":
            sampling = JpegImagePlugin.get_sampling(source)
            if sampling != -1:
                params["subsampling"] = sampling
    elif kind == "webp":
        lossless = source.format == "WEBP" and source.info.get("lossless", False)
        params.update(lossless=bool(lossless) or source.format == "PNG", quality=90, method=4)
    img.save(buf, format=_PIL_FORMATS[kind], **params)
    return buf.getvalue()


def label_image(
    src: Path,
    dst: Path,
    cfg: HeguiConfig,
    label: AIGCLabel,
    *,
    explicit: bool | None = None,
) -> AIGCLabel:
    """Draw the explicit label (unless turned off), sign the pixels, embed the implicit label.

    Writes ``dst`` (format from its suffix) atomically and returns the final, signed label.
    """
    src, dst = Path(src), Path(dst)
    kind = kind_for_output(dst)
    out, final = label_image_bytes(
        read_input(src), cfg, label, kind=kind, explicit=explicit, name=str(src), out_name=str(dst)
    )
    write_bytes_atomic(dst, out)
    return final


def label_image_bytes(
    data: bytes,
    cfg: HeguiConfig,
    label: AIGCLabel,
    *,
    kind: ImageKind | None = None,
    explicit: bool | None = None,
    signing_key: Ed25519PrivateKey | Literal["config"] | None = "config",
    name: str = "image",
    out_name: str | None = None,
) -> tuple[bytes, AIGCLabel]:
    """:func:`label_image` in memory: the labelled image bytes and the final, signed label.

    ``kind``: output format, default the input's own (PNG stays PNG …). ``signing_key``: a key
    loaded once by a caller labelling many images (the gateway), or ``"config"`` to load
    ``labeling.signing_key`` now. ``name``/``out_name`` only name the image in error messages.
    Broken input raises :class:`LabelFormatError`.
    """
    from hegui.labeling.signing import load_signing_key, sign

    out_name = out_name or name
    source = _open(data, name)
    if kind is None:
        kind = sniff(data, name)
    if getattr(source, "n_frames", 1) > 1:
        raise LabelFormatError(f"{name}: animated images are not supported; label them as video")
    img = ImageOps.exif_transpose(source) or source
    conf = cfg.labeling.image
    if cfg.labeling.explicit if explicit is None else explicit:
        img = draw_explicit_label(
            img,
            conf.text,
            position=conf.position,
            height_ratio=conf.height_ratio,
            font_path=str(cfg.resolve_path(conf.font)) if conf.font else None,
        )
    if conf.watermark:
        from hegui.labeling import watermark

        img = watermark.embed(img, label.produce_id)
    encoded = _encode(img, kind, source)
    if kind == "png" and img.mode in ("RGB", "RGBA"):
        # PNG stores these modes losslessly: the decoded pixels are these pixels.
        digest = pixel_digest(img)
    else:
        # Lossy formats change the pixels on encoding: sign what a reader will decode.
        digest = content_digest_bytes(encoded, out_name)
    key = load_signing_key(cfg) if isinstance(signing_key, str) else signing_key
    final = sign(label, digest, key)
    final.validate()
    out = embed_label(encoded, final.to_json(), out_name)
    if cfg.labeling.c2pa.enabled:
        from hegui.labeling.c2pa_manifest import sign_bytes

        out = sign_bytes(out, kind, final, cfg, Path(out_name).name)
    return out, final


def explicit_label_in_file(path: Path, cfg: HeguiConfig) -> bool:
    """Best effort check that ``path`` shows the configured explicit label (see :func:`explicit_label_present`)."""
    conf = cfg.labeling.image
    img = _open(read_input(path), str(path))
    return explicit_label_present(
        img,
        conf.text,
        position=conf.position,
        height_ratio=conf.height_ratio,
        font_path=str(cfg.resolve_path(conf.font)) if conf.font else None,
    )


def watermark_in_file(path: Path) -> WatermarkReading:
    """Decode hegui's invisible watermark from the image at ``path``."""
    from hegui.labeling import watermark

    return watermark.read(_open(read_input(path), str(path)))
