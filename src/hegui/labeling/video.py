"""GB 45438 labels for video: the label text burnt into the opening frames, and the ``AIGC`` MP4/MOV key.

Explicit (GB 45438 §5): the text on the opening frames for ≥ ``duration_s`` (2 s) — or on every
frame — with glyph height ≥ 5% of the shorter side, drawn by
:func:`hegui.labeling.image.draw_explicit_label` on each frame. The bundled FFmpeg has no
``drawtext`` filter, so frames go through Pillow and back, and the video is re-encoded with
libx264 at the source's resolution, frame rate and time base. Audio packets are copied untouched
when the output container takes the codec, else re-encoded to AAC.

Implicit (TC260-PG-20257A via implementers): the ``moov/udta/meta`` key ``AIGC`` (``keys`` +
``ilst``), written by remuxing the packets with ``movflags=use_metadata_tags`` — without that flag
FFmpeg drops the key silently, so every write is read back.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hegui.errors import UserError
from hegui.labeling.config import VideoLabelConfig
from hegui.labeling.fileio import atomic_output
from hegui.labeling.metadata import LabelFormatError

if TYPE_CHECKING:
    from PIL import Image

    from hegui.config import HeguiConfig
    from hegui.labeling.metadata import AIGCLabel

SUFFIXES: frozenset[str] = frozenset({".mp4", ".m4v", ".mov"})
AIGC_KEY = "AIGC"
_MUXER = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
# Container-level keys FFmpeg derives itself; with use_metadata_tags they would be written as mdta keys.
_DERIVED_KEYS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder", "creation_time"})
# Audio codecs copied as-is; anything else is re-encoded to AAC.
_COPY_AUDIO = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}),
    "mov": frozenset(
        {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac", "pcm_s16le", "pcm_s24le", "pcm_f32le"}
    ),
}
_X264_PIX_FMTS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"})


def config_from(cfg: HeguiConfig) -> VideoLabelConfig:
    """``labeling.video`` of ``cfg``."""
    return cfg.labeling.video


# ----------------------------------------------------------------------------------------- helpers


def _reason(exc: BaseException) -> str:
    """A short cause: FFmpeg's and the OS's message without the errno and path they repeat."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_TOP_LEVEL_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta", b"pnot", b"udta"})


def _check_boxes_complete(path: Path) -> None:
    """For MP4/MOV: every top-level box must end within the file.

    FFmpeg reads a truncated "fast start" file (``moov`` first) without complaint and returns fewer
    packets, which would silently label a partial video.
    """
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        head = f.read(8)
        if len(head) < 8 or head[4:8] not in _TOP_LEVEL_BOXES:
            return  # not ISO BMFF; FFmpeg judges it
        pos = 0
        while pos + 8 <= size:
            f.seek(pos)
            box_size, box_type = struct.unpack(">I4s", f.read(8))
            if box_size == 1:
                box_size = struct.unpack(">Q", f.read(8))[0]
            elif box_size == 0:  # runs to the end of the file
                return
            if box_size < 8 or pos + box_size > size:
                raise LabelFormatError(
                    f"{path}: truncated: MP4 box {box_type.decode('latin-1')!r} at byte {pos} needs "
                    f"{box_size} bytes but only {size - pos} remain"
                )
            pos += box_size


