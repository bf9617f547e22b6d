"""GB 45438 labels for audio: the "短长短短" cue (or a spoken clip) and the ``AIGC`` metadata.

Implicit label per format (TC260-PG-202510A via implementers): WAV → a RIFF sub-chunk ``AIGC``
(written here, other chunks kept); MP3 → ID3v2 ``TXXX`` with description ``AIGC``; FLAC and Ogg → the
Vorbis comment ``AIGC``. The explicit cue is added before and/or after the content, never mixed into
it, so the generated content itself is not altered; WAV content bytes are kept verbatim.

Per-format trio (the verifier dispatches on suffix): :func:`write_label`, :func:`read_label`,
:func:`content_digest`; and :func:`label_audio` for the whole job.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from hegui.labeling import morse
from hegui.labeling.config import AudioLabelConfig
from hegui.labeling.fileio import atomic_output
from hegui.labeling.metadata import LabelFormatError

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.labeling.metadata import AIGCLabel

SUFFIXES: frozenset[str] = frozenset({".wav", ".wave", ".mp3", ".flac", ".ogg", ".oga", ".opus"})
AIGC_KEY = "AIGC"
_CHUNK_ID = b"AIGC"
_COPY_BLOCK = 1 << 20
# The cue's loudness follows the content's, but stays audible on near-silence and never near clipping.
_CUE_MIN_DBFS = -30.0
_CUE_MAX_DBFS = -3.0

Kind = Literal["wav", "mp3", "flac", "ogg"]


def cue_timing(conf: AudioLabelConfig) -> morse.CueTiming:
    """The Morse timing of ``labeling.audio``: a dot and each gap are one unit, a dash three."""
    unit = conf.unit_ms / 1000
    return morse.CueTiming(dot=unit, dash=3 * unit, gap=unit)


# --------------------------------------------------------------------------------------------- sniffing


def audio_kind(path: Path) -> Kind:
    """The container of ``path`` from its first bytes (suffixes lie); LabelFormatError if not audio."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise LabelFormatError(f"{path}: cannot read ({exc.strerror})") from None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] in (b"RF64", b"BW64"):
        raise LabelFormatError(f"{path}: RF64/BW64 WAV (over 4 GiB) is not supported")
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3":
        # FLAC files sometimes carry a leading ID3 tag; look past it.
        size = _syncsafe(head[6:10]) + 10 + (10 if head[5] & 0x10 else 0)
        with open(path, "rb") as f:
            f.seek(size)
            return "flac" if f.read(4) == b"fLaC" else "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "mp3"
    raise LabelFormatError(f"{path}: not a WAV, MP3, FLAC or Ogg audio file")


def _syncsafe(b: bytes) -> int:
    return (b[0] << 21) | (b[1] << 14) | (b[2] << 7) | b[3]


# ------------------------------------------------------------------------------------------------- WAV


@dataclass(frozen=True, slots=True)
class _Chunk:
    cid: bytes
    offset: int  # of the payload
    size: int


@dataclass(frozen=True, slots=True)
class _WavFormat:
    tag: int  # 1 PCM int, 3 IEEE float (extensible resolved to its subformat)
    channels: int
    rate: int
    block_align: int
    bits: int

    @property
    def sample_bytes(self) -> int:
        return self.block_align // self.channels

    def check_supported(self, path: Path) -> None:
        ok = (self.tag == 1 and self.sample_bytes in (1, 2, 3, 4)) or (self.tag == 3 and self.sample_bytes in (4, 8))
        if not ok or self.channels < 1:
            raise LabelFormatError(
                f"{path}: WAV sample format {self.tag} with {self.sample_bytes * 8}-bit samples is not supported "
                "(PCM 8/16/24/32-bit or float 32/64-bit)"
            )


