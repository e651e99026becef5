"""faster-whisper's ``hotwords`` over whole calls: does biasing the decoder to the deployment's words help?

    .venv/bin/python bench/hotwords.py                                   # none vs the two word lists below
    .venv/bin/python bench/hotwords.py --hotwords "" "星河通信 工号"        # your own lists ("" = none)

Groundwork for issue 14 (the deployment vocabulary): each list runs the whole pipeline over every
sample call (models loaded once) and prints, per call and summed: CER of all text, the greeting's and
the closing's level against the truth sheet, how often the company name and 工号 are written right
(the truth says them that often), how often a listed word is written more often than the truth says
it (an insertion), and the real-time factor. Timings are noisy on a shared machine: compare the
medians. ``AsrOptions.hotwords`` is not a command-line option yet; this measures what it would do.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.metrics import cer, load_truths, median  # noqa: E402
from qa_audio.pipeline import AnalyzeOptions, Analyzer  # noqa: E402
from qa_audio.speech.asr import AsrOptions  # noqa: E402

LISTS = ["", "星河通信 工号", "您好 星河通信 工号"]
WATCHED = ("星河", "工号")


def run(hotwords: str, truths: list[dict]) -> list[dict]:
    analyzer = Analyzer(AnalyzeOptions(asr=AsrOptions(hotwords=hotwords or None)))
    rows = []
    for truth in truths:
        started = time.perf_counter()
        analysis = analyzer.analyze(truth["audio_path"])
        seconds = time.perf_counter() - started
        reference = "".join(turn["text"] for turn in truth["turns"])
        heard = "".join(turn.text for turn in analysis.transcript.turns)
        levels = {f.rule: f.details.level for f in analysis.findings if f.rule in ("greeting", "closing")}
        row = {"name": truth["name"], "cer": cer(reference, heard), "rtf": seconds / truth["duration"],
               "greeting": (levels.get("greeting", 0), truth["qa"]["greeting"]["level"]),
               "closing": (levels.get("closing", 0), truth["qa"]["closing"]["level"])}
        listed = [w for w in hotwords.split() if w] or list(WATCHED)
        row["right"] = {w: (min(heard.count(w), reference.count(w)), reference.count(w)) for w in WATCHED}
        row["inserted"] = sum(max(0, heard.count(w) - reference.count(w)) for w in listed)
        rows.append(row)
        print(f"  {row['name']:<32} CER {row['cer']:.3f}  greeting {row['greeting'][0]}/{row['greeting'][1]}  "
              f"closing {row['closing'][0]}/{row['closing'][1]}  "
              + "  ".join(f"{w} {a}/{b}" for w, (a, b) in row["right"].items())
              + f"  inserted {row['inserted']}  RTF {row['rtf']:.3f}", flush=True)
    return rows


def summary(rows: list[dict]) -> str:
    exact = {part: sum(r[part][0] == r[part][1] for r in rows) for part in ("greeting", "closing")}
    right = {w: (sum(r["right"][w][0] for r in rows), sum(r["right"][w][1] for r in rows)) for w in WATCHED}
    return (f"median CER {median([r['cer'] for r in rows]):.4f}; greeting exact {exact['greeting']}/{len(rows)}, "
            f"closing exact {exact['closing']}/{len(rows)}; "
            + ", ".join(f"{w} written right {a}/{b}" for w, (a, b) in right.items())
            + f"; listed words inserted {sum(r['inserted'] for r in rows)}; median RTF "
              f"{median([r['rtf'] for r in rows]):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hotwords", nargs="+", default=LISTS, help='word lists to compare ("" = none)')
    parser.add_argument("--calls", nargs="+", help="only these sample calls (name prefixes)")
    args = parser.parse_args()
    truths = [t for t in load_truths() if not args.calls or any(t["name"].startswith(c) for c in args.calls)]
    results = {}
    for hotwords in args.hotwords:
        print(f"hotwords {hotwords!r}:" if hotwords else "no hotwords:", flush=True)
        results[hotwords] = run(hotwords, truths)
    base = results.get("")
    for hotwords, rows in results.items():
        print(f"{hotwords or '(none)'}: {summary(rows)}")
        if base is not None and hotwords:
            worst = max(rows, key=lambda r: r["cer"] - next(b["cer"] for b in base if b["name"] == r["name"]))
            rise = worst["cer"] - next(b["cer"] for b in base if b["name"] == worst["name"])
            print(f"    largest CER rise against none: {worst['name']} {rise:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
