"""What float32 costs against int8 on the CPU: the whole analysis per call, both in one process.

    .venv/bin/python bench/compute_types.py                      # the 14 calls of sample_calls/
    .venv/bin/python bench/compute_types.py --calls call01_full_script_mono h03_low_male_kokoro_stereo
    .venv/bin/python bench/compute_types.py --beam-size 1         # float32 with a narrower beam

Why it is worth asking: Whisper's int8 kernels differ per CPU (VNNI or not, MKL or oneDNN: see
``bench/metrics.py``), and so do the words Whisper base writes on the hard calls, while float32
gave the same figures on all 27 calls of ``bench/prescores.py`` with oneDNN's AVX-512 and AVX2
kernels and with MKL. Two analyzers are loaded, one per compute type, each warmed up on the first
call; then each call is analysed by both, the order alternating from call to call so that a drift
of the shared machine's speed falls on both alike. Prints per call the seconds of each and their
ratio, then the median ratio. ``--beam-size`` narrows float32's beam (int8 keeps the default) to
ask what a narrower beam buys back; ``bench/prescores.py --compute-type float32 --beam-size N`` says
what it costs in pre-scores. Timings are noisy on a shared machine: quote the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.metrics import ROOT, asr_machine, load_truths  # noqa: E402
from qa_audio.pipeline import AnalyzeOptions, Analyzer  # noqa: E402
from qa_audio.speech.asr import AsrOptions  # noqa: E402

COMPUTE_TYPES = ("int8", "float32")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", nargs="+", help="call names (sample_calls/ and hard/); default: sample_calls/")
    parser.add_argument("--beam-size", type=int, default=AsrOptions.beam_size, choices=range(1, 11), metavar="1-10",
                        help=f"float32's beam (int8 keeps {AsrOptions.beam_size}, the default)")
    args = parser.parse_args()
    truths = load_truths() + (load_truths(ROOT / "sample_calls" / "hard") if args.calls else [])
    if args.calls:
        truths = [t for t in truths if t["name"] in args.calls]
    if not truths:
        print("no such calls with truth files")
        return 1
    print(f"machine: {asr_machine()}; int8 beam {AsrOptions.beam_size}, float32 beam {args.beam_size}", flush=True)
    analyzers = {"int8": Analyzer(AnalyzeOptions(compute_type="int8")),
                 "float32": Analyzer(AnalyzeOptions(compute_type="float32", asr=AsrOptions(beam_size=args.beam_size)))}
    for analyzer in analyzers.values():  # one-off costs of a process's first call, untimed
        analyzer.analyze(truths[0]["audio_path"])
    ratios = []
    for index, truth in enumerate(truths):
        seconds = {}
        for compute_type in COMPUTE_TYPES if index % 2 == 0 else reversed(COMPUTE_TYPES):
            started = time.perf_counter()
            analyzers[compute_type].analyze(truth["audio_path"])
            seconds[compute_type] = time.perf_counter() - started
        ratios.append(seconds["float32"] / seconds["int8"])
        print(f"{truth['name'][:36]:36} int8 {seconds['int8']:6.2f} s  float32 {seconds['float32']:6.2f} s  "
              f"float32/int8 {ratios[-1]:.2f}", flush=True)
    print(f"median float32/int8 {statistics.median(ratios):.2f} over {len(ratios)} calls "
          f"({min(ratios):.2f}-{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
