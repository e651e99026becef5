"""Throughput of `qa-audio batch` against `qa-audio analyze` run on each file in turn.

    .venv/bin/python bench/batch.py [--calls NAME ...] [--layouts 2x1 1x2] [--skip-analyze]

- "analyze per file": one `python -m qa_audio analyze FILE -q -o /dev/null` process per call, one
  after the other (what a shell loop over the archive does: models loaded for every call);
- "batch WxT": `python -m qa_audio.cli.batch batch` over a temp copy of the same calls into a fresh
  temp database, W worker processes × T threads each (models loaded once per worker).
Each is timed end to end (wall clock, process start to exit). Speed = seconds of audio per
wall second; the figure the bar asks for is batch speed / analyze-per-file speed.
Timings are noisy on a shared machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CALLS = ROOT / "sample_calls"
EXTENSIONS = (".wav", ".flac")


def calls(names: list[str] | None) -> list[Path]:
    found = sorted(p for p in SAMPLE_CALLS.iterdir() if p.suffix in EXTENSIONS)
    return [p for p in found if not names or p.stem in names or p.name in names]


def run(command: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", nargs="*", help="only these sample calls (stem or file name)")
    parser.add_argument("--layouts", nargs="*", default=["2x1", "1x2"], help="batch layouts WORKERSxTHREADS")
    parser.add_argument("--skip-analyze", action="store_true", help="time the batch only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    files = calls(args.calls)
    audio = sum(soundfile.info(str(p)).duration for p in files)
    print(f"{len(files)} calls, {audio / 60:.1f} min of audio; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    figures: dict[str, float] = {"audio_seconds": audio}
    if not args.skip_analyze:
        wall = 0.0
        for path in files:
            seconds = run([sys.executable, "-m", "qa_audio", "analyze", str(path), "-q", "-o", os.devnull])
            print(f"  analyze {path.name}: {seconds:.1f} s", flush=True)
            wall += seconds
        figures["analyze_per_file_s"] = wall
        print(f"analyze per file: {wall:.1f} s wall, {audio / wall:.2f}× real time", flush=True)
    for layout in args.layouts:
        workers, threads = (int(x) for x in layout.split("x"))
        with tempfile.TemporaryDirectory(prefix="qa-bench-") as folder:
            archive = Path(folder) / "archive"
            archive.mkdir()
            for path in files:
                shutil.copy(path, archive / path.name)
            wall = run([sys.executable, "-m", "qa_audio.cli.batch", "batch", str(archive), "--db",
                        str(Path(folder) / "qa.db"), "--workers", str(workers), "--threads", str(threads), "-q"])
        figures[f"batch_{layout}_s"] = wall
        line = f"batch {layout} (workers x threads): {wall:.1f} s wall, {audio / wall:.2f}× real time"
        if "analyze_per_file_s" in figures:
            line += f", {figures['analyze_per_file_s'] / wall:.2f}× analyze-per-file"
        print(line + f" (load average {os.getloadavg()[0]:.1f})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
