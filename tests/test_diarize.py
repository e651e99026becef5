"""Diarization with the real packaged models on real voices (from sample_calls/real_speech).

Test audio is built in tmp_path: clips of two (or three) real speakers concatenated into a dialogue
with known turn times, optionally through a telephone channel (8 kHz, 300-3400 Hz band, G.711 mu-law
round trip, back to 16 kHz).  Runs offline (HF_HUB_OFFLINE=1); ~30-60 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

os.environ["HF_HUB_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # the real diarization models on real voices

REAL_SPEECH = REPO / "sample_calls" / "real_speech"
SR = 16000
BOUNDARY_TOLERANCE = 0.5  # seconds: hypothesis turn edges vs reference edges


def _require_real_speech() -> Path:
    if not (REAL_SPEECH / "manifest.tsv").is_file():
        pytest.fail(f"test audio folder missing: {REAL_SPEECH} (sample_calls/real_speech in the repo)")
    return REAL_SPEECH


def _load(name: str) -> np.ndarray:
    x, sr = sf.read(str(_require_real_speech() / name), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        x = soxr.resample(x, sr, SR).astype(np.float32)
    return 0.5 * x / (np.abs(x).max() + 1e-9)


def _trim(x: np.ndarray) -> np.ndarray:
    env = np.convolve(np.abs(x), np.ones(320) / 320, "same")
    idx = np.flatnonzero(env > 0.1 * env.max())
    return x[max(idx[0] - 160, 0) : idx[-1] + 160]


def _pieces(x: np.ndarray, n: int) -> list[np.ndarray]:
    """Cut a clip into n pieces at its quietest points near equal spacing."""
    energy = np.convolve(x**2, np.ones(800) / 800, "same")
    cuts = [0]
    for i in range(1, n):
        target = i * len(x) // n
        lo, hi = target - SR // 2, target + SR // 2
        cuts.append(lo + int(np.argmin(energy[lo:hi])))
    cuts.append(len(x))
    return [_trim(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


Turns = list[tuple[str, float, float]]


def _dialogue(parts: list[tuple[str, np.ndarray]], gaps: list[float]) -> tuple[np.ndarray, Turns]:
    """Place pieces one after the other; a negative gap overlaps the previous turn."""
    turns, t = [], 0.5
    for i, (who, piece) in enumerate(parts):
        start = t if i == 0 else turns[-1][2] + gaps[i - 1]
        turns.append((who, start, start + len(piece) / SR))
    y = np.zeros(int((turns[-1][2] + 0.5) * SR), np.float32)
    for (_, piece), (_, start, _) in zip(parts, turns, strict=True):
        s = int(start * SR)
        y[s : s + len(piece)] += piece
    y += np.random.default_rng(0).normal(0, 1e-3, y.size).astype(np.float32)
    return np.clip(y, -1, 1), turns


def _telephone(x: np.ndarray) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    y = soxr.resample(x, SR, 8000)
    y = sosfilt(butter(4, [300, 3400], btype="band", fs=8000, output="sos"), y)
    y = y + np.random.default_rng(1).normal(0, 10 ** (-50 / 20), y.size)
    pcm = (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()
    pcm = audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2)
    y = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    return soxr.resample(y, 8000, SR).astype(np.float32)


@pytest.fixture(scope="module")
def diarizer():
    from qa_audio.speech.diarize import Diarizer

    return Diarizer()


@pytest.fixture(scope="module")
def two_speaker_call(tmp_path_factory) -> tuple[np.ndarray, Turns]:
    """Woman (SoulX) and man (FireRedTTS2 S1) alternating, one 1-s overlap, telephone channel."""
    a = _pieces(_load("soulx_female_mandarin.wav"), 3)
    b = _pieces(_load("fireredtts2_zh_S1.flac"), 3)
    parts = [("A", a[0]), ("B", b[0]), ("A", a[1]), ("B", b[1]), ("A", a[2]), ("B", b[2])]
    x, turns = _dialogue(parts, gaps=[0.6, 0.5, 0.8, -1.0, 0.7])
    y = _telephone(x)
    sf.write(tmp_path_factory.mktemp("calls") / "two_speakers.phone.wav", y, SR)  # for debugging
    return y, turns


def _der(turns: Turns, hyp) -> float:
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, out = Annotation(), Annotation()
    for i, (who, s, e) in enumerate(turns):
        ref[Segment(s, e), i] = who
    for i, h in enumerate(hyp):
        out[Segment(h.start, h.end), i] = h.speaker
    end = max(e for _, _, e in turns) + 0.5
    return DiarizationErrorRate(collar=0.25)(ref, out, uem=Timeline([Segment(0, end)]))


def test_import_is_lazy() -> None:
    code = "import sys, qa_audio.speech.diarize; assert 'pyannote.audio' not in sys.modules, 'eager pyannote import'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_telemetry_off_and_offline(diarizer) -> None:
    from pyannote.audio.telemetry.metrics import is_metrics_enabled

    assert os.environ["PYANNOTE_METRICS_ENABLED"] == "false"
    assert not is_metrics_enabled()
    settings = diarizer.settings()
    assert "segmentation-3.0" in settings["segmentation_model"]
    assert "CAM++" in settings["embedding_model"]
    assert settings["options"]["max_speakers"] == 3


def test_campplus_loads_strict() -> None:
    import torch

    from qa_audio import models
    from qa_audio.speech.embedding import CAMPPlusEmbedding, load_campplus

    model = load_campplus()
    assert model.dimension == 192
    state = torch.load(models.campplus_checkpoint(), map_location="cpu", weights_only=True)
    state.pop(next(iter(state)))
    with pytest.raises(RuntimeError, match="Missing key"):
        CAMPPlusEmbedding().campplus.load_state_dict(state, strict=True)


def test_campplus_same_speaker_closer() -> None:
    """Two AISHELL-1 S0764 utterances are closer than S0764 vs S0724, at 16 kHz and by telephone."""
    import torch

    from qa_audio.speech.embedding import load_campplus

    model = load_campplus()
    clips = [
        _load("fireredasr_BAC009S0764W0121.wav"),
        _load("s3tokenizer_BAC009S0764W0122.wav"),
        _load("wenet_aishell-BAC009S0724W0121.wav"),
    ]
    for channel in (lambda x: x, _telephone):
        embs = []
        for clip in clips:
            e = model(torch.from_numpy(channel(clip))[None, None])[0].numpy()
            embs.append(e / np.linalg.norm(e))
        same, different = float(embs[0] @ embs[1]), float(embs[0] @ embs[2])
        assert same > different + 0.1, (same, different)
    # pyannote-style weights select frames: all-zero weights leave nothing to embed
    wav = torch.from_numpy(clips[0])[None, None]
    weighted = model(wav, weights=torch.ones(1, 293))
    assert torch.allclose(weighted, model(wav), atol=1e-4)
    assert torch.isnan(model(wav, weights=torch.zeros(1, 293))).all()


def test_campplus_batch_is_the_one_by_one_embeddings() -> None:
    """relabel() embeds pieces of one length in one pass: the same vectors as one at a time."""
    from qa_audio.speech.embedding import fbank, load_campplus

    model = load_campplus()
    clip = _load("fireredasr_BAC009S0764W0121.wav")
    features = [fbank(clip[start:start + SR * 3 // 2]) for start in (0, SR, 2 * SR)]
    batch = model.embed_feature_batch(features)
    assert batch.shape == (3, 192)
    for row, one in zip(batch, features, strict=True):
        assert np.allclose(row, model.embed_features(one), atol=1e-4)
    assert not np.allclose(batch[0], batch[1], atol=1e-2), "different audio, different vectors"
    assert np.isnan(model.embed_feature_batch([features[0][:5]])).all()
    with pytest.raises(ValueError, match="one length"):
        model.embed_feature_batch([features[0], features[0][:-1]])


def test_two_speakers_telephone(diarizer, two_speaker_call) -> None:
    samples, turns = two_speaker_call
    calls: list[tuple[str, float, float]] = []

    def hook(step: str, *, completed: float, total: float) -> None:
        calls.append((step, completed, total))

    hyp = diarizer(samples, 16000, progress=hook)
    assert {stage for stage, _, _ in calls} >= {"segmentation", "embeddings", "clustering"}
    assert all(0 <= done <= total for _, done, total in calls)
    assert calls[-1] == ("clustering", 1, 1)
    # contract: sorted, labels numbered by first appearance
    assert [h.start for h in hyp] == sorted(h.start for h in hyp)
    first_seen = list(dict.fromkeys(h.speaker for h in hyp))
    assert first_seen == [f"SPEAKER_{i:02d}" for i in range(len(first_seen))]
    assert len(first_seen) == 2, hyp
    assert _der(turns, hyp) <= 0.10
    # each reference turn is found: an interval of the mapped speaker with edges within tolerance
    mapping = {"A": "SPEAKER_00", "B": "SPEAKER_01"}
    for who, start, end in turns:
        mine = [h for h in hyp if h.speaker == mapping[who]]
        assert any(abs(h.start - start) <= BOUNDARY_TOLERANCE for h in mine), (who, start, mine)
        assert any(abs(h.end - end) <= BOUNDARY_TOLERANCE for h in mine), (who, end, mine)
    # the 1-s overlap (A's 3rd turn starts under B's 2nd) appears as two simultaneous speakers
    _, ov_start, _ = turns[4]
    ov_end = turns[3][2]
    overlapped = [
        (a, b)
        for a in hyp
        for b in hyp
        if a.speaker < b.speaker
        and min(a.end, b.end) - max(a.start, b.start) > 0.3
        and ov_start - 0.5 < max(a.start, b.start) < ov_end
    ]
    assert overlapped, hyp


def test_three_voices_and_forced_count(diarizer) -> None:
    """A transfer: a third voice takes over; found with the default options. num_speakers=2 obeyed."""
    from qa_audio.speech.diarize import DiarizationOptions, Diarizer

    a = _pieces(_load("soulx_female_mandarin.wav"), 2)
    b = _pieces(_load("fireredtts2_zh_S1.flac"), 2)
    c = _pieces(_load("sparktts_prompt_audio.wav"), 2)
    parts = [("A", a[0]), ("B", b[0]), ("A", a[1]), ("C", c[0]), ("B", b[1]), ("C", c[1])]
    samples, turns = _dialogue(parts, gaps=[0.6, 0.5, 0.8, 0.6, 0.7])
    samples = _telephone(samples)
    hyp = diarizer(samples)
    assert len({h.speaker for h in hyp}) == 3, hyp
    assert _der(turns, hyp) <= 0.15
    forced = Diarizer.__new__(Diarizer)
    forced.__dict__.update(diarizer.__dict__)  # reuse the loaded models
    forced.options = DiarizationOptions(num_speakers=2)
    assert len({h.speaker for h in forced(samples)}) == 2


def test_silence_and_short_input(diarizer) -> None:
    assert diarizer(np.zeros(SR * 5, np.float32)) == []
    assert diarizer(np.zeros(100, np.float32)) == []
    with pytest.raises(ValueError):
        diarizer(np.zeros(SR, np.float32), sample_rate=8000)


def test_a_short_reply_the_segmentation_glued_to_a_question_is_given_back(diarizer) -> None:
    """call06 at 46-56 s: the segmentation keeps the agent's long answer and the customer's 好的，谢谢你
    (0.36 s later) as one interval; the words' pause lets relabel() embed the reply on its own."""
    from qa_audio.audio import load_audio
    from tests.helpers import SAMPLE_CALLS

    truth = json.loads((SAMPLE_CALLS / "call06_customer_unsure.truth.json").read_text(encoding="utf-8"))
    samples = load_audio(SAMPLE_CALLS / truth["file"]).mono()
    diarization = diarizer.diarize(samples)
    reply = next(t for t in truth["turns"] if t["text"] == "好的，谢谢你。")
    before = [s for s in diarization.speech if s.start < reply["end"] and s.end > reply["start"]]
    assert len(before) == 1 and before[0].start < reply["start"] - 5, "the segmentation glued the reply on"
    agent = before[0].speaker
    words = [(t["start"], t["end"]) for t in truth["turns"]]  # one "word" per turn: the pauses are the truth's
    after = diarizer.relabel(samples, diarization, words)
    covering = [s for s in after if s.start <= (reply["start"] + reply["end"]) / 2 <= s.end]
    assert [s.speaker for s in covering] != [agent] and all(s.speaker != agent for s in covering)
    assert any(s.speaker == agent and s.start < reply["start"] - 5 for s in after), "the answer stays the agent's"
    assert diarizer.relabel(samples, diarization, []) == diarization.speech
