"""Speed and accuracy of `qa-audio analyze` on sample_calls/, against bare faster-whisper.

    .venv/bin/python bench/analyze.py [--repeat 3] [--calls NAME ...]

Per call, median of --repeat runs with models loaded once and warmed up (as a batch runs):
- RTF of the whole analysis and of bare faster-whisper on the same file with the same decoding
  settings (faster-whisper decoding the file itself, one pass over the mixed-down audio, batched
  exactly as the product decodes); their ratio is the pipeline's overhead;
- with --sequential, also the RTF of faster-whisper's plain one-window-after-another
  ``WhisperModel.transcribe`` (the library's default) for reference;
- CER of all text, and "role CER": the agent's and the customer's text each against their truth,
  so a word given to the wrong party counts as an error;
- DER (pyannote.metrics, collar 0.25 s total) of the speech intervals for mono calls, with the
  truth turns as reference.
Also the one-off costs a CLI run pays: model load and the cold import of pyannote.audio.
Timings are noisy on a shared machine: quote the medians and the ratios, not single runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.metrics import asr_machine, cer, der, load_truths, median  # noqa: E402
from qa_audio.devices import COMPUTE_TYPES  # noqa: E402


def bare_asr_seconds(transcriber, path: str, batched: bool) -> float:
    """faster-whisper alone on the file, with the product's decoding settings (batched or not)."""
    started = time.perf_counter()
    segments, _ = transcriber.faster_whisper(path, batched=batched)
    for _ in segments:  # the generator does the work
        pass
    return time.perf_counter() - started


