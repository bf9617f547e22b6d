"""Benchmark: labelling a 10-second 720p video, against a plain PyAV decode + re-encode of the same file.

Prints the real-time factor (seconds of work per second of video) of each, and the ratio. The
baseline uses the same encoder settings (libx264, the label config's crf and preset, audio copied),
so the ratio is the cost of the label itself: frame → Pillow → label → frame, the digest, the remux.

    .venv/bin/python bench/labeling_video.py
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from hegui.config import HeguiConfig
from hegui.labeling import video
from hegui.labeling.metadata import new_label

SECONDS, FPS, W, H, SR = 10, 25, 1280, 720, 48000


def make_source(path: Path) -> None:
    """A textured, moving 720p picture (so the encoder has real work) and an AAC tone."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, size=(H // 8, W // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "23"}
        aus = out.add_stream("aac", rate=SR)
        aus.layout = "stereo"
        for i in range(SECONDS * FPS):
            frame = av.VideoFrame.from_ndarray(np.roll(texture, 6 * i, axis=1), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        x = (0.2 * np.sin(2 * np.pi * 440 * np.arange(SR * SECONDS) / SR)).astype(np.float32)
        for k in range(0, len(x), 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([x[k : k + 1024]] * 2)), format="fltp", layout="stereo")
            f.sample_rate, f.pts, f.time_base = SR, k, Fraction(1, SR)
            for p in aus.encode(f):
                out.mux(p)
        for p in aus.encode(None):
            out.mux(p)


def plain_reencode(src: Path, dst: Path, conf: video.VideoLabelConfig) -> None:
    """Baseline: decode every frame and encode it again with the same settings; audio packets copied."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.time_base = vin.time_base
        vout.options = {"crf": str(conf.crf), "preset": conf.preset}
        aout = out.add_stream_from_template(inp.streams.audio[0])
        for pkt in inp.demux(vin, inp.streams.audio[0]):
            if pkt.stream.index == vin.index:
                for frame in pkt.decode():
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for p in vout.encode(frame):
                        out.mux(p)
            elif pkt.dts is not None:
                pkt.stream = aout
                out.mux(pkt)
        for p in vout.encode(None):
            out.mux(p)


def _best_of_interleaved(repeats: int, jobs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time of each job over ``repeats`` rounds, the jobs taking turns so load changes hit all alike."""
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(repeats):
        for name, job in jobs.items():
            t0 = time.perf_counter()
            job()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def bench_video(repeats: int = 3) -> dict[str, float]:
    """Run the benchmark; print and return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = d / "src.mp4"
        make_source(src)
        cfg = HeguiConfig()
        conf = video.config_from(cfg)
        whole = conf.model_copy(update={"whole_video": True})
        t = _best_of_interleaved(
            repeats,
            {
                "base": lambda: plain_reencode(src, d / "base.mp4", conf),
                "opening": lambda: video.label_video(src, d / "l.mp4", cfg, new_label(cfg), conf),
                "every": lambda: video.label_video(src, d / "w.mp4", cfg, new_label(cfg), whole),
                "meta": lambda: video.write_label(src, d / "m.mp4", new_label(cfg).to_json()),
            },
        )
        base, opening, every, meta = t["base"], t["opening"], t["every"], t["meta"]
    figures = {
        "baseline_rtf": base / SECONDS,
        "label_opening_rtf": opening / SECONDS,
        "label_whole_rtf": every / SECONDS,
        "implicit_only_rtf": meta / SECONDS,
        "opening_vs_baseline": opening / base,
        "whole_vs_baseline": every / base,
    }
    print(f"video labelling, {SECONDS} s {W}x{H} @ {FPS} fps + AAC, libx264 preset={conf.preset} crf={conf.crf}")
    print(f"  baseline decode+re-encode : {base:6.2f} s   RTF {figures['baseline_rtf']:.3f}")
    print(f"  label (opening {conf.duration_s:g} s)     : {opening:6.2f} s   RTF {figures['label_opening_rtf']:.3f}"
          f"   ×{figures['opening_vs_baseline']:.2f} baseline")
    print(f"  label (every frame)       : {every:6.2f} s   RTF {figures['label_whole_rtf']:.3f}"
          f"   ×{figures['whole_vs_baseline']:.2f} baseline")
    print(f"  implicit label only (remux): {meta:6.2f} s   RTF {figures['implicit_only_rtf']:.4f}")
    return figures


if __name__ == "__main__":
    bench_video()
