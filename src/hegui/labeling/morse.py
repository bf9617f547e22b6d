"""The GB 45438 audio rhythm cue "短长短短" (Morse "AI": · — · ·): synthesis and detection.

Samples are float32 arrays shaped ``(channels, n)`` in ``[-1, 1]``; the cue is the same on every channel.
Detection exists so tests and the verifier can check a labelled file without trusting its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: The rhythm as (tone on?, units) pairs: dot, gap, dash, gap, dot, gap, dot. "AI" = ·— ··, and the standard
#: reads the letters as one rhythm, so the gaps between all four elements are one unit (not a letter gap).
PATTERN = "SLSS"

FloatArray = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class CueTiming:
    """Durations of the cue in seconds (defaults match ``labeling.audio``); a dash is three dots."""

    dot: float = 0.1
    dash: float = 0.3
    gap: float = 0.1
    fade: float = 0.008
    """Raised-cosine ramp at each tone edge: a hard edge is heard as a click."""

    @property
    def duration(self) -> float:
        return 3 * self.dot + self.dash + 3 * self.gap


def synthesize_cue(
    sample_rate: int,
    channels: int,
    *,
    tone_hz: float = 880.0,
    amplitude: float = 0.3,
    timing: CueTiming | None = None,
) -> FloatArray:
    """Return the cue as ``(channels, n)`` float32 samples of peak ``amplitude``."""
    t = timing or CueTiming()
    if tone_hz <= 0 or tone_hz >= sample_rate / 2:
        raise ValueError(f"tone_hz {tone_hz} must be between 0 and the Nyquist frequency {sample_rate / 2}")
    parts: list[FloatArray] = []
    for i, element in enumerate(PATTERN):
        if i:
            parts.append(np.zeros(round(t.gap * sample_rate), np.float32))
        n = round((t.dot if element == "S" else t.dash) * sample_rate)
        tone = np.sin(2 * np.pi * tone_hz * np.arange(n) / sample_rate).astype(np.float32)
        ramp = min(round(t.fade * sample_rate), n // 2)
        if ramp:
            edge = (0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)).astype(np.float32)
            tone[:ramp] *= edge
            tone[n - ramp :] *= edge[::-1]
        parts.append(tone * np.float32(amplitude))
    mono = np.concatenate(parts)
    return np.tile(mono, (channels, 1))


def tone_envelope(
    samples: FloatArray | NDArray[np.floating], sample_rate: int, tone_hz: float, *, hop: float = 0.005
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-hop energy at ``tone_hz`` and total energy, on the channel mean.

    The tone energy is a sliding Goertzel-style projection onto the tone over 20 ms windows, so
    content at other frequencies (speech, music) contributes little.
    """
    mono = np.asarray(samples, dtype=np.float64)
    if mono.ndim == 2:
        mono = mono.mean(axis=0)
    hop_n = max(1, round(hop * sample_rate))
    win_n = max(hop_n, round(0.02 * sample_rate))
    phase = 2 * np.pi * tone_hz * np.arange(len(mono)) / sample_rate
    # Projections onto cos/sin, box-summed over a window: |X(f)|^2 per window via cumulative sums.
    c = np.concatenate([[0.0], np.cumsum(mono * np.cos(phase))])
    s = np.concatenate([[0.0], np.cumsum(mono * np.sin(phase))])
    e = np.concatenate([[0.0], np.cumsum(mono * mono)])
    starts = np.arange(0, max(0, len(mono) - win_n) + 1, hop_n)
    ends = starts + win_n
    re = c[ends] - c[starts]
    im = s[ends] - s[starts]
    tone = 2 * (re * re + im * im) / win_n  # energy of a pure tone at tone_hz in the window
    total = e[ends] - e[starts]
    return tone, total


def find_bursts(
    samples: FloatArray | NDArray[np.floating], sample_rate: int, tone_hz: float, *, hop: float = 0.005
) -> list[tuple[float, float]]:
    """Return ``(start_s, duration_s)`` of each stretch where the tone dominates and is audible."""
    tone, total = tone_envelope(samples, sample_rate, tone_hz, hop=hop)
    if not len(tone):
        return []
    win = 0.02
    peak = float(tone.max())
    if peak <= 1e-9:
        return []
    on = (tone > 0.25 * peak) & (tone > 0.6 * np.maximum(total, 1e-12))
    bursts: list[tuple[float, float]] = []
    i = 0
    n = len(on)
    while i < n:
        if on[i]:
            j = i
            while j < n and on[j]:
                j += 1
            # A run of window starts [i, j) covers audio from i*hop to (j-1)*hop + win; the tone itself
            # spans about (j - i) * hop + win - (part of the window that must be inside the tone).
            bursts.append((i * hop, (j - i) * hop + win * 0.5))
            i = j
        else:
            i += 1
    return bursts


def matches_cue(bursts: Sequence[tuple[float, float]], timing: CueTiming | None = None) -> bool:
    """True if four consecutive bursts read short-long-short-short with the cue's spacing."""
    t = timing or CueTiming()
    short_max = (t.dot + t.dash) / 2
    for k in range(len(bursts) - 3):
        four = bursts[k : k + 4]
        kinds = "".join("L" if d > short_max else "S" for _, d in four)
        if kinds != PATTERN:
            continue
        spacing_ok = all(
            0 < four[m + 1][0] - (four[m][0] + four[m][1]) < 3 * t.gap + 0.03 for m in range(3)
        )
        if spacing_ok:
            return True
    return False


def has_cue(
    samples: FloatArray | NDArray[np.floating],
    sample_rate: int,
    *,
    tone_hz: float = 880.0,
    timing: CueTiming | None = None,
) -> bool:
    """True if the samples contain the "短长短短" cue at ``tone_hz``."""
    return matches_cue(find_bursts(samples, sample_rate, tone_hz), timing)
