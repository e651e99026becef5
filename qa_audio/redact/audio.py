"""The recording with every masked span replaced by a tone, in the input's own format.

The spans' times are the ASR's word times, which can be ~0.1 s off at either edge, so the tone
reaches ``pad_s`` beyond them (``rules/personal_data.yaml``); it replaces every channel, because a
stereo line carries some of each party on the other's channel. Used for the HTML report's player
and ``qa-audio redact-audio IN OUT``. The file is read and written at its own sample rate with
libsndfile, so a G.711 WAV stays G.711 and an 8 kHz file stays 8 kHz.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile

from qa_audio.audio import AudioError
from qa_audio.redact.rules import ToneSettings
from qa_audio.schema import PersonalDataSpan

FADE_S = 0.005
"""A 5 ms ramp at each end of a tone, so it starts and stops without a click."""
BROWSER_WAV_SUBTYPES = {"PCM_16", "PCM_U8", "PCM_24", "PCM_32", "FLOAT"}
"""WAV encodings every browser plays (Chromium plays no G.711 or ADPCM WAV)."""


def tone_intervals(spans: Iterable[PersonalDataSpan], pad_s: float, duration: float) -> list[tuple[float, float]]:
    """The merged (start, end) seconds to cover: every part of every span, padded."""
    raw = sorted((max(0.0, part.start - pad_s), min(duration, part.end + pad_s))
                 for span in spans for part in span.parts)
    merged: list[tuple[float, float]] = []
    for start, end in raw:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def cover_with_tone(samples: np.ndarray, rate: int, intervals: Iterable[tuple[float, float]],
                    tone: ToneSettings) -> np.ndarray:
    """``samples`` (frames × channels, float) with each interval replaced by the tone on every channel."""
    out = np.array(samples, dtype=np.float32, copy=True)
    frequency = min(tone.tone_hz, rate / 4)  # below Nyquist whatever the file's rate
    amplitude = 10 ** (tone.tone_dbfs / 20)
    fade = max(1, int(FADE_S * rate))
    for start, end in intervals:
        a, b = int(start * rate), min(len(out), int(np.ceil(end * rate)))
        if b <= a:
            continue
        t = np.arange(b - a) / rate
        wave = amplitude * np.sin(2 * np.pi * frequency * t)
        ramp = np.ones(b - a)
        n = min(fade, (b - a) // 2)
        if n:
            ramp[:n] = np.linspace(0, 1, n)
            ramp[-n:] = np.linspace(1, 0, n)
        out[a:b, :] = (wave * ramp).astype(np.float32)[:, None]
    return out


def redacted_audio_bytes(path: Path | str, spans: list[PersonalDataSpan], tone: ToneSettings | None,
                         for_browser: bool = False) -> tuple[bytes, str]:
    """(bytes, libsndfile format) of the recording with the spans toned over (``tone`` may be None
    only without spans), in its own format; ``for_browser`` writes a WAV that no browser plays
    (G.711, ADPCM) as 16-bit PCM instead."""
    path = Path(path)
    try:
        info = soundfile.info(str(path))
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(path, f"cannot read the recording to redact it: {exc}") from exc
    subtype = info.subtype
    if for_browser and info.format == "WAV" and subtype not in BROWSER_WAV_SUBTYPES:
        subtype = "PCM_16"
    intervals = tone_intervals(spans, tone.pad_s, len(samples) / rate) if tone is not None else []
    covered = cover_with_tone(samples, rate, intervals, tone) if tone is not None and intervals else samples
    buffer = io.BytesIO()
    soundfile.write(buffer, covered, rate, format=info.format, subtype=subtype)
    return buffer.getvalue(), info.format


def write_redacted_audio(source: Path | str, target: Path | str, spans: list[PersonalDataSpan],
                         tone: ToneSettings) -> None:
    """Write the redacted copy of ``source`` to ``target`` whole or not at all (a temporary file in
    the target's folder, renamed into place), so a kill never leaves half a recording."""
    data, _ = redacted_audio_bytes(source, spans, tone)
    target = Path(target)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
