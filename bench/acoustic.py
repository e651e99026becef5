"""Accuracy and cost of the acoustic layer on audio whose answers are known by construction.

    .venv/bin/python bench/acoustic.py            # everything
    .venv/bin/python bench/acoustic.py --quick    # rate + pitch only, one repeat

1. Speech rate: real Mandarin sentences (``sample_calls/real_speech``) time-stretched with
   ``sox tempo X``; truth = characters / (voiced time of the clean original / X), clean and through a
   telephone channel (8 kHz, 300-3400 Hz, mu-law round trip, back to 16 kHz).
2. Pitch: harmonic tones and semitone-linear glides synthesised with numpy, clean and telephone.
3. Cost: ``analyze_acoustics`` wall time per call for ``sample_calls/*.wav`` (when present) and
   for a synthetic 3-minute two-party call; printed with its ratio to the call's duration.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, sosfiltfilt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_audio.acoustic.bands import AcousticBands, load_acoustic_bands  # noqa: E402
from qa_audio.acoustic.measure import analyze_acoustics, count_chars  # noqa: E402
from qa_audio.checks.acoustic import acoustic_findings  # noqa: E402
from qa_audio.schema import SpeechInterval, Transcript, Turn, Word  # noqa: E402

REAL = ROOT / "sample_calls" / "real_speech"
# sox output committed for the tests, so they run where sox is not installed (CI, a bare machine).
TEMPO_FIXTURES = ROOT / "tests" / "data" / "tempo"
SR = 16000
TEMPOS = (0.7, 0.85, 1.0, 1.2, 1.4, 1.6)
# Single-speaker read/prompt clips with exact transcripts (the chat clip has no timings).
RATE_CLIPS = (
    "rapidasr_asr_example_zh.wav",
    "fireredasr_BAC009S0764W0121.wav",
    "s3tokenizer_BAC009S0764W0122.wav",
    "wenet_aishell-BAC009S0724W0121.wav",
    "cosyvoice_zero_shot_prompt.wav",
    "fireredtts2_zh_S2.flac",
)


def telephone(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """A G.711 telephone channel: 8 kHz, 300-3400 Hz band-pass, mu-law round trip, back to ``sr``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # Python 3.11: deprecated, still the reference G.711 codec

    y8 = soxr.resample(y.astype(np.float64), sr, 8000)
    sos = butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
    y8 = sosfiltfilt(sos, y8)
    pcm = (np.clip(y8, -1, 1) * 32767).astype("<i2").tobytes()
    back = audioop.ulaw2lin(audioop.lin2ulaw(pcm, 2), 2)
    y8 = np.frombuffer(back, dtype="<i2").astype(np.float32) / 32768
    return soxr.resample(y8, 8000, sr).astype(np.float32)


