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
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from hegui.errors import UserError
from hegui.labeling.fonts import resolve_font

BOX_ALPHA = 150
"""Opacity of the black box: any background is darkened to ≤ 41% brightness under white text."""
TEXT_COLOUR = (255, 255, 255, 255)


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
) -> LabelLayout:
    """Compute the box and text position; raises UserError if the label cannot fit."""
    if not text.strip():
        raise UserError("explicit label text is empty")
    if height_ratio < 0.05:
        raise UserError(f"height_ratio {height_ratio} is below GB 45438's 5% of the shorter side")
    width, height = size
    path = resolve_font(text, font_path, font_key)
    target = max(1, math.ceil(height_ratio * min(width, height)))
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
    ImageDraw.Draw(region).text(
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
    try:
        layout = layout_explicit_label(
            img.size, text, position=position, height_ratio=height_ratio, font_path=font_path
        )
    except UserError:
        return False
    x0, y0, _x1, _y1 = layout.box
    region = img.crop(layout.box).convert("L")
    mask = Image.new("L", region.size, 0)
    ImageDraw.Draw(mask).text(
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
