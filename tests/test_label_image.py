"""Image labels: the visible label (size, legibility, placement) and XMP in JPEG/PNG/WebP."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from hegui.config import HeguiConfig, load_config
from hegui.errors import ConfigError, UserError
from hegui.labeling import image as img_mod
from hegui.labeling import xmp
from hegui.labeling.fonts import SUBSET_CHARACTERS, bundled_font_path, missing_glyphs
from hegui.labeling.image import (
    content_digest,
    draw_explicit_label,
    embed_label,
    explicit_label_present,
    label_image,
    layout_explicit_label,
    read_label,
    read_labels,
    write_label,
)
from hegui.labeling.metadata import AIGCLabel, LabelFormatError, new_label

EXIFTOOL = shutil.which("exiftool")
FORMATS = ["png", "jpg", "webp"]
EXISTING_XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="hegui-test-tool">'
    '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Sunset</rdf:li></rdf:Alt></dc:title>'
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
    '<?xpacket end="w"?>'
)


def noise(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def save(img: Image.Image, path: Path, with_xmp: bool = False) -> Path:
    if with_xmp and path.suffix == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", EXISTING_XMP)
        info.add_text("Comment", "keep me")
        img.save(path, pnginfo=info)
    elif with_xmp:
        img.save(path, xmp=EXISTING_XMP.encode())
    else:
        img.save(path)
    return path


@pytest.fixture
def cfg() -> HeguiConfig:
    return HeguiConfig()


def label_bbox(img: Image.Image, threshold: int = 200) -> tuple[int, int, int, int] | None:
    """Bounding box of label-coloured (near-white) pixels."""
    arr = np.asarray(img.convert("RGB")).astype(int)
    mask = (arr >= threshold).all(axis=2)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# --- explicit label ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "position"),
    [((640, 480), "bottom-right"), ((333, 1000), "top-left"), ((2000, 1200), "bottom"), ((128, 96), "right")],
)
def test_glyph_height_is_at_least_five_percent_of_shorter_side(size: tuple[int, int], position: str) -> None:
    base = Image.new("RGB", size, (10, 40, 70))  # dark, so only the glyphs are near-white
    out = draw_explicit_label(base, "AI生成", position=position)
    box = label_bbox(out)
    assert box is not None
    glyph_h = box[3] - box[1]
    assert glyph_h >= 0.05 * min(size), (glyph_h, size)
    assert glyph_h <= 0.08 * min(size) + 3  # and not absurdly large
    w, h = size
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    if "right" in position:
        assert cx > w * 0.6
    if "left" in position:
        assert cx < w * 0.4
    if "top" in position:
        assert cy < h * 0.4
    if "bottom" in position:
        assert cy > h * 0.6


def test_larger_height_ratio_gives_larger_glyphs() -> None:
    base = Image.new("RGB", (800, 600), (0, 0, 0))
    small = label_bbox(draw_explicit_label(base, "AI生成"))
    big = label_bbox(draw_explicit_label(base, "AI生成", height_ratio=0.1))
    assert small and big
    assert big[3] - big[1] >= 0.1 * 600 > small[3] - small[1]


@pytest.mark.parametrize("bg", [(255, 255, 255), (0, 0, 0), (255, 255, 0), (128, 128, 128)])
def test_label_is_legible_on_any_background(bg: tuple[int, int, int]) -> None:
    base = Image.new("RGB", (600, 400), bg)
    out = draw_explicit_label(base, "AI生成")
    layout = layout_explicit_label(base.size, "AI生成")
    region = np.asarray(out.crop(layout.box).convert("L")).astype(int)
    glyph = region >= 240
    assert glyph.mean() > 0.05  # white glyph pixels exist
    box_pixels = region[~glyph & (region < 240)]
    assert np.percentile(box_pixels, 50) <= 110  # the box darkens any background under the text
    assert base.getpixel((5, 5)) == out.getpixel((5, 5))  # the rest of the image is untouched


def test_draw_returns_new_image_and_handles_modes() -> None:
    for mode in ("L", "P", "RGBA", "LA", "CMYK"):
        src = noise(300, 200, mode=mode)
        before = src.tobytes()
        out = draw_explicit_label(src, "AI生成")
        assert src.tobytes() == before
        assert out.mode in ("RGB", "RGBA") and out.size == src.size


def test_label_that_cannot_fit_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="does not fit a 40×600 image"):
        draw_explicit_label(Image.new("RGB", (40, 600)), "本内容由人工智能生成")


def test_explicit_label_detection() -> None:
    base = noise(640, 480)
    labelled = draw_explicit_label(base, "AI生成")
    assert explicit_label_present(labelled, "AI生成")
    assert not explicit_label_present(base, "AI生成")
    assert not explicit_label_present(labelled, "AI生成", position="top-left")
    buf = io.BytesIO()
    labelled.save(buf, "JPEG", quality=70)
    assert explicit_label_present(Image.open(buf), "AI生成")  # survives JPEG compression


def test_bundled_font_cmap_is_exactly_the_declared_subset() -> None:
    pytest.importorskip("fontTools", reason="fonttools not installed")
    from fontTools.ttLib import TTFont

    with TTFont(bundled_font_path()) as font:
        covered = {chr(c) for c in font.getBestCmap()}
    assert covered == set(SUBSET_CHARACTERS)  # resolve_font trusts SUBSET_CHARACTERS for the bundled font


def test_default_labels_are_covered_by_the_bundled_font() -> None:
    from hegui.labeling.config import ImageLabelConfig, TextLabelConfig, VideoLabelConfig
    from hegui.labeling.fonts import LABEL_PHRASES

    for text in [
        ImageLabelConfig().text,
        VideoLabelConfig().text,
        TextLabelConfig().prefix,
        TextLabelConfig().suffix,
    ]:
        assert set(text) <= set(SUBSET_CHARACTERS), text
    assert set(LABEL_PHRASES.replace(" ", "")) <= set(SUBSET_CHARACTERS)


def test_bundled_font_covers_default_labels_and_custom_font_is_checked(tmp_path: Path) -> None:
    pytest.importorskip("fontTools", reason="fonttools not installed (needed for custom fonts)")
    assert missing_glyphs(bundled_font_path(), SUBSET_CHARACTERS) == ""
    assert bundled_font_path().stat().st_size < 200_000
    assert (bundled_font_path().parent / "OFL.txt").read_text().count("SIL Open Font License") >= 1
    with pytest.raises(ConfigError, match="bundled font has no glyph for '龘'"):
        draw_explicit_label(Image.new("RGB", (400, 300)), "AI生成龘")
    with pytest.raises(ConfigError, match=r"labeling\.image\.font: font file .* not found"):
        draw_explicit_label(Image.new("RGB", (400, 300)), "AI生成", font_path=str(tmp_path / "nope.ttf"))
    # A configured font is checked against its cmap: the subset itself lacks 龘.
    font_copy = tmp_path / "custom.otf"
    shutil.copy(bundled_font_path(), font_copy)
    out = draw_explicit_label(Image.new("RGB", (400, 300)), "AI生成", font_path=str(font_copy))
    assert label_bbox(out) is not None
    with pytest.raises(ConfigError, match=r"custom\.otf has no glyph for '龘'"):
        draw_explicit_label(Image.new("RGB", (400, 300)), "人工智能生成龘", font_path=str(font_copy))


# --- implicit label ------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", FORMATS)
def test_label_image_round_trip(tmp_path: Path, cfg: HeguiConfig, ext: str) -> None:
    src = save(noise(400, 300), tmp_path / f"in.{ext}")
    dst = tmp_path / f"out.{ext}"
    final = label_image(src, dst, cfg, new_label(cfg))
    raw = read_label(dst)
    assert raw is not None
    assert AIGCLabel.from_json(raw) == final
    assert final.reserved_code1.startswith("h1.")  # no key configured: content hash only
    with Image.open(dst) as im:
        im.load()
        assert im.size == (400, 300)
        assert explicit_label_present(im, "AI生成")
    # The label is bound to what a reader decodes.
    from hegui.labeling.signing import SignatureStatus, verify_signature

    assert verify_signature(final, content_digest(dst), None) is SignatureStatus.HASH_ONLY


@pytest.mark.parametrize("ext", FORMATS)
def test_existing_xmp_is_merged_not_overwritten(tmp_path: Path, cfg: HeguiConfig, ext: str) -> None:
    src = save(noise(320, 240), tmp_path / f"in.{ext}", with_xmp=True)
    dst = tmp_path / f"out.{ext}"
    label_image(src, dst, cfg, new_label(cfg))
    with Image.open(dst) as im:
        packet = im.info["xmp"]
        if ext == "png":
            assert im.text["Comment"] == "keep me"
    text = packet.decode() if isinstance(packet, bytes) else packet
    assert "Sunset" in text and "hegui-test-tool" in text
    assert xmp.read(packet) == AIGCLabel.from_json(read_label(dst) or "").inner_json()
    # Relabelling replaces the property: still exactly one label.
    write_label(dst, dst, new_label(cfg).to_json())
    with Image.open(dst) as im:
        text = im.info["xmp"].decode() if isinstance(im.info["xmp"], bytes) else im.info["xmp"]
    assert text.count("TC260:AIGC>") == 2 and "Sunset" in text  # one open + one close tag


@pytest.mark.parametrize("ext", FORMATS)
def test_write_label_keeps_pixels_and_digest(tmp_path: Path, ext: str) -> None:
    src = save(noise(256, 256, seed=3), tmp_path / f"in.{ext}")
    dst = tmp_path / f"out.{ext}"
    lab = new_label(HeguiConfig())
    write_label(src, dst, lab.to_json())
    assert content_digest(dst) == content_digest(src)
    with Image.open(src) as a, Image.open(dst) as b:
        assert a.tobytes() == b.tobytes()
    assert AIGCLabel.from_json(read_label(dst) or "") == lab
    edited = Image.open(dst)
    edited.load()
    edited.putpixel((0, 0), (1, 2, 3))
    other = tmp_path / f"edited.{ext}"
    edited.save(other, **({"lossless": True} if ext == "webp" else {}))
    assert content_digest(other) != content_digest(dst)


def test_png_has_xmp_and_aigc_itxt(tmp_path: Path, cfg: HeguiConfig) -> None:
    dst = tmp_path / "out.png"
    final = label_image(save(noise(200, 200), tmp_path / "in.png"), dst, cfg, new_label(cfg))
    found = read_labels(dst.read_bytes())
    assert set(found) == {"xmp", "png:AIGC"}
    assert found["png:AIGC"] == final.to_json()
    assert found["xmp"] == final.inner_json()
    with Image.open(dst) as im:
        assert im.text["AIGC"] == final.to_json()


@pytest.mark.parametrize(("mode", "lossless"), [("RGB", False), ("RGB", True), ("RGBA", True)])
def test_simple_webp_gets_a_valid_vp8x_header(tmp_path: Path, mode: str, lossless: bool) -> None:
    src = tmp_path / "in.webp"
    img = noise(97, 61, mode=mode)
    if mode == "RGBA":
        img.putalpha(Image.linear_gradient("L").resize((97, 61)))
    img.save(src, lossless=lossless)
    assert src.read_bytes()[12:16] in (b"VP8 ", b"VP8L")
    dst = tmp_path / "out.webp"
    write_label(src, dst, new_label(HeguiConfig()).to_json())
    data = dst.read_bytes()
    assert data[12:16] == b"VP8X"
    assert int.from_bytes(data[4:8], "little") + 8 == len(data)
    with Image.open(dst) as im:
        im.load()
        assert im.size == (97, 61) and im.mode == mode
        assert "TC260" in im.info["xmp"].decode()


def test_exif_orientation_is_applied_before_drawing(tmp_path: Path, cfg: HeguiConfig) -> None:
    src = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    noise(400, 200).save(src, exif=exif.tobytes())
    dst = tmp_path / "out.jpg"
    label_image(src, dst, cfg, new_label(cfg))
    with Image.open(dst) as im:
        assert im.size == (200, 400)
        assert im.getexif().get(0x0112) is None
        assert explicit_label_present(im, "AI生成")


def test_output_format_follows_suffix_and_no_explicit(tmp_path: Path, cfg: HeguiConfig) -> None:
    src = save(noise(300, 300), tmp_path / "in.png")
    dst = tmp_path / "out.jpg"
    label_image(src, dst, cfg, new_label(cfg), explicit=False)
    assert dst.read_bytes()[:3] == b"\xff\xd8\xff"
    with Image.open(dst) as im:
        assert not explicit_label_present(im, "AI生成")
    with pytest.raises(UserError, match=r"out\.gif: output must end in"):
        label_image(src, tmp_path / "out.gif", cfg, new_label(cfg))


def _corruptions(tmp_path: Path) -> list[tuple[Path, str]]:
    png = save(noise(64, 64), tmp_path / "ok.png").read_bytes()
    jpg = save(noise(64, 64), tmp_path / "ok.jpg").read_bytes()
    webp = save(noise(64, 64), tmp_path / "ok.webp").read_bytes()
    bad_crc = bytearray(png)
    bad_crc[40] ^= 0xFF
    cases = {
        "trunc.png": (png[: len(png) // 2], "truncated PNG"),
        "crc.png": (bytes(bad_crc), "corrupt PNG|truncated PNG"),
        "trunc.jpg": (jpg[: len(jpg) // 2], "truncated JPEG"),
        "trunc.webp": (webp[:40], "truncated WebP|truncated WEBP"),
        "empty.png": (b"", "empty file"),
        "text.png": (b"hello, not an image", "not a PNG file"),
        "mislabelled.jpg": (png, None),  # a PNG named .jpg is read as what it is
    }
    out = []
    for name, (data, needle) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        out.append((p, needle or ""))
    return out


def test_broken_files_give_one_clear_error_and_no_output(tmp_path: Path, cfg: HeguiConfig) -> None:
    for src, needle in _corruptions(tmp_path):
        dst = tmp_path / "out" / ("x" + src.suffix)
        dst.parent.mkdir(exist_ok=True)
        if not needle:
            label_image(src, dst, cfg, new_label(cfg))
            assert read_label(dst) is not None
            dst.unlink()
            continue
        with pytest.raises(LabelFormatError, match=rf"^{src}: .*({needle})") as info:
            label_image(src, dst, cfg, new_label(cfg))
        assert "\n" not in str(info.value)
        assert list(dst.parent.iterdir()) == [], f"partial output left for {src.name}"


def test_write_label_rejects_truncated_files_without_output(tmp_path: Path) -> None:
    for src, needle in _corruptions(tmp_path):
        if not needle or src.name == "crc.png":
            continue
        dst = tmp_path / ("w" + src.suffix)
        with pytest.raises(LabelFormatError):
            write_label(src, dst, new_label(HeguiConfig()).to_json())
        assert not dst.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".w")]


def test_malformed_existing_xmp_is_not_overwritten(tmp_path: Path) -> None:
    src = tmp_path / "in.jpg"
    noise(64, 64).save(src, xmp=b"<x:xmpmeta><broken")
    with pytest.raises(
        LabelFormatError, match=r"in\.jpg: existing XMP is not well-formed XML \(.*\); not overwriting"
    ):
        embed_label(src.read_bytes(), new_label(HeguiConfig()).to_json(), str(src))


def test_signed_label_detects_tampering(tmp_path: Path) -> None:
    from hegui.labeling.signing import SignatureStatus, load_public_key, verify_signature, write_keypair

    key, pub = write_keypair(tmp_path / "k.pem")
    (tmp_path / "hegui.yaml").write_text(f"labeling:\n  signing_key: {key}\n")
    cfg = load_config(tmp_path / "hegui.yaml")
    dst = tmp_path / "out.png"
    final = label_image(save(noise(200, 150), tmp_path / "in.png"), dst, cfg, new_label(cfg))
    public = load_public_key(pub)
    assert verify_signature(final, content_digest(dst), public) is SignatureStatus.VALID
    # copied onto other content
    other = tmp_path / "other.png"
    write_label(save(noise(200, 150, seed=9), tmp_path / "o.png"), other, final.to_json())
    copied = AIGCLabel.from_json(read_label(other) or "")
    assert verify_signature(copied, content_digest(other), public) is SignatureStatus.CONTENT_CHANGED


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not installed (Debian: libimage-exiftool-perl)")
@pytest.mark.parametrize("ext", FORMATS)
def test_exiftool_reads_the_label(tmp_path: Path, cfg: HeguiConfig, ext: str) -> None:
    src = save(noise(300, 200), tmp_path / f"in.{ext}", with_xmp=True)
    dst = tmp_path / f"out.{ext}"
    final = label_image(src, dst, cfg, new_label(cfg))
    assert EXIFTOOL is not None
    run = subprocess.run(
        [EXIFTOOL, "-j", "-a", "-G1", "-XMP-TC260:all", "-XMP-dc:Title", "-PNG:AIGC", str(dst)],
        capture_output=True,
        text=True,
        check=True,
    )
    tags = json.loads(run.stdout)[0]
    aigc = next(v for k, v in tags.items() if k.lower() == "xmp-tc260:aigc")
    assert json.loads(aigc) == json.loads(final.inner_json())
    assert tags["XMP-dc:Title"] == "Sunset"
    if ext == "png":
        assert json.loads(tags["PNG:AIGC"]) == json.loads(final.to_json())
    check = subprocess.run(
        [EXIFTOOL, "-validate", "-warning", "-error", "-a", str(dst)], capture_output=True, text=True
    )
    assert "Validate                        : OK" in check.stdout, check.stdout


def test_module_constants_describe_formats() -> None:
    assert set(img_mod.SUFFIX_KINDS) == {".jpg", ".jpeg", ".png", ".webp"}


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "LA"])
def test_png_modes_digest_matches_what_readers_decode(tmp_path: Path, cfg: HeguiConfig, mode: str) -> None:
    from hegui.labeling.signing import SignatureStatus, verify_signature

    src = tmp_path / "in.png"
    noise(120, 90, mode="RGB").convert(mode).save(src)
    dst = tmp_path / "out.png"
    final = label_image(src, dst, cfg, new_label(cfg))
    assert verify_signature(final, content_digest(dst), None) is SignatureStatus.HASH_ONLY


def test_transparent_png_to_jpeg_is_flattened_on_white(tmp_path: Path, cfg: HeguiConfig) -> None:
    src = tmp_path / "in.png"
    Image.new("RGBA", (200, 150), (255, 0, 0, 0)).save(src)  # fully transparent, hidden colour red
    label_image(src, tmp_path / "out.jpg", cfg, new_label(cfg), explicit=False)
    with Image.open(tmp_path / "out.jpg") as im:
        r, g, b = im.convert("RGB").getpixel((10, 10))
        assert min(r, g, b) > 245