def _wav_chunks(path: Path, f: IO[bytes]) -> list[_Chunk]:
    f.seek(0, os.SEEK_END)
    file_size = f.tell()
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise LabelFormatError(f"{path}: not a RIFF/WAVE file")
    chunks: list[_Chunk] = []
    pos = 12
    while pos + 8 <= file_size:
        f.seek(pos)
        cid, size = struct.unpack("<4sI", f.read(8))
        if pos + 8 + size > file_size:
            raise LabelFormatError(
                f"{path}: truncated: RIFF chunk {cid.decode('latin-1')!r} at byte {pos} declares {size} bytes "
                f"but only {file_size - pos - 8} remain"
            )
        chunks.append(_Chunk(cid, pos + 8, size))
        pos += 8 + size + (size & 1)
    if pos < file_size and file_size - pos > 1:
        raise LabelFormatError(f"{path}: {file_size - pos} stray bytes after the last RIFF chunk")
    ids = [c.cid for c in chunks]
    if b"fmt " not in ids or b"data" not in ids:
        raise LabelFormatError(f"{path}: WAV lacks a {'fmt ' if b'fmt ' not in ids else 'data'!r} chunk")
    return chunks


def _find(chunks: list[_Chunk], cid: bytes) -> _Chunk:
    return next(c for c in chunks if c.cid == cid)


def _wav_format(path: Path, f: IO[bytes], chunks: list[_Chunk]) -> _WavFormat:
    fmt = _find(chunks, b"fmt ")
    f.seek(fmt.offset)
    raw = f.read(fmt.size)
    if len(raw) < 16:
        raise LabelFormatError(f"{path}: WAV 'fmt ' chunk is {len(raw)} bytes, needs at least 16")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", raw[:16])
    if tag == 0xFFFE and len(raw) >= 26:
        tag = struct.unpack("<H", raw[24:26])[0]
    if channels == 0 or block_align % max(channels, 1):
        raise LabelFormatError(f"{path}: WAV 'fmt ' chunk is inconsistent ({channels} channels, block {block_align})")
    return _WavFormat(tag, channels, rate, block_align, bits)


def _pcm_to_float(raw: bytes, fmt: _WavFormat) -> NDArray[np.float64]:
    """Interleaved bytes → ``(channels, n)`` float64 in [-1, 1]."""
    n = len(raw) // fmt.block_align
    raw = raw[: n * fmt.block_align]
    sb = fmt.sample_bytes
    x: NDArray[Any]
    if fmt.tag == 3:
        x = np.frombuffer(raw, "<f4" if sb == 4 else "<f8").astype(np.float64)
    elif sb == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128) / 128
    elif sb == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / (1 << 23)
    else:
        x = np.frombuffer(raw, "<i2" if sb == 2 else "<i4").astype(np.float64) / (1 << (8 * sb - 1))
    return x.reshape(n, fmt.channels).T