def load_clip(name: str) -> np.ndarray:
    y, sr = sf.read(REAL / name, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return soxr.resample(y, sr, SR).astype(np.float32) if sr != SR else y


def tempo_fixture(name: str, factor: float) -> np.ndarray:
    """The committed ``sox tempo`` output of a real clip (see ``make_tempo_fixtures``)."""
    if factor == 1.0:
        return load_clip(name)
    y, _ = sf.read(TEMPO_FIXTURES / f"{Path(name).stem}_tempo{factor}.flac", dtype="float32")
    return y


def make_tempo_fixtures(name: str, factors: tuple[float, ...]) -> None:
    TEMPO_FIXTURES.mkdir(parents=True, exist_ok=True)
    for factor in factors:
        if factor != 1.0:
            sf.write(TEMPO_FIXTURES / f"{Path(name).stem}_tempo{factor}.flac", tempo(load_clip(name), factor), SR)


def tempo(y: np.ndarray, factor: float) -> np.ndarray:
    """``sox in out tempo factor`` (WSOLA: duration / factor, pitch unchanged)."""
    if factor == 1.0:
        return y
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(src, y, SR, subtype="FLOAT")
        subprocess.run(["sox", "-V1", str(src), str(dst), "tempo", str(factor)], check=True)
        out, _ = sf.read(dst, dtype="float32")
    return out


def transcripts() -> dict[str, str]:
    rows = (REAL / "manifest.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return {r.split("\t")[0]: r.split("\t")[-1] for r in rows}


def one_turn(y: np.ndarray, text: str, role: str = "agent") -> Transcript:
    """A transcript with one turn covering the clip, words spread evenly (an oracle ASR)."""
    dur = y.size / SR
    return oracle_transcript([(role, 0.0, dur, text)], dur, spk="A")


def oracle_transcript(
    turns: list[tuple[str, float, float, str]], duration: float, spk: str | None = None
) -> Transcript:
    """Truth turns (role, start, end, text) -> Transcript; each turn's characters spread evenly."""
    out: list[Turn] = []
    speech: list[SpeechInterval] = []
    for role, start, end, text in turns:
        speaker = spk or role
        chars = [c for c in text if count_chars(c)]
        step = (end - start) / max(1, len(chars))
        words = [Word(start + i * step, start + (i + 1) * step, c, 0.9) for i, c in enumerate(chars)]
        out.append(Turn(speaker, role, start, end, text, words))  # type: ignore[arg-type]
        speech.append(SpeechInterval(speaker, start, end))
    roles = {(spk or t.role): t.role for t in out}
    return Transcript(duration, out, speech, roles)  # type: ignore[arg-type]


def voiced_truth(name: str, bands: AcousticBands) -> float:
    """Voiced time of the clean original (16 kHz, studio/read audio), the reference for every tempo."""
    y = load_clip(name)
    text = transcripts()[name]
    a = analyze_acoustics({"A": y}, one_turn(y, text), bands)
    return a.turns[0].voiced_s


def synth_tone(f0_start: float, f0_end: float, dur: float = 2.0, sr: int = SR) -> np.ndarray:
    """Harmonic complex (1/k amplitudes, up to 3.8 kHz) whose f0 moves linearly in semitones."""
    t = np.arange(int(dur * sr)) / sr
    f0 = f0_start * (f0_end / f0_start) ** (t / dur)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros_like(t)
    for k in range(1, 60):
        if f0_start * k > 3800 and f0_end * k > 3800:
            break
        amp = np.where(f0 * k < 3800, 1.0 / k, 0.0)
        y += amp * np.sin(k * phase)
    # Syllable-like 4 Hz amplitude modulation so the gate and nuclei see speech-like energy.
    y *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


def bench_rate(bands: AcousticBands) -> list[dict]:
    texts = transcripts()
    rows = []
    for name in RATE_CLIPS:
        chars = count_chars(texts[name])
        v0 = voiced_truth(name, bands)
        clean = load_clip(name)
        for x in TEMPOS:
            ys = tempo(clean, x)
            truth = chars / (v0 / x) * 60
            for chan, y in (("clean", ys), ("phone", telephone(ys))):
                a = analyze_acoustics({"A": y}, one_turn(y, texts[name]), bands)
                t = a.turns[0]
                syl = t.syllable_rate_spm / bands.syllables_per_char if t.syllable_rate_spm else float("nan")
                rows.append(
                    {
                        "clip": name,
                        "tempo": x,
                        "channel": chan,
                        "truth_cpm": truth,
                        "char_rate_cpm": t.char_rate_cpm,
                        "char_err": (t.char_rate_cpm or float("nan")) / truth - 1,
                        "acoustic_cpm": syl,
                        "acoustic_err": syl / truth - 1,
                    }
                )
    return rows


def bench_pitch(bands: AcousticBands) -> list[dict]:
    rows = []
    cases = [(f, f) for f in (80, 110, 150, 200, 260, 350)] + [(100, 200), (180, 300), (220, 147)]
    for a_hz, b_hz in cases:
        y = synth_tone(a_hz, b_hz)
        true_median = float(np.sqrt(a_hz * b_hz))  # semitone-linear glide: median = geometric mean
        true_range = abs(12 * np.log2(b_hz / a_hz)) * 0.9  # p5..p95 of a uniform spread
        true_std = abs(12 * np.log2(b_hz / a_hz)) / np.sqrt(12)
        for chan, yy in (("clean", y), ("phone", telephone(y))):
            acc = analyze_acoustics({"A": yy}, one_turn(yy, ""), bands)
            t = acc.turns[0]
            med = t.pitch_median_hz or float("nan")
            rows.append(
                {
                    "f0": f"{a_hz}->{b_hz}",
                    "channel": chan,
                    "median_err_st": 12 * np.log2(med / true_median),
                    "range_err_st": (float("nan") if t.pitch_range_st is None else t.pitch_range_st) - true_range,
                    "std_err_st": (float("nan") if t.pitch_std_st is None else t.pitch_std_st) - true_std,
                    "voiced_ratio": t.voiced_frame_ratio,
                }
            )
    return rows


def synthetic_call(minutes: float = 3.0, seed: int = 0) -> tuple[dict[str, np.ndarray], Transcript]:
    """A stereo call built from real clips: agent and customer alternate, telephone channel."""
    rng = np.random.default_rng(seed)
    texts = transcripts()
    names = [n for n in texts if n != "mossttsd_single_reference.wav"]
    total = int(minutes * 60 * SR)
    chans = {"agent": np.zeros(total, np.float32), "customer": np.zeros(total, np.float32)}
    turns: list[tuple[str, float, float, str]] = []
    pos = int(0.5 * SR)
    role = "agent"
    while True:
        name = names[int(rng.integers(len(names)))]
        y = telephone(load_clip(name))
        if pos + y.size > total:
            break
        chans[role][pos : pos + y.size] = y
        turns.append((role, pos / SR, (pos + y.size) / SR, texts[name]))
        pos += y.size + int(rng.uniform(0.3, 1.2) * SR)
        role = "customer" if role == "agent" else "agent"
    return chans, oracle_transcript(turns, total / SR)


def bench_cost(bands: AcousticBands, repeats: int) -> list[dict]:
    rows = []
    calls: list[tuple[str, dict[str, np.ndarray], Transcript]] = []
    chans, tr = synthetic_call()
    calls.append(("synthetic_3min_stereo", chans, tr))
    for wav in sorted([*(ROOT / "sample_calls").glob("*.wav"), *(ROOT / "sample_calls").glob("*.flac")]):
        truth = wav.with_suffix(".truth.json")
        if truth.exists():
            calls.append((wav.name, *sample_call(wav, truth)))
    for name, audio, tr in calls:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            analyze_acoustics(audio, tr, bands)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rows.append({"call": name, "duration_s": tr.duration, "acoustic_s": med, "ratio": med / tr.duration})
    return rows


def sample_call(wav: Path, truth_path: Path) -> tuple[dict[str, np.ndarray], Transcript]:
    """A generated sample call and an oracle transcript from its truth turns."""
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    y, sr = sf.read(wav, dtype="float32", always_2d=True)
    chans = [soxr.resample(y[:, i], sr, SR).astype(np.float32) if sr != SR else y[:, i] for i in range(y.shape[1])]
    turns = [(t["role"], float(t["start"]), float(t["end"]), t.get("text", "")) for t in truth["turns"]]
    tr = oracle_transcript(turns, chans[0].size / SR)
    if len(chans) >= 2:
        agent = int(truth.get("agent_channel") or 0)
        audio = {"agent": chans[agent], "customer": chans[1 - agent]}
    else:
        audio = {"agent": chans[0], "customer": chans[0]}
    return audio, tr


def _fmt_pct(v: float | None) -> str:
    return "   n/a" if v is None or not np.isfinite(v) else f"{v * 100:+6.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    bands = load_acoustic_bands()

    rows = bench_rate(bands)
    print("== speech rate: error vs constructed truth (median |err| over clips; worst in brackets)")
    print(f"{'tempo':>6} {'chan':>6} {'truth':>6} {'ASR-char rate':>22} {'acoustic syllables':>22}")
    for x in TEMPOS:
        for chan in ("clean", "phone"):
            sel = [r for r in rows if r["tempo"] == x and r["channel"] == chan]
            ce = [abs(r["char_err"]) for r in sel]
            ae = [abs(r["acoustic_err"]) for r in sel]
            ae_signed = statistics.median(r["acoustic_err"] for r in sel)
            truth = statistics.median(r["truth_cpm"] for r in sel)
            print(
                f"{x:>6} {chan:>6} {truth:6.0f} {statistics.median(ce) * 100:8.1f}% ({max(ce) * 100:5.1f}%)"
                f"      {statistics.median(ae) * 100:6.1f}% ({max(ae) * 100:5.1f}%) bias {_fmt_pct(ae_signed)}"
            )
    print("\n== pitch on synthetic tones (semitones; median is the bar: within 1 st)")
    for r in bench_pitch(bands):
        print(
            f"{r['f0']:>10} {r['channel']:>6} median {r['median_err_st']:+.2f} st  "
            f"range {r['range_err_st']:+.2f} st  std {r['std_err_st']:+.2f} st  voiced {r['voiced_ratio']:.2f}"
        )
    if args.quick:
        return
    print("\n== cost (median of repeats; budget: ratio <= 0.01, i.e. 10% of ASR at ~10x real time)")
    for r in bench_cost(bands, args.repeats):
        print(
            f"{r['call']:>32} {r['duration_s']:7.1f} s audio  {r['acoustic_s']:6.2f} s acoustic"
            f"  ratio {r['ratio']:.4f}"
        )
    for wav in sorted([*(ROOT / "sample_calls").glob("*.wav"), *(ROOT / "sample_calls").glob("*.flac")]):
        truth_path = wav.with_suffix(".truth.json")
        if not truth_path.exists():
            continue
        audio, tr = sample_call(wav, truth_path)
        found = [f for f in acoustic_findings(analyze_acoustics(audio, tr, bands), tr, bands)]
        fast = json.loads(truth_path.read_text(encoding="utf-8")).get("qa", {}).get("fast_speech", [])
        print(f"\n{wav.name}: truth fast_speech={fast}")
        for f in found:
            d = f.to_dict()
            print(f"  {d['rule']:>18} {d['role']:>8} {d['start']:7.2f}-{d['end']:7.2f} "
                  f"{d['direction'] or '':>9} value {d['value']:.1f} conf {d['confidence']:.2f} {d['text'][:24]}")


if __name__ == "__main__":
    main()
