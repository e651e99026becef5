"""Decoding: every supported format reads; every kind of bad input gets one clear line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile

from qa_audio.audio import MODEL_SAMPLE_RATE, AudioError, load_audio
from tests.helpers import REAL_SPEECH

SPEECH = REAL_SPEECH / "rapidasr_asr_example_zh.wav"


@pytest.fixture(scope="module")
def speech_8k() -> np.ndarray:
    import soxr

    samples, rate = soundfile.read(SPEECH, dtype="float32")
    return soxr.resample(samples, rate, 8000).astype(np.float32)


@pytest.mark.parametrize(
    ("fmt", "subtype", "ext", "rate"),
    [
        ("WAV", "PCM_16", "wav", 8000),
        ("WAV", "PCM_24", "wav", 16000),
        ("WAV", "PCM_32", "wav", 22050),
        ("WAV", "FLOAT", "wav", 44100),
        ("WAV", "ULAW", "wav", 8000),
        ("WAV", "ALAW", "wav", 8000),
        ("FLAC", "PCM_16", "flac", 48000),
        ("MP3", "MPEG_LAYER_III", "mp3", 16000),
        ("OGG", "VORBIS", "ogg", 32000),
    ],
)
def test_supported_formats_decode_to_16k(tmp_path, speech_8k, fmt, subtype, ext, rate):
    import soxr

    samples = soxr.resample(speech_8k, 8000, rate) if rate != 8000 else speech_8k
    stereo = np.stack([samples, samples * 0.5], axis=1)
    path = tmp_path / f"call.{ext}"
    soundfile.write(path, stereo, rate, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.sample_rate == rate
    assert audio.channel_count == 2
    assert audio.format == fmt
    expected = len(samples) / rate
    assert abs(audio.duration - expected) < 0.1
    assert all(abs(len(c) - expected * MODEL_SAMPLE_RATE) < 0.1 * MODEL_SAMPLE_RATE for c in audio.channels)
    assert all(c.dtype == np.float32 for c in audio.channels)
    # the signal survives: channel 1 is half as loud as channel 0
    ratio = np.sqrt(np.mean(audio.channels[1] ** 2) / np.mean(audio.channels[0] ** 2))
    assert 0.4 < ratio < 0.6


def _bad_inputs(tmp_path, speech_8k) -> dict[str, tuple[object, str]]:
    good = tmp_path / "good.wav"
    soundfile.write(good, speech_8k, 8000, subtype="PCM_16")
    cases = {}
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    cases["empty"] = (empty, "empty file")
    text = tmp_path / "notes.wav"
    text.write_text("这不是音频 not audio at all", encoding="utf-8")
    cases["not audio"] = (text, "not a recognised audio file")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases["truncated wav"] = (truncated, "truncated WAV")
    header_only = tmp_path / "header_only.wav"
    header_only.write_bytes(good.read_bytes()[:44])
    cases["header only"] = (header_only, "truncated WAV")
    zero = tmp_path / "zero.wav"
    soundfile.write(zero, np.zeros(0, dtype=np.float32), 8000)
    cases["zero length"] = (zero, "no audio (0 samples)")
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(8000 * 5, dtype=np.float32), 8000)
    cases["silent"] = (silent, "all silent")
    flac = tmp_path / "cut.flac"
    soundfile.write(flac, speech_8k, 8000, format="FLAC")
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    cases["truncated flac"] = (flac, "corrupt")
    mp3 = tmp_path / "cut.mp3"
    soundfile.write(mp3, np.tile(speech_8k, 3), 8000, format="MP3")
    mp3.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 3])
    cases["truncated mp3"] = (mp3, "truncated MP3")
    rate = tmp_path / "ultrasonic.wav"
    soundfile.write(rate, np.tile(speech_8k, 12)[: 96000 * 2], 96000)
    cases["sample rate"] = (rate, "unsupported sample rate 96000 Hz")
    surround = tmp_path / "surround.wav"
    soundfile.write(surround, np.stack([speech_8k] * 4, axis=1), 8000)
    cases["4 channels"] = (surround, "4 channels")
    aiff = tmp_path / "call.aiff"
    soundfile.write(aiff, speech_8k, 8000, format="AIFF")
    cases["unsupported format"] = (aiff, "unsupported audio format AIFF")
    cases["missing"] = (tmp_path / "missing.wav", "no such file")
    return cases


def test_each_bad_input_raises_a_clear_error(tmp_path, speech_8k):
    for name, (path, expected) in _bad_inputs(tmp_path, speech_8k).items():
        with pytest.raises(AudioError) as caught:
            load_audio(path)
        message = str(caught.value)
        assert message.startswith(str(path)), name
        assert expected in message, f"{name}: {message}"
        assert "\n" not in message, name


def test_cli_reports_bad_input_in_one_line_with_nonzero_exit(tmp_path, speech_8k):
    cases = _bad_inputs(tmp_path, speech_8k)
    for name in ("empty", "not audio", "truncated wav", "silent"):
        path, expected = cases[name]
        result = subprocess.run(
            [sys.executable, "-m", "qa_audio", "analyze", str(path)],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 2, (name, result.stderr)
        assert result.stdout == "", name
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (name, result.stderr)
        assert str(path) in lines[0] and expected in lines[0], (name, lines[0])
