"""Speech intervals of one channel with Silero VAD (the model faster-whisper ships as package data).

These intervals are what dead air and talk-over are measured on for stereo calls (mono calls get
theirs from the diarizer), so the settings are tighter than the ASR's own VAD: their edges must be
speech edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa_audio.audio import MODEL_SAMPLE_RATE
from qa_audio.schema import SpeechInterval


@dataclass(frozen=True)
class SpeechOptions:
    """Silero VAD settings for the stereo speech intervals (the diarizer gives mono ones)."""

    # Silero's own default is 0.5. Measured on the 10 stereo calls of sample_calls/, personal_data/
    # and hard/ (bench/prescores.py's coverage: the share of a party's reference speech inside its
    # intervals): at 0.5 the lowest was 0.86 (a far-field customer) and 0.89 (a Kokoro customer's
    # 没有了 and 再见); at 0.25 every party is at 0.91 or more, with at most 0.3 s a channel heard as
    # speech outside the reference (line noise alone stays silence); at 0.15 that grows to 2-7 s.
    threshold: float = 0.25
    min_silence_ms: int = 300
    speech_pad_ms: int = 60
    min_speech_ms: int = 150


def speech_intervals(samples: np.ndarray, speaker: str, options: SpeechOptions) -> list[SpeechInterval]:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(
        samples,
        VadOptions(threshold=options.threshold, min_silence_duration_ms=options.min_silence_ms,
                   speech_pad_ms=options.speech_pad_ms, min_speech_duration_ms=options.min_speech_ms),
    )
    return [SpeechInterval(speaker, round(s["start"] / MODEL_SAMPLE_RATE, 3),
                           round(s["end"] / MODEL_SAMPLE_RATE, 3)) for s in stamps]