def text_by_role(turns, role: str) -> str:
    return "".join(t["text"] if isinstance(t, dict) else t.text
                   for t in sorted(turns, key=lambda t: t["start"] if isinstance(t, dict) else t.start)
                   if (t["role"] if isinstance(t, dict) else t.role) == role)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", nargs="*", help="only these call names")
    parser.add_argument("--beam-size", type=int, help="ASR beam width (default: the product's default)")
    parser.add_argument("--batch-size", type=int,
                        help="ASR batch size (default: the product's; 0 = sequential decoding)")
    parser.add_argument("--sequential", action="store_true",
                        help="also time faster-whisper's plain sequential transcribe (the library default)")
    parser.add_argument("--compute-type", default="default", choices=COMPUTE_TYPES,
                        help="as analyze's --compute-type (int8 on the CPU by default: its kernels differ per CPU)")
    parser.add_argument("--save-json", type=Path,
                        help="write each call's analyze JSON here (for bench/rubric.py --from-dir)")
    args = parser.parse_args()

    from qa_audio import privacy

    privacy.keep_data_local()
    privacy.quiet_libraries()
    truths = [t for t in load_truths() if not args.calls or t["name"] in args.calls]
    if not truths:
        print("no sample calls with truth files in sample_calls/")
        return 1

    started = time.perf_counter()
    import pyannote.audio  # noqa: F401  (measured: the CLI pays this once per mono call)

    pyannote_import = time.perf_counter() - started
    from qa_audio import Analyzer

    started = time.perf_counter()
    from dataclasses import replace

    from qa_audio import AnalyzeOptions

    options = AnalyzeOptions(compute_type=args.compute_type)
    if args.beam_size:
        options = replace(options, asr=replace(options.asr, beam_size=args.beam_size))
    if args.batch_size is not None:
        options = replace(options, asr=replace(options.asr, batch_size=args.batch_size))
    analyzer = Analyzer(options)
    transcriber = analyzer.transcriber
    load_asr = time.perf_counter() - started
    started = time.perf_counter()
    _ = analyzer.diarizer
    load_diarizer = time.perf_counter() - started

    print(f"machine: {asr_machine()}; compute type {analyzer.device.compute_type}", flush=True)
    header = (f"{'call':34} {'ch':>2} {'dur s':>6} {'analyze':>8} {'RTF':>6} {'bare ASR':>8} {'RTF':>6} "
              f"{'overhead':>8} {'CER':>6} {'roleCER':>7} {'DER':>6}" + (f" {'seqRTF':>6}" if args.sequential else ""))
    print(header)
    print("-" * len(header))
    # One untimed analysis first: the first call in a process pays one-off costs (lazy imports,
    # memory pools) that a batch pays once and that would otherwise land on the first row.
    analyzer.analyze(truths[0]["audio_path"])
    rows = []
    for truth in truths:
        path = truth["audio_path"]
        analysis_times, bare_times, sequential_times = [], [], []
        analysis = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            analysis = analyzer.analyze(path)
            analysis_times.append(time.perf_counter() - t0)
            bare_times.append(bare_asr_seconds(transcriber, path, options.asr.batch_size > 0))
            if args.sequential:
                sequential_times.append(bare_asr_seconds(transcriber, path, batched=False))
        duration = analysis.audio.duration
        if args.save_json:
            from qa_audio.report.json_output import to_json

            args.save_json.mkdir(parents=True, exist_ok=True)
            (args.save_json / f"{truth['name']}.json").write_text(to_json(analysis), encoding="utf-8")
        a_s, b_s = statistics.median(analysis_times), statistics.median(bare_times)
        turns = analysis.transcript.turns
        all_ref = "".join(t["text"] for t in sorted(truth["turns"], key=lambda t: t["start"]))
        all_hyp = "".join(t.text for t in turns)
        role_errors = []
        for role in ("agent", "customer"):
            ref = text_by_role(truth["turns"], role)
            if ref:
                role_errors.append((cer(ref, text_by_role(turns, role)), len(ref)))
        role_cer = sum(e * n for e, n in role_errors) / max(1, sum(n for _, n in role_errors))
        diar = None
        if truth["channels"] == 1:
            reference = [(t["role"], t["start"], t["end"]) for t in truth["turns"]]
            hypothesis = [(analysis.transcript.roles.get(s.speaker, s.speaker), s.start, s.end)
                          for s in analysis.transcript.speech]
            diar = der(reference, hypothesis)["der"]
        row = {"name": truth["name"], "channels": truth["channels"], "duration": duration,
               "analyze_s": a_s, "rtf": a_s / duration, "bare_s": b_s, "bare_rtf": b_s / duration,
               "overhead": a_s / b_s, "cer": cer(all_ref, all_hyp), "role_cer": role_cer, "der": diar,
               "sequential_rtf": statistics.median(sequential_times) / duration if sequential_times else None}
        rows.append(row)
        print(f"{row['name'][:34]:34} {row['channels']:>2} {duration:6.1f} {a_s:8.2f} {row['rtf']:6.3f} "
              f"{b_s:8.2f} {row['bare_rtf']:6.3f} {row['overhead']:8.2f} {row['cer']:6.3f} "
              f"{role_cer:7.3f} {'' if diar is None else f'{diar:6.3f}':>6}"
              + (f" {row['sequential_rtf']:6.3f}" if args.sequential else ""), flush=True)
    print("-" * len(header))
    mono = [r["der"] for r in rows if r["der"] is not None]
    print(f"{'median':34} {'':>2} {median([r['duration'] for r in rows]):6.1f} "
          f"{median([r['analyze_s'] for r in rows]):8.2f} {median([r['rtf'] for r in rows]):6.3f} "
          f"{median([r['bare_s'] for r in rows]):8.2f} {median([r['bare_rtf'] for r in rows]):6.3f} "
          f"{median([r['overhead'] for r in rows]):8.2f} {median([r['cer'] for r in rows]):6.3f} "
          f"{median([r['role_cer'] for r in rows]):7.3f} {median(mono) if mono else float('nan'):6.3f}"
          + (f" {median([r['sequential_rtf'] for r in rows]):6.3f}" if args.sequential else ""))
    total_audio = sum(r["duration"] for r in rows)
    total_analyze = sum(r["analyze_s"] for r in rows)
    total_bare = sum(r["bare_s"] for r in rows)
    print(f"\nall calls: {total_audio:.0f} s of audio analysed at {total_audio / total_analyze:.1f}x real time "
          f"(bare faster-whisper {total_audio / total_bare:.1f}x); overhead {total_analyze / total_bare:.2f}")
    if args.sequential:
        total_sequential = sum(r["sequential_rtf"] * r["duration"] for r in rows)
        print(f"faster-whisper's sequential transcribe: {total_audio / total_sequential:.1f}x real time; "
              f"analyze takes {total_analyze / total_sequential:.2f} of its time")
    print(f"one-off per process: ASR model load {load_asr:.1f} s, diarizer load {load_diarizer:.1f} s, "
          f"cold import of pyannote.audio {pyannote_import:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
