"""Audio labels: the RIFF/ID3/Vorbis ``AIGC`` tag, the "短长短短" cue, content digests, bad input."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TIT2
from mutagen.oggopus import OggOpus

from hegui.config import HeguiConfig
from hegui.labeling import audio, morse, signing
from hegui.labeling.metadata import AIGCLabel, LabelFormatError, new_label

SR = 44100
LABEL = '{"AIGC":{"Label":"1","ContentProducer":"hegui-test","ProduceID":"id-1"}}'


def tone(seconds: float, hz: float = 330.0, amp: float = 0.2, rate: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([x, 0.5 * x])


def write_wav(path: Path, samples: np.ndarray, rate: int = SR) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.round(samples.T * 32767).astype("<i2").tobytes())


def encode(path: Path, fmt: str, codec: str, samples: np.ndarray, rate: int = SR) -> None:
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=rate)
        s.layout = "stereo"
        for k in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, k : k + 1024]), format="fltp", layout="stereo"
            )
            frame.sample_rate = rate
            frame.pts = k
            frame.time_base = Fraction(1, rate)
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)


def riff_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8, "RIFF size field must match the file"
    out, pos = [], 12
    while pos < len(data):
        cid, size = struct.unpack("<4sI", data[pos : pos + 8])
        out.append((cid, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    assert pos == len(data)
    return out


def add_chunk(path: Path, cid: bytes, payload: bytes) -> None:
    data = bytearray(path.read_bytes())
    data += cid + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    p = tmp_path / "speech.wav"
    write_wav(p, tone(1.5))
    add_chunk(p, b"LIST", b"INFOINAM\x05\0\0\0name\0\0")
    add_chunk(p, b"junk", b"odd")  # odd size: needs the pad byte kept
    return p


def cfg_with(**audio_keys: object) -> HeguiConfig:
    return HeguiConfig.model_validate({"labeling": {"audio": audio_keys}})


def bursts_at(samples: np.ndarray, rate: int, tone_hz: float, start: float, end: float) -> list[tuple[float, float]]:
    a, b = round(start * rate), round(end * rate)
    return morse.find_bursts(samples[:, a:b], rate, tone_hz)


# ----------------------------------------------------------------------------------------- WAV tag


def test_wav_label_is_riff_chunk_and_keeps_other_chunks(wav: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.wav"
    audio.write_label(wav, dst, LABEL)
    before, after = riff_chunks(wav), riff_chunks(dst)
    assert [c for c in after if c[0] != b"AIGC"] == before
    assert [p for c, p in after if c == b"AIGC"] == [LABEL.encode()]
    assert audio.read_label(dst) == LABEL
    assert audio.read_label(wav) is None
    with wave.open(str(dst)) as w:  # ordinary readers skip the chunk
        assert w.getnframes() == round(1.5 * SR)


def test_wav_relabel_replaces_the_chunk_and_pads_odd_lengths(wav: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "1.wav", tmp_path / "2.wav"
    odd = LABEL[:-2] + ',"X":"中"}}'
    if len(odd.encode()) % 2 == 0:
        odd = odd.replace("中", "中x")
    assert len(odd.encode()) % 2 == 1
    audio.write_label(wav, first, LABEL)
    audio.write_label(first, second, odd)
    chunks = riff_chunks(second)
    assert [c for c, _ in chunks].count(b"AIGC") == 1
    assert audio.read_label(second) == odd


def test_wav_digest_ignores_metadata_but_not_samples(wav: Path, tmp_path: Path) -> None:
    labelled = tmp_path / "l.wav"
    audio.write_label(wav, labelled, LABEL)
    assert audio.content_digest(labelled) == audio.content_digest(wav)
    edited = tmp_path / "e.wav"
    data = bytearray(wav.read_bytes())
    pos = data.index(b"data") + 8 + 1000
    data[pos] ^= 0x01
    edited.write_bytes(bytes(data))
    assert audio.content_digest(edited) != audio.content_digest(wav)


# ------------------------------------------------------------------------------------------ the cue


def test_morse_cue_at_start_reads_short_long_short_short(wav: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.wav"
    cfg = cfg_with(position="start", tone_hz=800, unit_ms=80)
    audio.label_audio(wav, dst, cfg, new_label(cfg))
    samples, rate = audio.decode_audio(dst)
    found = bursts_at(samples, rate, 800, 0, 1.0)
    assert [("L" if d > 0.16 else "S") for _, d in found] == list("SLSS")
    durations = [d for _, d in found]
    assert durations == pytest.approx([0.08, 0.24, 0.08, 0.08], abs=0.02)
    gaps = [found[i + 1][0] - (found[i][0] + found[i][1]) for i in range(3)]
    assert gaps == pytest.approx([0.08] * 3, abs=0.025)
    # The content follows the cue untouched: the source's data bytes appear verbatim in the output.
    src_data = dict(riff_chunks(wav))[b"data"]
    assert src_data in dict(riff_chunks(dst))[b"data"]
    assert audio.audio_has_explicit_label(dst, audio.config_from(cfg)) is True
    assert audio.audio_has_explicit_label(wav, audio.config_from(cfg)) is False


@pytest.mark.parametrize("position", ["end", "both"])
def test_cue_positions(wav: Path, tmp_path: Path, position: str) -> None:
    dst = tmp_path / "out.wav"
    cfg = cfg_with(position=position)
    conf = audio.config_from(cfg)
    audio.label_audio(wav, dst, cfg, new_label(cfg))
    samples, rate = audio.decode_audio(dst)
    head = morse.has_cue(samples[:, : rate * 1], rate, tone_hz=conf.tone_hz, timing=audio.cue_timing(conf))
    tail = morse.has_cue(samples[:, -rate * 1 :], rate, tone_hz=conf.tone_hz, timing=audio.cue_timing(conf))
    assert (head, tail) == (position == "both", True)
    cue_len = round(audio.cue_timing(conf).duration * rate) + round(conf.pad_ms * rate / 1000)
    assert samples.shape[1] == round(1.5 * SR) + cue_len * (2 if position == "both" else 1)


def test_wrong_rhythm_is_not_taken_for_the_cue() -> None:
    rate = 16000
    t = morse.CueTiming()
    parts = []
    for element in "SSLS":
        n = round((t.dot if element == "S" else t.dash) * rate)
        parts += [0.3 * np.sin(2 * np.pi * 800 * np.arange(n) / rate), np.zeros(round(t.gap * rate))]
    x = np.concatenate(parts)[None, :]
    assert morse.has_cue(x, rate) is False
    assert morse.has_cue(morse.synthesize_cue(rate, 1), rate) is True
    assert morse.has_cue(morse.synthesize_cue(rate, 1, tone_hz=1200), rate) is False


def test_cue_level_follows_the_content(tmp_path: Path) -> None:
    peaks = []
    for amp in (0.02, 0.3):
        src, dst = tmp_path / f"{amp}.wav", tmp_path / f"{amp}-out.wav"
        write_wav(src, tone(1.0, amp=amp))
        cfg = cfg_with(level_db=0)
        audio.label_audio(src, dst, cfg, new_label(cfg))
        samples, rate = audio.decode_audio(dst)
        peaks.append(float(np.abs(samples[:, : round(0.9 * rate)]).max()))
    assert peaks[0] < peaks[1] / 5
    assert peaks[1] < 10 ** (-3 / 20) + 1e-3


def test_clip_cue_is_resampled_and_prepended(wav: Path, tmp_path: Path) -> None:
    clip = tmp_path / "spoken.wav"
    write_wav(clip, tone(0.5, hz=500, rate=16000)[:1], rate=16000)  # mono at another rate
    dst = tmp_path / "out.wav"
    cfg = cfg_with(cue="clip", clip=str(clip), pad_ms=100)
    audio.label_audio(wav, dst, cfg, new_label(cfg))
    samples, rate = audio.decode_audio(dst)
    assert rate == SR and samples.shape[0] == 2
    assert abs(samples.shape[1] - (round(1.5 * SR) + round(0.5 * SR) + round(0.1 * SR))) < 64
    spectrum = np.abs(np.fft.rfft(samples[0, : round(0.4 * SR)]))
    assert abs(np.argmax(spectrum) * SR / round(0.4 * SR) - 500) < 5


# ----------------------------------------------------------------------------- MP3 / FLAC / Ogg Opus


@pytest.mark.parametrize(
    ("name", "fmt", "codec", "rate"),
    [("a.mp3", "mp3", "libmp3lame", SR), ("a.flac", "flac", "flac", SR), ("a.ogg", "ogg", "libopus", 48000)],
)
def test_coded_formats_carry_label_and_cue(tmp_path: Path, name: str, fmt: str, codec: str, rate: int) -> None:
    src, dst = tmp_path / name, tmp_path / ("out-" + name)
    encode(src, fmt, codec, tone(1.5, rate=rate), rate)
    # A title the labeller must keep.
    if fmt == "mp3":
        tags = ID3()
        tags.add(TIT2(encoding=3, text=["标题"]))
        tags.save(src)
    else:
        f = FLAC(src) if fmt == "flac" else OggOpus(src)
        f["TITLE"] = "标题"
        f.save()
    cfg = cfg_with(position="start")
    final = audio.label_audio(src, dst, cfg, new_label(cfg))
    raw = audio.read_label(dst)
    assert raw == final.to_json()
    # Read back independently with mutagen, by the standard's key.
    if fmt == "mp3":
        id3 = ID3(dst)
        assert id3.getall("TXXX:AIGC")[0].text[0] == raw
        assert id3.getall("TIT2")[0].text[0] == "标题"
    else:
        f = FLAC(dst) if fmt == "flac" else OggOpus(dst)
        assert f["AIGC"] == [raw]
        assert f["TITLE"] == ["标题"]
    with av.open(str(dst)) as c:
        s = c.streams.audio[0]
        assert (s.codec_context.name.removesuffix("float"), s.codec_context.sample_rate, s.codec_context.channels) == (
            {"libmp3lame": "mp3", "libopus": "opus"}.get(codec, codec),
            rate,
            2,
        )
    conf = audio.config_from(cfg)
    assert audio.audio_has_explicit_label(dst, conf) is True
    assert audio.audio_has_explicit_label(src, conf) is False
    # Digest: same after relabelling (metadata only), bound into ReservedCode1.
    relabelled = tmp_path / ("re-" + name)
    audio.write_label(dst, relabelled, LABEL)
    assert audio.read_label(relabelled) == LABEL
    assert audio.content_digest(relabelled) == audio.content_digest(dst)
    assert audio.content_digest(dst) != audio.content_digest(src)
    assert signing.verify_signature(final, audio.content_digest(relabelled), None) == signing.SignatureStatus.HASH_ONLY


def test_mp3_digest_skips_id3v1_and_ape(tmp_path: Path) -> None:
    src = tmp_path / "a.mp3"
    encode(src, "mp3", "libmp3lame", tone(0.5))
    base = audio.content_digest(src)
    tagged = tmp_path / "t.mp3"
    ape = b"APETAGEX" + struct.pack("<II", 2000, 32) + struct.pack("<II", 0, 0x80000000) + b"\0" * 8
    tagged.write_bytes(b"ID3\x04\0\0\0\0\0\x0a" + b"\0" * 10 + src.read_bytes() + ape + ape + b"TAG" + b"\0" * 125)
    assert audio.content_digest(tagged) == base
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "e.mp3").write_bytes(bytes(data))
    assert audio.content_digest(tmp_path / "e.mp3") != base


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (Debian package ffmpeg) is not installed")
def test_ffprobe_sees_the_mp3_and_flac_tags(tmp_path: Path) -> None:
    for name, fmt, codec in (("a.mp3", "mp3", "libmp3lame"), ("a.flac", "flac", "flac")):
        src, dst = tmp_path / name, tmp_path / ("o" + name)
        encode(src, fmt, codec, tone(0.5))
        audio.write_label(src, dst, LABEL)
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format_tags=AIGC", "-of", "json", str(dst)],
            capture_output=True, text=True, check=True,
        ).stdout
        assert json.loads(out)["format"]["tags"]["AIGC"] == LABEL


def test_signed_label_verifies_against_the_output(wav: Path, tmp_path: Path) -> None:
    key_path, pub_path = signing.write_keypair(tmp_path / "k.pem")
    cfg = HeguiConfig.model_validate({"labeling": {"signing_key": str(key_path)}})
    dst = tmp_path / "out.wav"
    final = audio.label_audio(wav, dst, cfg, new_label(cfg))
    read = AIGCLabel.from_json(audio.read_label(dst) or "")
    assert read == final and final.reserved_code1.startswith("s1.")
    pub = signing.load_public_key(pub_path)
    assert signing.verify_signature(read, audio.content_digest(dst), pub) == signing.SignatureStatus.VALID
    assert signing.verify_signature(read, audio.content_digest(wav), pub) == signing.SignatureStatus.CONTENT_CHANGED


def test_explicit_off_keeps_content(wav: Path, tmp_path: Path) -> None:
    cfg = HeguiConfig.model_validate({"labeling": {"explicit": False}})
    dst = tmp_path / "out.wav"
    audio.label_audio(wav, dst, cfg, new_label(cfg))
    assert audio.content_digest(dst) == audio.content_digest(wav)
    assert audio.read_label(dst) is not None


# ------------------------------------------------------------------------------------------ bad input


def test_not_audio_is_one_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "notes.wav"
    src.write_text("hello, not audio\n")
    dst = tmp_path / "out.wav"
    with pytest.raises(LabelFormatError, match=r"notes\.wav: not a WAV, MP3, FLAC or Ogg"):
        audio.write_label(src, dst, LABEL)
    with pytest.raises(LabelFormatError):
        audio.content_digest(src)
    assert list(tmp_path.iterdir()) == [src]


def test_truncated_wav_leaves_no_output(wav: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(wav.read_bytes()[:5000])
    dst = tmp_path / "out.wav"
    cfg = HeguiConfig()
    with pytest.raises(LabelFormatError, match=r"cut\.wav: truncated: RIFF chunk 'data'"):
        audio.label_audio(cut, dst, cfg, new_label(cfg))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.wav", "speech.wav"]


def test_output_suffix_must_match_the_container(wav: Path, tmp_path: Path) -> None:
    with pytest.raises(LabelFormatError, match=r"out\.mp3: output suffix \.mp3 does not match the input .*\(WAV\)"):
        audio.write_label(wav, tmp_path / "out.mp3", LABEL)


def test_clip_cue_needs_a_clip(wav: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"labeling\.audio\.clip"):
        audio.AudioLabelConfig(cue="clip")
    cfg = cfg_with(cue="clip", clip="missing.wav")
    with pytest.raises(LabelFormatError, match=r"labeling\.audio\.clip: .*missing\.wav: no such file"):
        audio.label_audio(wav, tmp_path / "out.wav", cfg, new_label(cfg))
    assert not (tmp_path / "out.wav").exists()


def raw_wav(path: Path, samples: np.ndarray, *, tag: int, sample_bytes: int, fact: bool) -> None:
    """A WAV in a given sample format, written by hand (the stdlib writes 16-bit PCM only)."""
    ch, n = samples.shape
    inter = samples.T.reshape(-1).astype(np.float64)
    if tag == 3:
        data = inter.astype("<f4").tobytes()
    elif sample_bytes == 1:
        data = np.round(inter * 127 + 128).astype(np.uint8).tobytes()
    else:  # 24-bit
        v = np.round(inter * (2**23 - 1)).astype(np.int64) & 0xFFFFFF
        data = np.stack([v & 0xFF, (v >> 8) & 0xFF, v >> 16], axis=1).astype(np.uint8).tobytes()
    block = ch * sample_bytes
    fmt = struct.pack("<HHIIHH", tag, ch, SR, SR * block, block, sample_bytes * 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if fact:
        body += b"fact" + struct.pack("<II", 4, n)
    body += b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize(("tag", "sample_bytes"), [(1, 1), (1, 3), (3, 4)])
def test_cue_in_other_wav_sample_formats(tmp_path: Path, tag: int, sample_bytes: int) -> None:
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    content = tone(0.70002)[:1] if sample_bytes == 1 else tone(0.7)  # mono 8-bit: odd data size
    raw_wav(src, content, tag=tag, sample_bytes=sample_bytes, fact=tag == 3)
    cfg = cfg_with(position="both")
    audio.label_audio(src, dst, cfg, new_label(cfg))
    chunks = dict(riff_chunks(dst))
    frames = len(chunks[b"data"]) // (content.shape[0] * sample_bytes)
    if tag == 3:
        assert struct.unpack("<I", chunks[b"fact"][:4])[0] == frames
    assert dict(riff_chunks(src))[b"data"].rstrip(b"\0") in chunks[b"data"]
    # Decoded by FFmpeg, not by our own reader.
    samples, rate = audio.decode_audio(dst)
    assert samples.shape[1] == frames
    conf = audio.config_from(cfg)
    head, tail = samples[:, :rate], samples[:, -rate:]
    assert morse.has_cue(head, rate, tone_hz=conf.tone_hz, timing=audio.cue_timing(conf))
    assert morse.has_cue(tail, rate, tone_hz=conf.tone_hz, timing=audio.cue_timing(conf))


def test_truncated_mp3_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.mp3"
    encode(src, "mp3", "libmp3lame", tone(1.0))
    audio.label_audio(src, tmp_path / "whole.mp3", HeguiConfig(), new_label(HeguiConfig()))  # complete: fine
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(src.read_bytes()[:-100])
    out = tmp_path / "out"
    out.mkdir()
    cfg = HeguiConfig()
    with pytest.raises(LabelFormatError, match=r"cut\.mp3: truncated: MP3 frame \d+ at byte \d+ needs"):
        audio.label_audio(cut, out / "x.mp3", cfg, new_label(cfg))
    with pytest.raises(LabelFormatError, match="truncated"):
        audio.write_label(cut, out / "y.mp3", LABEL)
    assert list(out.iterdir()) == []
