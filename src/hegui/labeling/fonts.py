"""Fonts for explicit labels drawn on images and video frames.

hegui ships a subset of Noto Sans SC (SIL OFL 1.1) holding ASCII and the characters of common label
texts, so default labels render with no system font. A custom label text whose characters are not in
the subset needs ``labeling.image.font`` (or ``labeling.video.font``); a missing glyph is an error,
never a box drawn in its place.
"""

from __future__ import annotations

import functools
import io
from importlib import resources
from pathlib import Path

from hegui.errors import ConfigError

BUNDLED_FONT_NAME = "NotoSansSC-hegui-subset.otf"

# The subset's character list (see docs/labeling.md, "Bundled font", for the command that made it).
LABEL_PHRASES = (
    "AI生成 AI合成 人工智能生成 人工智能合成 由AI生成 由人工智能生成合成 本内容由AI生成 本内容由人工智能生成 "
    "本图片由AI生成 本图像由人工智能生成 本视频由AI生成 本音频由人工智能合成 本文由AI生成 以上内容由人工智能生成 "
    "此内容为AI生成 该作品属于AI生成 疑似AI生成 可能为AI生成 深度合成 标识 虚拟场景 文本 声音 画面 数字人"
)
SUBSET_CHARACTERS = "".join(
    sorted(
        set(LABEL_PHRASES.replace(" ", ""))
        | {chr(c) for c in range(0x20, 0x7F)}
        | set("【】（）［］：，。、！？「」《》·—…～")
    )
)


def bundled_font_path() -> Path:
    return Path(str(resources.files("hegui") / "data" / "fonts" / BUNDLED_FONT_NAME))


@functools.lru_cache(maxsize=32)
def _cmap(path: str, index: int) -> frozenset[int]:
    try:
        from fontTools.ttLib import TTCollection, TTFont
    except ImportError:
        raise ConfigError(
            "checking a custom label font needs the fonttools package (pip install fonttools)"
        ) from None

    # Read into memory: fontTools keeps lazily opened files open, and the cmap is all we need.
    data = io.BytesIO(Path(path).read_bytes())
    if path.lower().endswith((".ttc", ".otc")):
        font = TTCollection(data).fonts[index]
    else:
        font = TTFont(data, fontNumber=index)
    cmap = font.getBestCmap() or {}
    return frozenset(cmap)


def missing_glyphs(path: Path, text: str, index: int = 0) -> str:
    """The characters of ``text`` (except whitespace) that the font at ``path`` has no glyph for."""
    try:
        cmap = _cmap(str(path), index)
    except ConfigError:
        raise
    except Exception as exc:  # fontTools raises many types for a bad file
        raise ConfigError(f"{path}: cannot read font ({exc.__class__.__name__}: {exc})") from None
    seen: list[str] = []
    for ch in text:
        if not ch.isspace() and ord(ch) not in cmap and ch not in seen:
            seen.append(ch)
    return "".join(seen)


def resolve_font(text: str, font_path: str | Path | None, key: str = "labeling.image.font") -> Path:
    """The font to draw ``text`` with: ``font_path`` or the bundled subset; error if a glyph is missing."""
    if font_path is None:
        path = bundled_font_path()
        # The subset's coverage is known (a test checks it against the font's cmap): no fontTools needed.
        missing = "".join(
            dict.fromkeys(ch for ch in text if not ch.isspace() and ch not in SUBSET_CHARACTERS)
        )
        if missing:
            raise ConfigError(
                f"{key}: the bundled font has no glyph for {missing!r} in label {text!r}; "
                "set a font (.ttf/.otf/.ttc) that covers them"
            )
        return path
    path = Path(font_path)
    if not path.is_file():
        raise ConfigError(f"{key}: font file {path} not found")
    try:
        missing = missing_glyphs(path, text)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if missing:
        raise ConfigError(f"{key}: font {path} has no glyph for {missing!r} in label {text!r}")
    return path
