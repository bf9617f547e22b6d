"""Benchmark: labelling 1024×1024 PNG and JPEG images, against a plain Pillow open-and-save.

For each format it times, on the same generated files in the same run:

- baseline: ``Image.open`` + ``load`` + ``save`` in the same format (what any re-encode costs);
- hegui: ``label_image`` (decode, draw the explicit label, encode, decode again to digest the
  pixels a reader will see, Ed25519-sign, splice the XMP, atomic write);
- metadata only: ``write_label`` (splice the XMP into the bytes, no pixel work), as ``propagate`` does.

Prints images per second and the ratio to the baseline.

    .venv/bin/python bench/labeling.py [--n 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from hegui.config import load_config
from hegui.labeling.image import label_image, write_label
from hegui.labeling.metadata import new_label
from hegui.labeling.signing import write_keypair

SIZE = 1024


def make_image() -> Image.Image:
    """A photo-like picture: smooth gradients plus fine noise, so encoders do real work."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    base = np.stack([x * 255, y * 255, (1 - x) * (1 - y) * 255], axis=2)
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def rates(fns: list[Callable[[int], None]], n: int) -> list[float]:
    """Images per second of each function, run interleaved (one of each per round), so that load from
    other processes on a shared machine hits all of them alike."""
    for fn in fns:
        fn(-1)  # warm-up: fonts, codecs, key loading
    spent = [0.0] * len(fns)
    for i in range(n):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn(i)
            spent[k] += time.perf_counter() - start
    return [n / t for t in spent]


def bench_images(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        key, _pub = write_keypair(tmp / "k.pem")
        (tmp / "hegui.yaml").write_text(f"labeling:\n  signing_key: {key}\n", encoding="utf-8")
        cfg = load_config(tmp / "hegui.yaml")
        img = make_image()
        print(f"images {SIZE}×{SIZE}, n={n} per case, signed (Ed25519)")
        print(
            f"{'format':<6} {'baseline img/s':>15} {'label img/s':>12} {'ratio':>7} {'metadata-only img/s':>20}"
        )
        for ext, params in (("png", {}), ("jpg", {"quality": 95})):
            src = tmp / f"src.{ext}"
            img.save(src, **params)

            def baseline(i: int, src: Path = src, ext: str = ext, params: dict[str, int] = params) -> None:
                with Image.open(src) as im:
                    im.load()
                    im.save(tmp / f"base.{ext}", **params)

            def hegui(i: int, src: Path = src, ext: str = ext) -> None:
                label_image(src, tmp / f"out.{ext}", cfg, new_label(cfg))

            def metadata_only(i: int, src: Path = src, ext: str = ext) -> None:
                write_label(src, tmp / f"meta.{ext}", new_label(cfg).to_json())

            base_rate, label_rate, meta_rate = rates([baseline, hegui, metadata_only], n)
            print(
                f"{ext:<6} {base_rate:>15.1f} {label_rate:>12.1f} {label_rate / base_rate:>7.2f} {meta_rate:>20.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20, help="images per case")
    args = parser.parse_args()
    bench_images(args.n)
    # Video lives in its own file (bench/ is on sys.path when this runs as a script).
    from labeling_video import bench_video

    bench_video()


if __name__ == "__main__":
    main()
