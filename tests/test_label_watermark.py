"""The optional invisible watermark: invisible, survives JPEG, tied to the label, seen by the verifier."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hegui.config import HeguiConfig, load_config
from hegui.labeling import watermark
from hegui.labeling.image import label_image, read_label, write_label
from hegui.labeling.metadata import AIGCLabel, new_label
from hegui.labeling.verify import verify_file


def photo(size: int = 512, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    base = np.stack([x * 255, y * 255, (1 - x) * 200], axis=2) + rng.normal(0, 10, (size, size, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    return float(10 * np.log10(255**2 / np.mean((x - y) ** 2)))


def test_embed_is_invisible_and_decodes_exactly() -> None:
    img = photo()
    marked = watermark.embed(img, "id-1")
    assert psnr(img, marked) > 38
    reading = watermark.read(marked)
    assert reading.present and reading.matches("id-1") and not reading.matches("id-2")
    assert reading.confidence > 0.8
    assert not watermark.read(img).present


@pytest.mark.parametrize("quality", [95, 85])
def test_survives_jpeg(quality: int) -> None:
    img = photo(seed=1)
    for n in range(6):  # every payload bit must survive, whatever the id
        produce_id = new_label(HeguiConfig()).produce_id + str(n)
        buf = io.BytesIO()
        watermark.embed(img, produce_id).save(buf, "JPEG", quality=quality)
        assert watermark.read(Image.open(buf)).matches(produce_id)


def test_rgba_keeps_alpha_and_small_images_are_left_alone() -> None:
    img = photo(256).convert("RGBA")
    img.putalpha(128)
    marked = watermark.embed(img, "a")
    assert marked.mode == "RGBA" and marked.getchannel("A").getextrema() == (128, 128)
    assert watermark.read(marked).matches("a")
    tiny = photo(48)
    assert watermark.embed(tiny, "a").tobytes() == tiny.tobytes()
    assert not watermark.read(tiny).present


def test_label_image_with_watermark_and_verifier(tmp_path: Path) -> None:
    (tmp_path / "hegui.yaml").write_text("labeling:\n  image:\n    watermark: true\n")
    cfg = load_config(tmp_path / "hegui.yaml")
    photo().save(tmp_path / "in.png")
    final = label_image(tmp_path / "in.png", tmp_path / "out.jpg", cfg, new_label(cfg))
    report = verify_file(tmp_path / "out.jpg", cfg)
    assert report.exit_code == 0 and report.watermark == "matches"
    # metadata stripped: the verifier still sees that the image was labelled
    with Image.open(tmp_path / "out.jpg") as im:
        im.save(tmp_path / "stripped.jpg", quality=90)
    report = verify_file(tmp_path / "stripped.jpg", cfg)
    assert report.exit_code == 1 and report.watermark == "found"
    assert any("metadata removed" in n for n in report.notes)
    # a fresh label written over the watermarked pixels is caught
    other = new_label(cfg)
    write_label(tmp_path / "out.jpg", tmp_path / "relabelled.jpg", other.to_json())
    assert AIGCLabel.from_json(read_label(tmp_path / "relabelled.jpg") or "").produce_id != final.produce_id
    report = verify_file(tmp_path / "relabelled.jpg", cfg)
    assert report.watermark == "other-label" and report.exit_code == 3


def test_watermark_is_off_by_default(tmp_path: Path) -> None:
    cfg = HeguiConfig()
    photo().save(tmp_path / "in.png")
    label_image(tmp_path / "in.png", tmp_path / "out.png", cfg, new_label(cfg))
    with Image.open(tmp_path / "out.png") as im:
        assert not watermark.read(im).present
    assert verify_file(tmp_path / "out.png", cfg).watermark is None
