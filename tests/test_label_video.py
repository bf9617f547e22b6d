"""Video labels: the burnt-in opening label, the MP4/MOV ``AIGC`` key, digests, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from hegui.config import HeguiConfig
from hegui.labeling import signing, video
from hegui.labeling.image import draw_explicit_label, explicit_label_present, layout_explicit_label
from hegui.labeling.metadata import AIGCLabel, LabelFormatError, new_label

W, H, FPS, SECONDS, SR = 320, 240, 25, 3, 44100
LABEL = '{"AIGC":{"Label":"1","ContentProducer":"hegui-test","ProduceID":"id-1"}}'
needs_ffprobe = pytest.mark.skipif(
    shutil.which("ffprobe") is None, reason="ffprobe (Debian package ffmpeg) is not installed"
)


def make_video(
    path: Path,
    *,
    audio: bool = True,
    changed_frame: int | None = None,
    title: str | None = None,
    rotation: int = 0,
) -> None:
    """3 s of 320×240 at 25 fps: a textured, moving picture and an AAC 440 Hz sine."""
    rng = np.random.default_rng(7)
    texture = rng.integers(60, 200, size=(H, W, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        if title:
            out.metadata["title"] = title
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        if rotation:
            vs.set_display_rotation(rotation)
        if audio:
            as_ = out.add_stream("aac", rate=SR)
            as_.layout = "stereo"
        for i in range(FPS * SECONDS):
            img = np.roll(texture, 4 * i, axis=1)
            if i == changed_frame:
                img = img.copy()
                img[100:140, 100:160] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if audio:
            x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR * SECONDS) / SR)).astype(np.float32)
            for k in range(0, len(x), 1024):
                chunk = np.ascontiguousarray(np.stack([x[k : k + 1024]] * 2))
                f = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                f.sample_rate, f.pts, f.time_base = SR, k, Fraction(1, SR)
                for p in as_.encode(f):
                    out.mux(p)
            for p in as_.encode(None):
                out.mux(p)


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-count_frames", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    return dict(json.loads(out))


def audio_duration(path: Path) -> float:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        n = sum(f.samples for f in c.decode(s))
        return n / s.codec_context.sample_rate


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("video") / "gen.mp4"
    make_video(p, title="片名")
    return p


@pytest.fixture(scope="module")
def labelled(source: Path) -> tuple[Path, AIGCLabel]:
    dst = source.with_name("labelled.mp4")
    cfg = HeguiConfig()
    final = video.label_video(source, dst, cfg, new_label(cfg))
    return dst, final


# ---------------------------------------------------------------------------------------- labelled


def test_implicit_label_reads_back_with_pyav(labelled: tuple[Path, AIGCLabel]) -> None:
    dst, final = labelled
    assert video.read_label(dst) == final.to_json()
    assert AIGCLabel.from_json(video.read_label(dst) or "") == final
    with av.open(str(dst)) as c:
        assert c.metadata["title"] == "片名"  # the source's own metadata is kept


@needs_ffprobe
def test_implicit_label_reads_back_with_ffprobe(labelled: tuple[Path, AIGCLabel], source: Path) -> None:
    dst, final = labelled
    info = probe(dst)
    assert info["format"]["tags"]["AIGC"] == final.to_json()
    src_info = probe(source)
    v, sv = (next(s for s in i["streams"] if s["codec_type"] == "video") for i in (info, src_info))
    assert (v["codec_name"], v["width"], v["height"], v["r_frame_rate"]) == ("h264", W, H, sv["r_frame_rate"])
    assert v["nb_read_frames"] == sv["nb_read_frames"] == str(FPS * SECONDS)
    assert "AIGC" not in src_info["format"].get("tags", {})


def test_opening_two_seconds_carry_the_label_and_later_frames_do_not(labelled: tuple[Path, AIGCLabel]) -> None:
    dst, _ = labelled
    frames = video.label_presence(dst)
    assert len(frames) == FPS * SECONDS
    early = [seen for t, seen in frames if t < 2.0]
    late = [seen for t, seen in frames if t >= 2.0]
    assert len(early) == 2 * FPS and all(early)
    assert late and not any(late)
    assert video.video_has_explicit_label(dst) is True


def test_label_glyphs_are_at_least_five_percent_of_the_short_side() -> None:
    conf = video.VideoLabelConfig()
    layout = layout_explicit_label((W, H), conf.text, position=conf.position, height_ratio=conf.height_ratio)
    assert layout.glyph_height >= 0.05 * min(W, H)


@pytest.mark.parametrize("position", ["top-left", "bottom-right", "right"])
def test_frame_labeler_changes_only_the_label_box(position: str) -> None:
    rng = np.random.default_rng(3)
    frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), format="rgb24")
    frame = frame.reformat(format="yuv420p")
    frame.pts, frame.time_base = 7, Fraction(1, FPS)
    conf = video.VideoLabelConfig(position=position)
    labeler = video.FrameLabeler(W, H, conf)
    out = labeler(frame)
    assert (out.pts, out.time_base, out.format.name) == (7, Fraction(1, FPS), "yuv420p")
    before, after = frame.to_ndarray(), out.to_ndarray()
    x0, y0, x1, y1 = labeler.box
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(before[:H][outside], after[:H][outside])  # luma outside the box untouched
    assert not np.array_equal(before[:H][~outside], after[:H][~outside])
    # The same pixels as drawing on the whole frame through Pillow.
    whole = av.VideoFrame.from_image(
        draw_explicit_label(frame.to_image(), conf.text, position=position, height_ratio=conf.height_ratio)
    ).reformat(format="yuv420p").to_ndarray()
    assert np.array_equal(whole[:H][y0:y1, x0:x1], after[:H][y0:y1, x0:x1])
    assert explicit_label_present(out.to_image(), conf.text, position=position, height_ratio=conf.height_ratio)


def test_source_is_not_taken_for_labelled(source: Path) -> None:
    assert video.video_has_explicit_label(source) is False
    assert video.read_label(source) is None


def test_audio_is_kept_with_the_same_duration(labelled: tuple[Path, AIGCLabel], source: Path) -> None:
    dst, _ = labelled
    assert abs(audio_duration(dst) - audio_duration(source)) <= 0.1
    assert audio_packets(dst) == audio_packets(source)  # copied, not re-encoded
    with av.open(str(dst)) as c, av.open(str(source)) as s:
        assert c.streams.video[0].time_base == s.streams.video[0].time_base
        assert c.streams.video[0].average_rate == s.streams.video[0].average_rate


def test_whole_video_option_labels_every_frame(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "all.mov"
    cfg = HeguiConfig.model_validate({"labeling": {"video": {"whole_video": True, "position": "bottom-right"}}})
    video.label_video(source, dst, cfg, new_label(cfg))
    conf = video.config_from(cfg)
    frames = video.label_presence(dst, conf)
    assert len(frames) == FPS * SECONDS and all(seen for _, seen in frames)
    # Looking for the label in the wrong corner finds nothing.
    assert video.video_has_explicit_label(dst, video.VideoLabelConfig(position="top-left")) is False


def test_aac_option_reencodes_audio(source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "aac.mp4"
    cfg = HeguiConfig()
    video.label_video(source, dst, cfg, new_label(cfg), conf=video.VideoLabelConfig(audio="aac"))
    assert audio_packets(dst) != audio_packets(source)
    assert abs(audio_duration(dst) - audio_duration(source)) <= 0.1


def test_video_without_audio(tmp_path: Path) -> None:
    src, dst = tmp_path / "silent.mp4", tmp_path / "out.mp4"
    make_video(src, audio=False)
    cfg = HeguiConfig()
    final = video.label_video(src, dst, cfg, new_label(cfg))
    assert video.read_label(dst) == final.to_json()
    assert video.video_has_explicit_label(dst) is True
    with av.open(str(dst)) as c:
        assert not c.streams.audio


def test_rotated_video_is_labelled_upright_and_keeps_its_rotation(tmp_path: Path) -> None:
    src, dst = tmp_path / "phone.mp4", tmp_path / "out.mp4"
    make_video(src, audio=False, rotation=90)
    cfg = HeguiConfig()
    video.label_video(src, dst, cfg, new_label(cfg))
    with av.open(str(dst)) as c:
        first = next(c.decode(video=0))
        assert first.rotation == 90
        shown = video.display_image(first)
        stored = first.to_image()
    assert shown.size == (H, W)  # portrait as displayed
    conf = video.config_from(cfg)
    kw = {"position": conf.position, "height_ratio": conf.height_ratio}
    assert explicit_label_present(shown, conf.text, **kw)
    assert not explicit_label_present(stored, conf.text, **kw)  # not drawn sideways
    assert video.video_has_explicit_label(dst) is True


# ------------------------------------------------------------------------------------------- digest


def test_digest_ignores_metadata_and_sees_frame_changes(source: Path, tmp_path: Path) -> None:
    relabelled = tmp_path / "re.mp4"
    video.write_label(source, relabelled, LABEL)
    assert video.read_label(relabelled) == LABEL
    assert video.content_digest(relabelled) == video.content_digest(source)
    other = tmp_path / "other.mp4"
    make_video(other, changed_frame=40, title="片名")
    assert video.content_digest(other) != video.content_digest(source)


@needs_ffprobe
def test_digest_survives_a_metadata_edit_by_ffmpeg(source: Path, tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    edited = tmp_path / "edited.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(source), "-c", "copy", "-metadata", "title=changed", str(edited)],
        check=True,
    )
    assert video.content_digest(edited) == video.content_digest(source)


def test_signed_label_verifies_and_binds_the_content(source: Path, tmp_path: Path) -> None:
    key, pub = signing.write_keypair(tmp_path / "k.pem")
    cfg = HeguiConfig.model_validate({"labeling": {"signing_key": str(key)}})
    dst = tmp_path / "signed.mp4"
    final = video.label_video(source, dst, cfg, new_label(cfg))
    read = AIGCLabel.from_json(video.read_label(dst) or "")
    public = signing.load_public_key(pub)
    assert signing.verify_signature(read, video.content_digest(dst), public) == signing.SignatureStatus.VALID
    assert read == final
    # The label copied onto the unlabelled source no longer matches its content.
    copied = tmp_path / "copied.mp4"
    video.write_label(source, copied, final.to_json())
    assert (
        signing.verify_signature(read, video.content_digest(copied), public)
        == signing.SignatureStatus.CONTENT_CHANGED
    )


def test_relabel_keeps_one_key_and_mov_works(source: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "1.mov", tmp_path / "2.mov"
    video.write_label(source, first, LABEL)
    other = LABEL.replace("id-1", "id-2")
    video.write_label(first, second, other)
    assert video.read_label(second) == other
    with av.open(str(second)) as c:
        assert [k for k in c.metadata if "aigc" in k.lower()] == ["AIGC"]


def test_lost_key_is_an_error_and_leaves_no_output(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = av.open

    def open_without_flags(*args: Any, **kwargs: Any) -> Any:
        kwargs.pop("options", None)  # what a writer forgetting movflags=use_metadata_tags does
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", open_without_flags)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(LabelFormatError, match="AIGC key did not survive"):
        video.write_label(source, out_dir / "x.mp4", LABEL)
    assert list(out_dir.iterdir()) == []


# ---------------------------------------------------------------------------------------- bad input


def bad_inputs(tmp_path: Path, source: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    sound = tmp_path / "sound.m4a"
    make_audio_only(sound)
    faststart = tmp_path / "faststart.mp4"
    with av.open(str(source)) as inp, av.open(str(faststart), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for pkt in inp.demux():
            if pkt.dts is not None:
                pkt.stream = streams[pkt.stream.index]
                out.mux(pkt)
    cut_fast = tmp_path / "cutfast.mp4"
    cut_fast.write_bytes(faststart.read_bytes()[: faststart.stat().st_size * 3 // 4])
    return {
        # moov first: FFmpeg itself would read the partial file without complaint.
        "truncated fast-start": (cut_fast, r"cutfast\.mp4: truncated: MP4 box 'mdat' at byte \d+ needs"),
        "text": (text, r"notes\.mp4: not a video file FFmpeg can read"),
        "truncated": (cut, r"cut\.mp4: (not a video file FFmpeg can read|.*truncated)"),
        "no video": (sound, r"sound\.m4a: has no video stream"),
    }


def make_audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("aac", rate=SR)
        f = av.AudioFrame.from_ndarray(np.zeros((1, SR), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = SR, 0
        for p in [*s.encode(f), *s.encode(None)]:
            out.mux(p)


@pytest.mark.parametrize("case", ["text", "truncated", "truncated fast-start", "no video"])
def test_bad_input_is_one_line_and_no_output(source: Path, tmp_path: Path, case: str) -> None:
    src, pattern = bad_inputs(tmp_path, source)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cfg = HeguiConfig()
    with pytest.raises(LabelFormatError, match=pattern) as err:
        video.label_video(src, out_dir / "x.mp4", cfg, new_label(cfg))
    assert "\n" not in str(err.value)
    with pytest.raises(LabelFormatError):
        video.write_label(src, out_dir / "y.mp4", LABEL)
    assert list(out_dir.iterdir()) == []


def test_unsupported_output_suffix(source: Path, tmp_path: Path) -> None:
    with pytest.raises(LabelFormatError, match=r"must be \.mp4, \.m4v or \.mov"):
        video.write_label(source, tmp_path / "x.avi", LABEL)
