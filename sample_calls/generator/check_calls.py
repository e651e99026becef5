#!/usr/bin/env python3
"""Listen-by-proxy checks of the generated sample calls against their truth files.

    .venv-tts/bin/python sample_calls/generator/check_calls.py [--markdown] [FOLDER]

FOLDER: the calls to check (default: sample_calls/; e.g. sample_calls/personal_data).

Checks, per call: file format/encoding/rate/channels/duration match the truth; no clipping; the
line-noise floor (before the agent's first word) is 30+ dB below speech; every truth silence span
is only line noise (RMS within 3 dB of the floor); on stereo calls each channel carries only line
noise where its own party is not speaking; each turn's truth edges sit on speech (the first/last
60 ms inside a turn are above the floor, the 40 ms just outside are at the floor unless other
speech is there); during each interruption both parties are audible; every marked personal-data
item and ordinary number lies inside its turn and on speech. Exits non-zero on a failure.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

CALLS = Path(__file__).resolve().parent.parent


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)) if len(x) else -120.0


def check(truth_path: str) -> tuple[dict, list[str]]:
    with open(truth_path, encoding="utf-8") as fh:
        t = json.load(fh)
    f = CALLS / t["file"]
    x, sr = sf.read(f, always_2d=True)
    info = sf.info(f)
    errs: list[str] = []
    enc = (
        {"PCM_16": "pcm16", "ULAW": "ulaw", "ALAW": "alaw"}.get(info.subtype)
        if info.format == "WAV"
        else ("flac" if info.format == "FLAC" else None)
    )
    if enc != t["encoding"]:
        errs.append(f"encoding {enc} != {t['encoding']}")
    if sr != t["sample_rate"] or x.shape[1] != t["channels"]:
        errs.append("rate/channels mismatch")
    if abs(len(x) / sr - t["duration"]) > 0.01:
        errs.append("duration mismatch")

    def seg(a: float, b: float, ch: int) -> np.ndarray:
        return x[max(0, int(a * sr)) : max(0, int(b * sr)), ch]

    def ch_of(turn: dict) -> int:
        return 0 if t["channels"] == 1 or turn["role"] == "agent" else 1

    peak = float(np.abs(x).max())
    if peak > 0.98:
        errs.append(f"clipping (peak {peak:.3f})")
    floor = max(rms_db(seg(0, t["qa"]["answer_delay"] - 0.05, c)) for c in range(x.shape[1]))
    speech = [rms_db(seg(tr["start"], tr["end"], ch_of(tr))) for tr in t["turns"]]
    if min(speech) - floor < 20:
        errs.append(f"a turn is only {min(speech) - floor:.1f} dB above the line noise")

    sil = []
    for s in t["qa"]["silences"]:
        for c in range(x.shape[1]):
            v = rms_db(seg(s["start"] + 0.05, s["end"] - 0.05, c))
            sil.append(v)
            if v > floor + 3:
                errs.append(f"silence {s['start']}-{s['end']} ch{c} not silent ({v:.1f} dB)")

    xtalk = None
    if t["channels"] == 2:
        vals = []
        for c, role in ((0, "agent"), (1, "customer")):
            own = np.zeros(len(x), bool)
            for tr in t["turns"]:
                if tr["role"] == role:
                    own[int(tr["start"] * sr) : int(tr["end"] * sr)] = True
            # compare in 1 s blocks so a short leak cannot hide in a long average
            rest = x[~own, c]
            blocks = [rms_db(rest[i : i + sr]) for i in range(0, len(rest) - sr // 2, sr)]
            vals.append(max(blocks))
        xtalk = max(vals)
        if xtalk > floor + 3:
            errs.append(f"stereo: a channel carries sound outside its party's turns ({xtalk:.1f} dB)")

    edge_bad = 0
    for i, tr in enumerate(t["turns"]):
        c = ch_of(tr)
        others = [o for j, o in enumerate(t["turns"]) if j != i and ch_of(o) == c]
        inside = [rms_db(seg(tr["start"] + k * 0.02, tr["start"] + (k + 1) * 0.02, c)) for k in range(3)] + [
            rms_db(seg(tr["end"] - (k + 1) * 0.02, tr["end"] - k * 0.02, c)) for k in range(3)
        ]
        if max(inside[:3]) < floor + 6 or max(inside[3:]) < floor + 6:
            edge_bad += 1
            errs.append(f"turn {i} edges not on speech")
        for a, b in ((tr["start"] - 0.06, tr["start"] - 0.02), (tr["end"] + 0.02, tr["end"] + 0.06)):
            if any(o["start"] - 0.1 < b and a < o["end"] + 0.1 for o in others):
                continue
            if rms_db(seg(a, b, c)) > floor + 6:
                edge_bad += 1
                errs.append(f"turn {i}: speech just outside its edge ({a:.2f}-{b:.2f})")

    for kind in ("personal_data", "ordinary_numbers"):
        for item in t.get(kind, []):
            tr = t["turns"][item["turn"]]
            if tr["role"] != item["role"] or not tr["start"] - 0.01 <= item["start"] < item["end"] <= tr["end"] + 0.01:
                errs.append(f"{kind} {item['text']}: not inside turn {item['turn']}")
            elif rms_db(seg(item["start"], item["end"], ch_of(tr))) < floor + 10:
                errs.append(f"{kind} {item['text']}: no speech at {item['start']}-{item['end']}")

    for it in t["qa"]["interruptions"]:
        if t["channels"] == 2:
            lv = [rms_db(seg(it["start"], it["end"], c)) for c in (0, 1)]
            if min(lv) < floor + 10:
                errs.append(f"interruption {it} not two-party ({lv})")

    row = {
        "name": t["name"],
        "channels": t["channels"],
        "encoding": t["encoding"],
        "duration": t["duration"],
        "size_kb": os.path.getsize(f) / 1024,
        "peak": peak,
        "floor": floor,
        "speech": float(np.mean(speech)),
        "silence_rms": sil,
        "xtalk": xtalk,
        "edges_bad": edge_bad,
        "truth": t,
    }
    return row, errs


def main() -> int:
    global CALLS
    md = "--markdown" in sys.argv
    folders = [a for a in sys.argv[1:] if a != "--markdown"]
    if folders:
        CALLS = Path(folders[0]).resolve()
    rows, fails = [], 0
    for p in sorted(glob.glob(str(CALLS / "*.truth.json"))):
        row, errs = check(p)
        rows.append(row)
        fails += bool(errs)
        for e in errs:
            print(f"FAIL {row['name']}: {e}")
    print(f"{'call':34s} ch enc     dur    KB   peak  floor speech silence   xtalk")
    for r in rows:
        print(
            f"{r['name']:34s} {r['channels']}  {r['encoding']:5s} {r['duration']:6.1f} {r['size_kb']:6.0f} "
            f"{r['peak']:5.2f} {r['floor']:6.1f} {r['speech']:6.1f} "
            f"{' '.join(f'{v:.1f}' for v in r['silence_rms']) or '-':>8s} "
            f"{'' if r['xtalk'] is None else round(r['xtalk'], 1)!s:>7s}"
        )
    total = sum(os.path.getsize(p) for p in glob.glob(str(CALLS / "**" / "*"), recursive=True) if os.path.isfile(p))
    print(f"{len(rows)} calls, {sum(r['duration'] for r in rows):.0f} s of audio, {CALLS.name}/ = {total / 1e6:.1f} MB")
    if md:
        print()
        print(
            "| call | ch | format | duration (s) | greeting | closing | anything-else / last speaker "
            "| forbidden phrases | silences > 5 s | interruptions | fast speech | real voice |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            t, qa = r["truth"], r["truth"]["qa"]
            fb = (
                "; ".join(
                    f"{f['phrase']} ({f['role']}, {f['severity']}, {f['start']}–{f['end']})"
                    for f in qa["forbidden_phrases"]
                )
                or "–"
            )
            si = (
                "; ".join(
                    f"{s['start']}–{s['end']} " + ("after hold notice" if s["hold_notice"] else "no hold notice")
                    for s in qa["silences"]
                )
                or "–"
            )
            it = "; ".join(f"{i['start']}–{i['end']}" for i in qa["interruptions"]) or "–"
            fs = "; ".join(f"{f['role']} {f['start']}–{f['end']}" for f in qa["fast_speech"]) or "–"
            rv = ", ".join(a["file"] for a in t["attribution"]) or "–"
            kind = "stereo" if t["channels"] == 2 else "mono"
            print(
                f"| {t['name']} | {kind} | {t['encoding']} | {t['duration']} "
                f"| {qa['greeting']['level']} | {qa['closing']['level']} "
                f"| {'yes' if qa['anything_else'] else 'no'} / {qa['last_speaker']} "
                f"| {fb} | {si} | {it} | {fs} | {rv} |"
            )
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