@contextmanager
def _open_video(path: Path) -> Iterator[Any]:
    """Open ``path`` for reading; LabelFormatError (one line) if it is not a video FFmpeg can read."""
    import av

    path = Path(path)
    if not path.is_file():
        raise LabelFormatError(f"{path}: no such file")
    _check_boxes_complete(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise LabelFormatError(f"{path}: not a video file FFmpeg can read ({_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise LabelFormatError(f"{path}: has no video stream")
        yield container
    finally:
        container.close()


def _muxer_for(dst: Path) -> str:
    try:
        return _MUXER[dst.suffix.lower()]
    except KeyError:
        raise LabelFormatError(
            f"{dst}: video output must be .mp4, .m4v or .mov, not {dst.suffix or 'no suffix'!r}"
        ) from None


@contextmanager
def _demux_errors(path: Path, what: str) -> Iterator[None]:
    import av

    try:
        yield
    except av.FFmpegError as exc:
        raise LabelFormatError(
            f"{path}: {what} failed ({_reason(exc)}); the file may be truncated or corrupt"
        ) from None


# ------------------------------------------------------------------------------------ implicit label


def read_label(path: Path) -> str | None:
    """The raw JSON of the ``AIGC`` container key, or None when there is none."""
    with _open_video(Path(path)) as c:
        meta = dict(c.metadata)
    if AIGC_KEY in meta:
        return str(meta[AIGC_KEY])
    for key, value in meta.items():
        if AIGC_KEY.lower() in key.lower():
            return str(value)
    return None


def _copy_metadata(inp: Any, out: Any) -> None:
    """The source's own container tags, without FFmpeg-derived keys and without any old label."""
    for key, value in inp.metadata.items():
        if key not in _DERIVED_KEYS and AIGC_KEY.lower() not in key.lower():
            out.metadata[key] = value


def _remux(src: Path, dst_tmp: Path, muxer: str, label_json: str | None) -> None:
    """Copy every audio/video/subtitle packet of ``src`` into ``dst_tmp``, with the ``AIGC`` key."""
    import av

    with _open_video(src) as inp:
        options = {"movflags": "use_metadata_tags"} if label_json is not None else {}
        try:
            out = av.open(str(dst_tmp), "w", format=muxer, options=options)
        except av.FFmpegError as exc:
            raise LabelFormatError(f"{dst_tmp}: cannot write {muxer} ({_reason(exc)})") from None
        with out, _demux_errors(src, "remuxing"):
            _copy_metadata(inp, out)
            if label_json is not None:
                out.metadata[AIGC_KEY] = label_json
            mapping: dict[int, Any] = {}
            for s in inp.streams:
                if s.type in ("video", "audio", "subtitle"):
                    mapping[s.index] = out.add_stream_from_template(s)
            for pkt in inp.demux(*[inp.streams[i] for i in mapping]):
                if pkt.dts is None:  # demuxer flush packets carry no data
                    continue
                pkt.stream = mapping[pkt.stream.index]
                out.mux(pkt)


def write_label(src: Path, dst: Path, label_json: str) -> None:
    """Copy ``src`` to ``dst`` (MP4/MOV) with ``label_json`` under the ``AIGC`` key; packets untouched."""
    src, dst = Path(src), Path(dst)
    muxer = _muxer_for(dst)
    with atomic_output(dst) as tmp:
        _remux(src, tmp, muxer, label_json)
        _check_readback(tmp, label_json)


def _check_readback(path: Path, label_json: str) -> None:
    got = read_label(path)
    if got != label_json:
        raise LabelFormatError(
            f"{path}: the AIGC key did not survive writing ({'missing' if got is None else 'altered'}); "
            "FFmpeg keeps custom MP4 keys only with movflags=use_metadata_tags"
        )


def content_digest(path: Path) -> bytes:
    """SHA-256 over the codec parameters and packet payloads of every video and audio stream.

    Each stream is hashed on its own, then combined in stream order, so a remux that interleaves
    the streams differently (or adds metadata) gives the same digest, while any change of a frame
    or of the sound changes it.
    """
    path = Path(path)
    with _open_video(path) as c:
        streams = [s for s in c.streams if s.type in ("video", "audio")]
        order = [s.index for s in streams]
        hashers = {i: hashlib.sha256() for i in order}
        for s in streams:
            cc = s.codec_context
            shape = f"{cc.width}x{cc.height}" if s.type == "video" else f"{cc.sample_rate}/{cc.channels}"
            hashers[s.index].update(f"{s.type}/{cc.name}/{shape}\0".encode())
            if s.type == "video" and cc.extradata:
                hashers[s.index].update(cc.extradata)
        with _demux_errors(path, "reading packets"):
            for pkt in c.demux(*streams):
                if pkt.size:
                    hashers[pkt.stream.index].update(struct.pack("<I", pkt.size))
                    hashers[pkt.stream.index].update(bytes(pkt))
    total = hashlib.sha256(b"hegui-video\0")
    for i in order:
        total.update(hashers[i].digest())
    return total.digest()


# ------------------------------------------------------------------------------------ explicit label


def _turns() -> dict[int, tuple[Image.Transpose, Image.Transpose]]:
    from PIL import Image

    t = Image.Transpose
    # FFmpeg's frame rotation r (display matrix) shows the stored picture turned r° counter-clockwise.
    return {90: (t.ROTATE_90, t.ROTATE_270), 180: (t.ROTATE_180, t.ROTATE_180), 270: (t.ROTATE_270, t.ROTATE_90)}


_TURNS = _turns()


def _rotation_of(frame: Any) -> int:
    """The display rotation of a decoded frame, to the nearest quarter turn (0, 90, 180 or 270)."""
    try:
        r = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return (round(r / 90) * 90) % 360


def display_image(frame: Any) -> Image.Image:
    """The frame as a viewer shows it (display-matrix rotation applied)."""
    img = frame.to_image()
    rotation = _rotation_of(frame)
    return img.transpose(_TURNS[rotation][0]) if rotation else img


def _first_frame_rotation(path: Path) -> int:
    with _open_video(path) as c, _demux_errors(path, "decoding"):
        for frame in c.decode(c.streams.video[0]):
            return _rotation_of(frame)
    return 0


class FrameLabeler:
    """Draws the label on decoded frames of one size with :func:`draw_explicit_label`.

    For 4:2:0 frames only the label's box goes through RGB: it is cut out of the YUV planes, drawn
    on, converted back and written in, so the rest of the picture keeps its decoded YUV values
    exactly (a whole-frame YUV→RGB→YUV round trip blurs chroma and costs about 4 ms a 720p frame).
    Other pixel formats take the whole frame through Pillow.
    """

    def __init__(
        self, width: int, height: int, conf: VideoLabelConfig, font_path: Path | None = None, *, rotation: int = 0
    ) -> None:
        from hegui.labeling.image import layout_explicit_label

        self.width, self.height = width, height
        self.rotation = rotation % 360
        if self.rotation in (90, 270):
            # The label is laid out on the picture as shown, which is the stored frame turned.
            width, height = height, width
        self.text, self.position, self.ratio = conf.text, conf.position, conf.height_ratio
        self.font = str(font_path) if font_path else None
        try:
            layout = layout_explicit_label(
                (width, height), conf.text, position=conf.position, height_ratio=conf.height_ratio,
                font_path=font_path, font_key="labeling.video.font",
            )
        except UserError as exc:
            raise LabelFormatError(str(exc)) from None
        x0, y0, x1, y1 = layout.box
        # Chroma is subsampled 2×2: widen the box to even edges so whole chroma samples are replaced.
        self.box = (x0 & ~1, y0 & ~1, min(width, (x1 + 1) & ~1), min(height, (y1 + 1) & ~1))

    def _draw(self, img: Image.Image) -> Image.Image:
        from hegui.labeling.image import draw_explicit_label

        return draw_explicit_label(
            img, self.text, position=self.position, height_ratio=self.ratio, font_path=self.font
        )

    def __call__(self, frame: Any) -> Any:
        """A new frame with the label, same pts and time base."""
        import av

        fmt = frame.format.name if frame.format else ""
        same_size = frame.width == self.width and frame.height == self.height
        if self.rotation:
            turn, back = _TURNS[self.rotation]
            new = av.VideoFrame.from_image(self._draw(frame.to_image().transpose(turn)).transpose(back))
        elif fmt == "yuv420p" and same_size and not (self.width | self.height) & 1:
            new = self._label_yuv420p(frame)
        else:
            new = av.VideoFrame.from_image(self._draw(frame.to_image()))
        new.pts = frame.pts
        if frame.time_base is not None:
            new.time_base = frame.time_base
        return new

    def _label_yuv420p(self, frame: Any) -> Any:
        import av
        import numpy as np
        from PIL import Image

        w, h = self.width, self.height
        x0, y0, x1, y1 = self.box
        flat = frame.to_ndarray().reshape(-1).copy()
        y_plane = flat[: w * h].reshape(h, w)
        u_plane = flat[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
        v_plane = flat[w * h * 5 // 4 :].reshape(h // 2, w // 2)
        cy, cx = slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2)
        region = np.concatenate(
            [y_plane[y0:y1, x0:x1].ravel(), u_plane[cy, cx].ravel(), v_plane[cy, cx].ravel()]
        ).reshape((y1 - y0) * 3 // 2, x1 - x0)
        # Draw on a full-size canvas holding the box's pixels, so the label's layout is the one
        # draw_explicit_label computes for this frame size.
        canvas = Image.new("RGB", (w, h))
        canvas.paste(av.VideoFrame.from_ndarray(region, format="yuv420p").to_image(), (x0, y0))
        drawn = self._draw(canvas).crop(self.box)
        back = av.VideoFrame.from_image(drawn).reformat(format="yuv420p").to_ndarray().reshape(-1)
        rw, rh = x1 - x0, y1 - y0
        y_plane[y0:y1, x0:x1] = back[: rw * rh].reshape(rh, rw)
        u_plane[cy, cx] = back[rw * rh : rw * rh * 5 // 4].reshape(rh // 2, rw // 2)
        v_plane[cy, cx] = back[rw * rh * 5 // 4 :].reshape(rh // 2, rw // 2)
        return av.VideoFrame.from_ndarray(flat.reshape(h * 3 // 2, w), format="yuv420p")


def burn_in(
    src: Path, dst_tmp: Path, conf: VideoLabelConfig, *, muxer: str = "mp4", font_path: Path | None = None
) -> None:
    """Re-encode ``src`` into ``dst_tmp`` with the label drawn on the opening frames (or all frames)."""
    import av
    from av.video.frame import PictureType

    rotation = _first_frame_rotation(src)
    with _open_video(src) as inp:
        vin = inp.streams.video[0]
        vcc = vin.codec_context
        if not vcc.width or not vcc.height:
            raise LabelFormatError(f"{src}: video stream has no frame size")
        try:
            # Fails on a label that does not fit before any output is written.
            labeler = FrameLabeler(vcc.width, vcc.height, conf, font_path, rotation=rotation)
        except LabelFormatError as exc:
            raise LabelFormatError(f"{src}: {exc}") from None
        rate = vin.average_rate or vin.guessed_rate or 25
        try:
            out = av.open(str(dst_tmp), "w", format=muxer)
        except av.FFmpegError as exc:
            raise LabelFormatError(f"{dst_tmp}: cannot write {muxer} ({_reason(exc)})") from None
        with out, _demux_errors(src, "re-encoding"):
            _copy_metadata(inp, out)
            vout: Any = out.add_stream("libx264", rate=rate)
            vout.width, vout.height = vcc.width, vcc.height
            vout.pix_fmt = vcc.format.name if vcc.format and vcc.format.name in _X264_PIX_FMTS else "yuv420p"
            vout.time_base = vin.time_base
            vout.options = {"crf": str(conf.crf), "preset": conf.preset}
            if rotation:
                vout.set_display_rotation(rotation)
            if vin.metadata.get("language"):
                vout.metadata["language"] = vin.metadata["language"]
            audio_map: dict[int, tuple[Any, bool]] = {}
            for a in inp.streams.audio:
                copy = conf.audio == "copy" and a.codec_context.name in _COPY_AUDIO[muxer]
                if copy:
                    aout = out.add_stream_from_template(a)
                else:
                    aout = out.add_stream("aac", rate=a.codec_context.sample_rate)
                    aout.layout = a.codec_context.layout.name
                audio_map[a.index] = (aout, copy)

            first_pts: int | None = None
            index = 0

            def encode_video(frame: Any) -> None:
                nonlocal first_pts, index
                if frame.pts is not None and first_pts is None:
                    first_pts = frame.pts
                t = (
                    float((frame.pts - (first_pts or 0)) * frame.time_base)
                    if frame.pts is not None and frame.time_base is not None
                    else index / float(rate)
                )
                index += 1
                if conf.whole_video or t < conf.duration_s:
                    frame = labeler(frame)
                # Let x264 choose frame types instead of copying the source's GOP.
                frame.pict_type = PictureType.NONE
                for p in vout.encode(frame):
                    out.mux(p)

            for pkt in inp.demux(vin, *inp.streams.audio):
                if pkt.stream.index == vin.index:
                    for frame in pkt.decode():
                        encode_video(frame)
                    continue
                aout, copy = audio_map[pkt.stream.index]
                if copy:
                    if pkt.dts is None:
                        continue
                    pkt.stream = aout
                    out.mux(pkt)
                else:
                    for aframe in pkt.decode():
                        aframe.pts = None  # the encoder restamps from the sample count
                        for p in aout.encode(aframe):
                            out.mux(p)
            for p in vout.encode(None):
                out.mux(p)
            for aout, copy in audio_map.values():
                if not copy:
                    for p in aout.encode(None):
                        out.mux(p)
        if index == 0:
            raise LabelFormatError(f"{src}: the video stream has no decodable frames")


def label_presence(
    path: Path,
    conf: VideoLabelConfig | None = None,
    *,
    until_s: float | None = None,
    font_path: Path | None = None,
) -> list[tuple[float, bool]]:
    """``(time_s, label seen?)`` for each decoded frame up to ``until_s`` (all frames if None)."""
    from hegui.labeling.image import explicit_label_present

    conf = conf or VideoLabelConfig()
    result: list[tuple[float, bool]] = []
    with _open_video(Path(path)) as c, _demux_errors(Path(path), "decoding"):
        vin = c.streams.video[0]
        first: int | None = None
        for frame in c.decode(vin):
            if frame.pts is None or frame.time_base is None:
                t = len(result) / float(vin.average_rate or 25)
            else:
                first = frame.pts if first is None else first
                t = float((frame.pts - first) * frame.time_base)
            if until_s is not None and t >= until_s:
                break
            seen = explicit_label_present(
                display_image(frame),
                conf.text,
                position=conf.position,
                height_ratio=conf.height_ratio,
                font_path=str(font_path) if font_path else None,
            )
            result.append((t, seen))
    return result


def video_has_explicit_label(
    path: Path, conf: VideoLabelConfig | None = None, *, font_path: Path | None = None
) -> bool | None:
    """Best effort: is the label on every frame of the opening ``duration_s``? None if no frame decodes.

    Looks for the label as configured (text, position, size); a label drawn differently is not seen.
    """
    conf = conf or VideoLabelConfig()
    frames = label_presence(path, conf, until_s=conf.duration_s, font_path=font_path)
    if not frames:
        return None
    return all(seen for _, seen in frames)


# -------------------------------------------------------------------------------------------- the job


def label_video(
    src: Path,
    dst: Path,
    cfg: HeguiConfig,
    label: AIGCLabel,
    conf: VideoLabelConfig | None = None,
) -> AIGCLabel:
    """Burn in the explicit label, sign the content digest, embed the implicit label; return it."""
    from hegui.labeling.signing import load_signing_key, sign

    src, dst = Path(src), Path(dst)
    conf = conf or config_from(cfg)
    muxer = _muxer_for(dst)
    font = cfg.resolve_path(conf.font) if conf.font else None
    key = load_signing_key(cfg)
    with atomic_output(dst) as tmp:
        staged = tmp.with_name(tmp.name + ".burn" + dst.suffix)
        try:
            if cfg.labeling.explicit:
                burn_in(src, staged, conf, muxer=muxer, font_path=font)
            else:
                _remux(src, staged, muxer, None)
            final = sign(label, content_digest(staged), key)
            _remux(staged, tmp, muxer, final.to_json())
            _check_readback(tmp, final.to_json())
        finally:
            staged.unlink(missing_ok=True)
    return final
