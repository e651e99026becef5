"""Diarization benchmark on the mono sample calls (telephone band) and their 16 kHz originals.

    .venv/bin/python bench/diarization.py [--calls sample_calls] [--repeats 3]

For every ``sample_calls/*.truth.json`` with ``channels == 1``: the reference is the truth turns
labelled by role; the call audio (``<name>.wav``, resampled to 16 kHz as the pipeline does) is
diarized and scored, then the same for ``sample_calls/originals/<name>.16k.flac`` when present.

DER uses ``pyannote.metrics.DiarizationErrorRate(collar=0.25)``.  pyannote's collar is the *total*
width of the no-score zone centred on each reference boundary, i.e. +/-0.125 s (NIST md-eval's
``-c 0.25`` is per side, +/-0.25 s).  Overlapped speech is scored (``skip_overlap=False``).
Timing: diarization only (models loaded once beforehand), median of ``--repeats`` runs; RTF =
seconds / audio duration.  The load average is printed because other jobs share the 2 cores.

Then each channel of the stereo calls, diarized on its own: a channel holds one party, mostly one
voice, so the number of voices found there against the truth's is the measure (a mono call with one
voice, such as a voicemail, should not come out as two parties).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.metrics import load_truths  # noqa: E402
from qa_audio.speech.diarize import SAMPLE_RATE, DiarizationOptions, Diarizer  # noqa: E402

COLLAR = 0.25


def load_16k(path: Path) -> np.ndarray:
    return load_channels_16k(path).mean(axis=1)


def load_channels_16k(path: Path) -> np.ndarray:
    """(samples, channels) at 16 kHz."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32)
    return x


def channel_voices(diarizer: Diarizer, folder: Path) -> None:
    """Each channel of the folder's stereo calls diarized on its own, against the voices its truth
    turns name (one, but for a hand-over: h12's caller passes the phone to a relative)."""
    right = total = 0
    for truth in load_truths(folder):
        if truth.get("channels") != 2:
            continue
        name = truth["name"]
        x = load_channels_16k(Path(truth["audio_path"]))
        agent_channel = truth.get("agent_channel", 0)
        for channel in range(x.shape[1]):
            role = "agent" if channel == agent_channel else "customer"
            said = len({t.get("voice", role) for t in truth["turns"] if t["role"] == role})
            found = len({s.speaker for s in diarizer(np.ascontiguousarray(x[:, channel]), SAMPLE_RATE)})
            right += found == said
            total += 1
            print(f"{name:28} ch{channel}  voices {found} found, {said} in the truth")
    if total:
        print(f"the number of voices right on {right} of {total} channels")


def score(diarizer: Diarizer, samples: np.ndarray, truth: dict, repeats: int) -> dict:
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        hyp_intervals = diarizer(samples, SAMPLE_RATE)
        times.append(time.perf_counter() - t0)
    duration = samples.size / SAMPLE_RATE
    ref = Annotation()
    for i, turn in enumerate(truth["turns"]):
        ref[Segment(turn["start"], turn["end"]), i] = turn["role"]
    hyp = Annotation()
    for i, s in enumerate(hyp_intervals):
        hyp[Segment(s.start, s.end), i] = s.speaker
    metric = DiarizationErrorRate(collar=COLLAR)
    r = metric(ref, hyp, detailed=True, uem=Timeline([Segment(0, duration)]))
    total = r["total"] or 1.0
    seconds = statistics.median(times)
    return {
        "der": r["diarization error rate"],
        "miss": r["missed detection"] / total,
        "fa": r["false alarm"] / total,
        "conf": r["confusion"] / total,
        "found": len(hyp.labels()),
        "ref": len(ref.labels()),
        "seconds": seconds,
        "duration": duration,
        "rtf": seconds / duration,
    }


def report(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n== {title} ==")
    print(f"{'call':28}   DER%  miss%    FA%  conf%   spk   dur s  diar s    RTF")
    for name, r in rows:
        print(
            f"{name:28} {100 * r['der']:6.1f} {100 * r['miss']:6.1f} {100 * r['fa']:6.1f} "
            f"{100 * r['conf']:6.1f} "
            f"{r['found']:>2}/{r['ref']:<2} {r['duration']:7.1f} {r['seconds']:7.2f} {r['rtf']:6.3f}"
        )
    if rows:
        med = {k: statistics.median(r[k] for _, r in rows) for k in ("der", "miss", "fa", "conf", "rtf")}
        print(
            f"{'median':28} {100 * med['der']:6.1f} {100 * med['miss']:6.1f} {100 * med['fa']:6.1f} "
            f"{100 * med['conf']:6.1f} {'':5} {'':7} {'':7} {med['rtf']:6.3f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=Path, default=Path("sample_calls"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    calls = []
    for truth_path in sorted(args.calls.glob("*.truth.json")):
        truth = json.loads(truth_path.read_text())
        if truth.get("channels") != 1:
            continue
        name = truth_path.name.removesuffix(".truth.json")
        audio = next((p for p in sorted(args.calls.glob(name + ".*")) if p.suffix in {".wav", ".flac"}), None)
        if audio is None:
            print(f"skip {name}: no audio next to {truth_path}", file=sys.stderr)
            continue
        calls.append((name, truth, audio, args.calls / "originals" / f"{name}.16k.flac"))
    if not calls:
        print(f"no mono calls (channels == 1) in {args.calls}", file=sys.stderr)
        return 1

    t0 = time.perf_counter()
    diarizer = Diarizer(DiarizationOptions())
    print(f"models loaded in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.1f}")
    print(json.dumps(diarizer.settings(), ensure_ascii=False))

    phone, orig = [], []
    for name, truth, audio, original in calls:
        phone.append((name, score(diarizer, load_16k(audio), truth, args.repeats)))
        if original.is_file():
            orig.append((name, score(diarizer, load_16k(original), truth, args.repeats)))
    report(f"mono sample calls, telephone band (collar {COLLAR} s total)", phone)
    report(f"16 kHz originals (collar {COLLAR} s total)", orig)
    print("\n== stereo calls' channels, each diarized on its own ==")
    channel_voices(diarizer, args.calls)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