def _float_to_pcm(x: NDArray[np.floating], fmt: _WavFormat) -> bytes:
    """``(channels, n)`` floats → interleaved bytes in ``fmt`` (clipped, rounded)."""
    inter = np.clip(np.asarray(x, np.float64).T.reshape(-1), -1.0, 1.0)
    sb = fmt.sample_bytes
    if fmt.tag == 3:
        return inter.astype("<f4" if sb == 4 else "<f8").tobytes()
    if sb == 1:
        return np.clip(np.round(inter * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    full = (1 << (8 * sb - 1)) - 1
    v = np.round(inter * full).astype(np.int64)
    if sb == 3:
        v = v & 0xFFFFFF
        return np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    return v.astype("<i2" if sb == 2 else "<i4").tobytes()


def _wav_rms(f: IO[bytes], fmt: _WavFormat, data: _Chunk) -> float:
    total = 0.0
    count = 0
    block = max(fmt.block_align, (_COPY_BLOCK // fmt.block_align) * fmt.block_align)
    f.seek(data.offset)
    left = data.size
    while left > 0:
        raw = f.read(min(block, left))
        if not raw:
            break
        left -= len(raw)
        x = _pcm_to_float(raw, fmt)
        total += float(np.sum(x * x))
        count += x.size
    return (total / count) ** 0.5 if count else 0.0


# A payload of the rewritten data chunk: literal bytes, or (offset, size) copied from the source file.
_Part = bytes | tuple[int, int]


def _rewrite_wav(
    src: Path,
    out: IO[bytes],
    *,
    label: bytes | None,
    data_parts: Callable[[IO[bytes], _WavFormat, _Chunk], list[_Part]] | None = None,
) -> None:
    """Copy ``src`` chunk by chunk to ``out``, replacing any ``AIGC`` chunk and optionally the data."""
    with open(src, "rb") as f:
        chunks = _wav_chunks(src, f)
        fmt = _wav_format(src, f, chunks)
        data = _find(chunks, b"data")
        parts: list[_Part] = [(data.offset, data.size)]
        if data_parts is not None:
            fmt.check_supported(src)
            parts = data_parts(f, fmt, data)
        new_data_size = sum(len(p) if isinstance(p, bytes) else p[1] for p in parts)
        frames = new_data_size // fmt.block_align
        out.write(b"RIFF\0\0\0\0WAVE")
        for c in chunks:
            if c.cid == _CHUNK_ID:
                continue
            if c.cid == b"data":
                out.write(b"data" + struct.pack("<I", new_data_size))
                for p in parts:
                    out.write(p) if isinstance(p, bytes) else _copy_range(f, out, *p)
                if new_data_size & 1:
                    out.write(b"\0")
                continue
            f.seek(c.offset)
            payload = f.read(c.size)
            if c.cid == b"fact" and c.size >= 4 and data_parts is not None:
                # 'fact' holds the sample-frame count, which the cue changes.
                payload = struct.pack("<I", frames) + payload[4:]
            out.write(c.cid + struct.pack("<I", c.size) + payload + (b"\0" if c.size & 1 else b""))
        if label is not None:
            out.write(_CHUNK_ID + struct.pack("<I", len(label)) + label + (b"\0" if len(label) & 1 else b""))
        riff_size = out.tell() - 8
        if riff_size > 0xFFFFFFFF:
            raise LabelFormatError(f"{src}: the labelled WAV would exceed the 4 GiB RIFF limit")
        out.seek(4)
        out.write(struct.pack("<I", riff_size))
        out.seek(0, os.SEEK_END)


def _copy_range(f: IO[bytes], out: IO[bytes], offset: int, size: int) -> None:
    f.seek(offset)
    while size > 0:
        buf = f.read(min(_COPY_BLOCK, size))
        if not buf:
            raise LabelFormatError(f"{getattr(f, 'name', 'file')}: unexpected end of file")
        out.write(buf)
        size -= len(buf)


def _wav_read_label(path: Path) -> str | None:
    with open(path, "rb") as f:
        chunks = _wav_chunks(path, f)
        for c in chunks:
            if c.cid == _CHUNK_ID:
                f.seek(c.offset)
                return _decode_label(f.read(c.size), path)
    # Some writers put an ID3 chunk in the WAV instead (mutagen's WAVE tags); accept it when reading.
    try:
        from mutagen.wave import WAVE

        tags = WAVE(path).tags
    except Exception:
        return None
    return _id3_label(tags) if tags is not None else None


def _decode_label(raw: bytes, path: Path) -> str:
    try:
        return raw.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        raise LabelFormatError(f"{path}: the AIGC chunk is not UTF-8") from None


def _wav_digest(path: Path) -> bytes:
    h = hashlib.sha256(b"hegui-audio-wav\0")
    with open(path, "rb") as f:
        chunks = _wav_chunks(path, f)
        for cid in (b"fmt ", b"data"):
            c = _find(chunks, cid)
            h.update(cid + struct.pack("<Q", c.size))
            f.seek(c.offset)
            left = c.size
            while left > 0:
                buf = f.read(min(_COPY_BLOCK, left))
                if not buf:
                    break
                h.update(buf)
                left -= len(buf)
    return h.digest()


# ------------------------------------------------------------------------------------- MP3 / FLAC / Ogg


def _id3_label(tags: Any) -> str | None:
    frames = tags.getall(f"TXXX:{AIGC_KEY}")
    if not frames:
        frames = [fr for fr in tags.getall("TXXX") if AIGC_KEY.lower() in str(fr.desc).lower()]
    for fr in frames:
        if fr.text:
            return str(fr.text[0])
    return None


def _mutagen_open(path: Path, kind: Kind) -> Any:
    import mutagen
    from mutagen.flac import FLAC
    from mutagen.mp3 import MP3

    try:
        if kind == "mp3":
            return MP3(path)
        if kind == "flac":
            return FLAC(path)
        f = mutagen.File(path)
    except Exception as exc:
        raise LabelFormatError(f"{path}: cannot parse {kind.upper()} ({_reason(exc)})") from None
    if f is None:
        raise LabelFormatError(f"{path}: not an Ogg stream mutagen can tag (Vorbis, Opus, FLAC or Speex)")
    return f


def _reason(exc: BaseException) -> str:
    """A short cause: FFmpeg's and the OS's message without the errno and path they repeat."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _set_tag_label(path: Path, kind: Kind, label_json: str) -> None:
    from mutagen.id3 import TXXX

    f = _mutagen_open(path, kind)
    if kind == "mp3":
        if f.tags is None:
            f.add_tags()
        f.tags.delall(f"TXXX:{AIGC_KEY}")
        f.tags.add(TXXX(encoding=3, desc=AIGC_KEY, text=[label_json]))
        version = getattr(f.tags, "version", (2, 4, 0))
        f.save(v2_version=3 if version[:2] == (2, 3) else 4)
        return
    if f.tags is None:
        f.add_tags()
    f.tags[AIGC_KEY] = [label_json]
    f.save()


def _tag_read_label(path: Path, kind: Kind) -> str | None:
    f = _mutagen_open(path, kind)
    if f.tags is None:
        return None
    if kind == "mp3":
        return _id3_label(f.tags)
    values = f.tags.get(AIGC_KEY)
    return str(values[0]) if values else None


def _mp3_frames_range(path: Path, f: IO[bytes]) -> tuple[int, int]:
    """Byte range of the MPEG frames: after leading ID3v2 tags, before trailing APEv2 and ID3v1 tags."""
    data_end = f.seek(0, os.SEEK_END)
    start = 0
    while True:
        f.seek(start)
        head = f.read(10)
        if len(head) == 10 and head[:3] == b"ID3":
            start += 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
            continue
        break
    if data_end - start >= 128:
        f.seek(data_end - 128)
        if f.read(3) == b"TAG":
            data_end -= 128
    if data_end - start >= 32:
        f.seek(data_end - 32)
        footer = f.read(32)
        if footer[:8] == b"APETAGEX":
            size, flags = struct.unpack("<I4xI", footer[12:24])
            data_end -= size + (32 if flags & 0x80000000 else 0)
    if data_end <= start:
        raise LabelFormatError(f"{path}: MP3 holds no audio frames")
    return start, data_end


def _mp3_digest(path: Path) -> bytes:
    """SHA-256 of the MPEG frames (tags excluded)."""
    with open(path, "rb") as f:
        start, end = _mp3_frames_range(path, f)
        h = hashlib.sha256(b"hegui-audio-mp3\0")
        _copy_range_to_hash(f, h, start, end - start)
    return h.digest()


# kbit/s by (MPEG-1?, layer) and bitrate index 1..14; sample rates by version.
_MP3_BITRATES = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame_length(h: bytes) -> int | None:
    """Length of the MPEG audio frame whose 4-byte header is ``h``; None if it is not one."""
    if h[0] != 0xFF or (h[1] & 0xE0) != 0xE0:
        return None
    version, layer_bits = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    br_index, sr_index, padding = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or br_index in (0, 15) or sr_index == 3:
        return None  # reserved values, or free-format bit rate (no length in the header)
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _MP3_BITRATES[(mpeg1, layer)][br_index - 1] * 1000
    rate = _MP3_RATES[version][sr_index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    return (144 if layer == 2 or mpeg1 else 72) * bitrate // rate + padding


def _check_mp3_complete(path: Path) -> None:
    """Walk the frame chain; the last frame must end within the file (FFmpeg decodes a cut file silently)."""
    with open(path, "rb") as f:
        pos, end = _mp3_frames_range(path, f)
        frames = 0
        while pos + 4 <= end:
            f.seek(pos)
            length = _mp3_frame_length(f.read(4))
            if length is None:
                return  # lost sync: junk or an unusual stream; leave it to the decoder
            if pos + length > end:
                raise LabelFormatError(
                    f"{path}: truncated: MP3 frame {frames} at byte {pos} needs {length} bytes "
                    f"but only {end - pos} remain"
                )
            pos += length
            frames += 1


def _copy_range_to_hash(f: IO[bytes], h: Any, offset: int, size: int) -> None:
    f.seek(offset)
    while size > 0:
        buf = f.read(min(_COPY_BLOCK, size))
        if not buf:
            break
        h.update(buf)
        size -= len(buf)


def _packets_digest(path: Path, tag: bytes) -> bytes:
    """SHA-256 of the codec parameters and the demuxed audio packet payloads (tags live elsewhere)."""
    import av

    h = hashlib.sha256(tag)
    with _open_av(path) as c:
        streams = list(c.streams.audio)
        if not streams:
            raise LabelFormatError(f"{path}: no audio stream")
        for s in streams:
            h.update(f"{s.codec_context.name}/{s.codec_context.sample_rate}/{s.codec_context.channels}\0".encode())
        try:
            for pkt in c.demux(*streams):
                if pkt.size:
                    h.update(struct.pack("<I", pkt.stream.index))
                    h.update(bytes(pkt))
        except av.FFmpegError as exc:
            raise LabelFormatError(f"{path}: cannot read audio packets ({_reason(exc)})") from None
    return h.digest()


@contextmanager
def _open_av(path: Path) -> Iterator[Any]:
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise LabelFormatError(f"{path}: cannot open as audio ({_reason(exc)})") from None
    try:
        yield container
    finally:
        container.close()


# --------------------------------------------------------------------------------------- public trio


_KIND_SUFFIXES: dict[str, frozenset[str]] = {
    "wav": frozenset({".wav", ".wave"}),
    "mp3": frozenset({".mp3"}),
    "flac": frozenset({".flac"}),
    "ogg": frozenset({".ogg", ".oga", ".opus"}),
}


def _check_dst_suffix(src: Path, dst: Path, kind: Kind) -> None:
    """The output keeps the input's container, so its name must not claim another one."""
    suffix = dst.suffix.lower()
    if suffix in SUFFIXES and suffix not in _KIND_SUFFIXES[kind]:
        raise LabelFormatError(f"{dst}: output suffix {suffix} does not match the input {src} ({kind.upper()})")


def _check_complete(src: Path, kind: Kind) -> None:
    """Refuse a cut-off input before labelling it (WAV is checked chunk by chunk while copying)."""
    if kind == "mp3":
        _check_mp3_complete(src)


def write_label(src: Path, dst: Path, label_json: str) -> None:
    """Copy ``src`` to ``dst`` with ``label_json`` as the implicit label (replacing any old one)."""
    src, dst = Path(src), Path(dst)
    kind = audio_kind(src)
    _check_dst_suffix(src, dst, kind)
    _check_complete(src, kind)
    with atomic_output(dst) as tmp:
        _embed(src, tmp, kind, label_json)
        _check_readback(tmp, label_json)


def _embed(src: Path, tmp: Path, kind: Kind, label_json: str) -> None:
    if kind == "wav":
        with open(tmp, "wb") as out:
            _rewrite_wav(src, out, label=label_json.encode("utf-8"))
        return
    shutil.copyfile(src, tmp)
    _set_tag_label(tmp, kind, label_json)


def _check_readback(path: Path, label_json: str) -> None:
    if read_label(path) != label_json:
        raise LabelFormatError(f"{path}: the AIGC label did not read back after writing")


def read_label(path: Path) -> str | None:
    """The raw JSON of the implicit label in ``path``, or None when it has none."""
    path = Path(path)
    kind = audio_kind(path)
    if kind == "wav":
        return _wav_read_label(path)
    return _tag_read_label(path, kind)


def content_digest(path: Path) -> bytes:
    """SHA-256 of the audio content only: WAV ``fmt ``+``data``, MP3 frames, FLAC/Ogg packets."""
    path = Path(path)
    kind = audio_kind(path)
    if kind == "wav":
        return _wav_digest(path)
    if kind == "mp3":
        return _mp3_digest(path)
    return _packets_digest(path, b"hegui-audio-" + kind.encode() + b"\0")


# -------------------------------------------------------------------------------------- explicit cue


def cue_amplitude(content_rms: float, level_db: float) -> float:
    """Peak amplitude of the tone: ``level_db`` relative to the content RMS, within -30…-3 dBFS."""
    if content_rms <= 0:
        return float(10 ** (_CUE_MIN_DBFS / 20))
    peak = content_rms * 10 ** (level_db / 20) * np.sqrt(2)
    return float(np.clip(peak, 10 ** (_CUE_MIN_DBFS / 20), 10 ** (_CUE_MAX_DBFS / 20)))


def make_cue(
    conf: AudioLabelConfig,
    sample_rate: int,
    channels: int,
    content_rms: float,
    *,
    clip_path: Path | None = None,
) -> NDArray[np.float32]:
    """The explicit label as ``(channels, n)`` float32 at ``sample_rate``, followed by ``pad_ms`` of silence."""
    if conf.cue == "morse":
        cue = morse.synthesize_cue(
            sample_rate,
            channels,
            tone_hz=conf.tone_hz,
            amplitude=cue_amplitude(content_rms, conf.level_db),
            timing=cue_timing(conf),
        )
    elif conf.cue == "clip":
        if clip_path is None:
            raise LabelFormatError("labeling.audio.clip: not set, but labeling.audio.cue is 'clip'")
        if not clip_path.is_file():
            raise LabelFormatError(f"labeling.audio.clip: {clip_path}: no such file")
        cue = decode_audio(clip_path, sample_rate=sample_rate, channels=channels)[0]
    else:
        return np.zeros((channels, 0), np.float32)
    pad = np.zeros((channels, round(conf.pad_ms * sample_rate / 1000)), np.float32)
    return np.concatenate([cue, pad], axis=1)


def _end_cue(cue: NDArray[np.float32], conf: AudioLabelConfig, rate: int) -> NDArray[np.float32]:
    """The cue for the end: its trailing silence moved in front, so the pause sits after the content."""
    pad = min(round(conf.pad_ms * rate / 1000), cue.shape[1])
    return np.concatenate([cue[:, cue.shape[1] - pad :], cue[:, : cue.shape[1] - pad]], axis=1)


def _layout_name(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def decode_audio(
    path: Path, *, sample_rate: int | None = None, channels: int | None = None
) -> tuple[NDArray[np.float32], int]:
    """Decode the first audio stream to ``(channels, n)`` float32; optionally resample / remix."""
    import av

    with _open_av(path) as c:
        if not c.streams.audio:
            raise LabelFormatError(f"{path}: no audio stream")
        s = c.streams.audio[0]
        rate = sample_rate or s.codec_context.sample_rate
        n_ch = channels or len(s.codec_context.layout.channels)
        layout = _layout_name(channels) if channels else s.codec_context.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        parts: list[NDArray[Any]] = []
        try:
            for frame in c.decode(s):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray())
            for out in resampler.resample(None):
                parts.append(out.to_ndarray())
        except av.FFmpegError as exc:
            raise LabelFormatError(f"{path}: cannot decode audio ({_reason(exc)})") from None
    if not parts:
        return np.zeros((n_ch, 0), np.float32), rate
    return np.concatenate(parts, axis=1).astype(np.float32), rate


def _apply_cue_wav(src: Path, tmp: Path, conf: AudioLabelConfig, clip: Path | None) -> None:
    def parts(f: IO[bytes], fmt: _WavFormat, data: _Chunk) -> list[_Part]:
        rms = _wav_rms(f, fmt, data)
        cue = make_cue(conf, fmt.rate, fmt.channels, rms, clip_path=clip)
        start = _float_to_pcm(cue, fmt)
        end = _float_to_pcm(_end_cue(cue, conf, fmt.rate), fmt) if conf.position != "start" else b""
        whole = data.size - data.size % fmt.block_align
        out: list[_Part] = []
        if conf.position in ("start", "both"):
            out.append(start)
        out.append((data.offset, whole))
        if end:
            out.append(end)
        return out

    with open(tmp, "wb") as out:
        _rewrite_wav(src, out, label=None, data_parts=parts)


_ENCODERS: dict[str, tuple[str, str]] = {
    # kind → (container format, codec)
    "mp3": ("mp3", "libmp3lame"),
    "flac": ("flac", "flac"),
}


def _apply_cue_coded(src: Path, tmp: Path, kind: Kind, conf: AudioLabelConfig, clip: Path | None) -> None:
    """Decode, add the cue, re-encode with the source's codec, rate and channels; copy the tags over."""
    import av

    with _open_av(src) as c:
        if not c.streams.audio:
            raise LabelFormatError(f"{src}: no audio stream")
        s = c.streams.audio[0]
        codec_name = s.codec_context.name
        bit_rate = s.codec_context.bit_rate or c.bit_rate or 0
        bits = s.codec_context.format.bits if s.codec_context.format else 16
        layout_name = s.codec_context.layout.name
    if kind == "ogg":
        if codec_name != "opus":
            raise LabelFormatError(
                f"{src}: cannot add the audio cue to Ogg {codec_name}: the bundled FFmpeg has no {codec_name} "
                "encoder (convert to Ogg Opus, FLAC or MP3, or set labeling.audio.cue: none)"
            )
        fmt_name, encoder = "ogg", "libopus"
    else:
        fmt_name, encoder = _ENCODERS[kind]
    samples, rate = decode_audio(src)
    channels = samples.shape[0]
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    cue = make_cue(conf, rate, channels, rms, clip_path=clip)
    pieces = [samples]
    if conf.position in ("start", "both"):
        pieces.insert(0, cue)
    if conf.position in ("end", "both"):
        pieces.append(_end_cue(cue, conf, rate))
    full = np.ascontiguousarray(np.concatenate(pieces, axis=1), dtype=np.float32)
    try:
        with av.open(str(tmp), "w", format=fmt_name) as out:
            ost: Any = out.add_stream(encoder, rate=rate)
            ost.layout = layout_name if len(av.AudioLayout(layout_name).channels) == channels else _layout_name(channels)
            if encoder == "flac":
                ost.format = "s32" if bits > 16 else "s16"
            elif bit_rate and encoder != "flac":
                ost.bit_rate = int(bit_rate)
            step = 4096
            for k in range(0, full.shape[1], step):
                frame = av.AudioFrame.from_ndarray(full[:, k : k + step], format="fltp", layout=ost.layout.name)
                frame.sample_rate = rate
                frame.pts = k
                frame.time_base = Fraction(1, rate)
                for pkt in ost.encode(frame):
                    out.mux(pkt)
            for pkt in ost.encode(None):
                out.mux(pkt)
    except av.FFmpegError as exc:
        raise LabelFormatError(f"{src}: cannot encode {kind.upper()} with {encoder} ({_reason(exc)})") from None
    _copy_tags(src, tmp, kind)


def _copy_tags(src: Path, dst: Path, kind: Kind) -> None:
    """Carry the source's tags (including cover art) over to the re-encoded file."""
    s = _mutagen_open(src, kind)
    d = _mutagen_open(dst, kind)
    if kind == "mp3":
        from mutagen.id3 import ID3

        if d.tags is not None:
            d.tags.delete(dst)
        if s.tags is None:
            return
        tags = ID3()
        for frame in s.tags.values():
            tags.add(frame)
        version = getattr(s.tags, "version", (2, 4, 0))
        tags.save(dst, v2_version=3 if version[:2] == (2, 3) else 4)
        return
    if d.tags is None:
        d.add_tags()
    d.tags.clear()
    if s.tags is not None:
        for key, values in s.tags.as_dict().items():
            d.tags[key] = values
    if kind == "flac":
        d.clear_pictures()
        for pic in s.pictures:
            d.add_picture(pic)
    d.save()


def apply_explicit_label(src: Path, dst: Path, conf: AudioLabelConfig, *, clip: Path | None = None) -> None:
    """Write ``src`` with the explicit audio label to ``dst`` (same container, codec, rate, channels)."""
    src, dst = Path(src), Path(dst)
    kind = audio_kind(src)
    _check_dst_suffix(src, dst, kind)
    _check_complete(src, kind)
    with atomic_output(dst) as tmp:
        if conf.cue == "none":
            shutil.copyfile(src, tmp)
        elif kind == "wav":
            _apply_cue_wav(src, tmp, conf, clip)
        else:
            _apply_cue_coded(src, tmp, kind, conf, clip)


def audio_has_explicit_label(path: Path, conf: AudioLabelConfig | None = None, *, window_s: float = 6.0) -> bool | None:
    """Best effort: is the Morse cue in the first / last ``window_s`` seconds? None for ``cue`` other than morse."""
    conf = conf or AudioLabelConfig()
    if conf.cue != "morse":
        return None
    samples, rate = decode_audio(Path(path))
    n = round(window_s * rate)
    regions = [samples[:, :n], samples[:, -n:]]
    return any(morse.has_cue(r, rate, tone_hz=conf.tone_hz, timing=cue_timing(conf)) for r in regions)


# -------------------------------------------------------------------------------------------- the job


def label_audio(
    src: Path,
    dst: Path,
    cfg: HeguiConfig,
    label: AIGCLabel,
    conf: AudioLabelConfig | None = None,
) -> AIGCLabel:
    """Add the explicit cue and the signed implicit label to ``src``, writing ``dst``; return the final label."""
    from hegui.labeling.signing import load_signing_key, sign

    src, dst = Path(src), Path(dst)
    conf = conf or config_from(cfg)
    clip = cfg.resolve_path(conf.clip) if conf.clip else None
    kind = audio_kind(src)
    _check_dst_suffix(src, dst, kind)
    _check_complete(src, kind)
    with atomic_output(dst) as tmp:
        staged = tmp.with_name(tmp.name + ".cue" + dst.suffix)
        try:
            if cfg.labeling.explicit:
                apply_explicit_label(src, staged, conf, clip=clip)
            else:
                shutil.copyfile(src, staged)
            final = sign(label, content_digest(staged), load_signing_key(cfg))
            _embed(staged, tmp, kind, final.to_json())
            _check_readback(tmp, final.to_json())
        finally:
            staged.unlink(missing_ok=True)
    return final


def config_from(cfg: HeguiConfig) -> AudioLabelConfig:
    """``labeling.audio`` of ``cfg``."""
    return cfg.labeling.audio
