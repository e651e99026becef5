"""Pre-scores on calls the project was not tuned on: the figures of issue 14, per call and as medians.

    .venv/bin/python bench/prescores.py                              # sample_calls/ and sample_calls/hard/
    .venv/bin/python bench/prescores.py --folders sample_calls/hard --vocabulary on
    .venv/bin/python bench/prescores.py --compute-type float32 --beam-size 1 --vocabulary on

Runs the whole pipeline (models loaded once) over every call of each folder, with the deployment
vocabulary (``rules/vocabulary.yaml``) and without it (``--no-vocabulary``), and prints per call:
greeting and closing level against the truth; forbidden phrases said by the agent (tp/fp/fn, as
``bench/rules.py`` pairs them); how often each listed word is written right, written more often
than said (inserted) and written on a call that never says it (invented); whether the greeting's
工号 digits are the ones said; turn recall by role (a reference turn counts when transcript turns
of its role cover at least half of it); speech coverage by party (the share of the party's
reference speech inside the party's speech intervals); CER by role; DER (0.25 s collar) against the
reference turns; the vocabulary's rewrites; and the real-time factor. Then the medians and totals
against the bar of issue 14. Timings are noisy on a shared machine: compare medians.
"""

from __future__ import annotations

import argparse
import atexit
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.metrics import ROOT, asr_machine, cer, der, load_truths, median  # noqa: E402
from bench.rules import score_rules  # noqa: E402
from qa_audio.devices import COMPUTE_TYPES, choose_device  # noqa: E402
from qa_audio.pipeline import AnalyzeOptions, Analyzer, CallAnalysis  # noqa: E402
from qa_audio.rule_files import DEFAULT_RULES_DIR  # noqa: E402
from qa_audio.speech.asr import AsrOptions  # noqa: E402

FOLDERS = [ROOT / "sample_calls", ROOT / "sample_calls" / "hard"]
ROLES = ("agent", "customer")
HALF = 0.5


def reference_speech(truth: dict, role: str) -> list[tuple[float, float]]:
    """The role's speech: each turn's own speech intervals where the truth has them, else the turn."""
    spans: list[tuple[float, float]] = []
    for turn in truth["turns"]:
        if turn["role"] == role:
            spans += [tuple(s) for s in turn.get("speech") or [[turn["start"], turn["end"]]]]
    return spans


def covered(span: tuple[float, float], by: list[tuple[float, float]]) -> float:
    """Seconds of ``span`` inside the union of ``by``."""
    start, end = span
    total, cursor = 0.0, start
    for a, b in sorted(by):
        a, b = max(a, cursor), min(b, end)
        if b > a:
            total += b - a
            cursor = b
    return total


def listed_words(analysis: CallAnalysis) -> list[str]:
    return list(analysis.settings["vocabulary"]["words"])


def score_call(truth: dict, analysis: CallAnalysis, seconds: float) -> dict:
    transcript = analysis.transcript
    qa = truth["qa"]
    findings = [f.to_dict() for f in analysis.findings]
    rules = score_rules({truth["name"]: findings}, {truth["name"]: truth})
    forbidden = rules["rules"]["forbidden_phrase"]
    levels = {f["rule"]: f.get("level") for f in findings if f["rule"] in ("greeting", "closing")}
    greeting = next((f for f in analysis.findings if f.rule == "greeting"), None)
    said_id = re.search(r"工号\s*(\d+)", next((t["text"] for t in truth["turns"] if t["role"] == "agent"), ""))
    heard_id = getattr(greeting.details, "agent_id_digits", "") if greeting else ""
    reference = {role: "".join(t["text"] for t in truth["turns"] if t["role"] == role) for role in ROLES}
    heard = {role: "".join(t.text for t in transcript.turns if t.role == role) for role in ROLES}
    said_all, heard_all = "".join(reference.values()), "".join(heard.values())
    words = {}
    for word in listed_words(analysis):
        said, written = said_all.count(word), heard_all.count(word)
        words[word] = {"said": said, "right": min(said, written), "inserted": max(0, written - said),
                       "invented": written if said == 0 else 0}
    hyp_speech = {role: [(s.start, s.end) for s in transcript.speech if transcript.roles.get(s.speaker) == role]
                  for role in ROLES}
    recall, coverage = {}, {}
    for role in ROLES:
        ref_turns = [t for t in truth["turns"] if t["role"] == role]
        own = [(t.start, t.end) for t in transcript.turns if t.role == role]
        hits = sum(covered((t["start"], t["end"]), own) >= HALF * (t["end"] - t["start"]) for t in ref_turns)
        recall[role] = hits / len(ref_turns) if ref_turns else None
        ref = reference_speech(truth, role)
        total = sum(b - a for a, b in ref)
        coverage[role] = sum(covered(s, hyp_speech[role]) for s in ref) / total if total else None
    reference_turns = [(role, a, b) for role in ROLES for a, b in reference_speech(truth, role)]
    hypothesis = [(transcript.roles.get(s.speaker, s.speaker), s.start, s.end) for s in transcript.speech]
    return {
        "name": truth["name"], "channels": truth["channels"],
        "greeting": (levels.get("greeting"), qa["greeting"]["level"]),
        "closing": (levels.get("closing"), qa["closing"]["level"]),
        "forbidden": (forbidden["tp"], forbidden["fp"], forbidden["fn"]),
        "words": words,
        "agent_id": (heard_id, said_id.group(1)) if said_id else None,
        "recall": recall, "coverage": coverage,
        "cer": {role: cer(reference[role], heard[role]) if reference[role] else None for role in ROLES},
        "der": der(reference_turns, hypothesis)["der"],
        "rewrites": [f"{c.heard}→{c.written}" for c in analysis.vocabulary_corrections],
        "wordless": [(t.role, t.start, t.end) for t in transcript.turns if t.unintelligible],
        "rtf": seconds / truth["duration"],
    }


def _f(value: float | None, digits: int = 2) -> str:
    return "  - " if value is None else f"{value:.{digits}f}"


def print_row(row: dict) -> None:
    words = row["words"]
    right = sum(w["right"] for w in words.values())
    said = sum(w["said"] for w in words.values())
    inserted = sum(w["inserted"] for w in words.values())
    invented = [k for k, w in words.items() if w["invented"]]
    agent_id = "-" if row["agent_id"] is None else ("ok" if row["agent_id"][0] == row["agent_id"][1]
                                                    else f"{row['agent_id'][0] or '∅'}≠{row['agent_id'][1]}")
    print(f"  {row['name']:<36} g {row['greeting'][0]}/{row['greeting'][1]} c {row['closing'][0]}/{row['closing'][1]} "
          f"forb {row['forbidden'][0]}/{row['forbidden'][1]}/{row['forbidden'][2]} "
          f"words {right}/{said} +{inserted}{' invented ' + ','.join(invented) if invented else ''} 工号 {agent_id} "
          f"recall {_f(row['recall']['agent'])}/{_f(row['recall']['customer'])} "
          f"cover {_f(row['coverage']['agent'])}/{_f(row['coverage']['customer'])} "
          f"CER {_f(row['cer']['agent'], 3)}/{_f(row['cer']['customer'], 3)} DER {row['der']:.3f} "
          f"RTF {row['rtf']:.3f} rewrites {len(row['rewrites'])} wordless {len(row['wordless'])}", flush=True)


def summary(rows: list[dict]) -> str:
    n = len(rows)
    exact = {k: sum(r[k][0] == r[k][1] for r in rows) for k in ("greeting", "closing")}
    tp, fp, fn = (sum(r["forbidden"][i] for r in rows) for i in range(3))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    right = sum(w["right"] for r in rows for w in r["words"].values())
    said = sum(w["said"] for r in rows for w in r["words"].values())
    inserted = sum(w["inserted"] for r in rows for w in r["words"].values())
    invented = sum(w["invented"] for r in rows for w in r["words"].values())
    ids = [r["agent_id"] for r in rows if r["agent_id"]]
    mono = [r["der"] for r in rows if r["channels"] == 1]
    cover = [r["coverage"][role] for r in rows for role in ROLES if r["coverage"][role] is not None]
    return (f"greeting exact {exact['greeting']}/{n}, closing exact {exact['closing']}/{n}; forbidden (agent) "
            f"P {_f(precision)} R {_f(recall)} ({tp}/{fp}/{fn}); listed words right {right}/{said}, inserted "
            f"{inserted}, invented {invented}; 工号 digits right {sum(a == b for a, b in ids)}/{len(ids)}; "
            f"median turn recall agent {_f(median([r['recall']['agent'] for r in rows]))} customer "
            f"{_f(median([r['recall']['customer'] for r in rows]))}; coverage min {_f(min(cover, default=None))} "
            f"median {_f(median(cover))}; median CER agent {_f(median([r['cer']['agent'] for r in rows]), 3)} "
            f"customer {_f(median([r['cer']['customer'] for r in rows]), 3)}; mono DER max "
            f"{_f(max(mono, default=None), 3)} median {_f(median(mono), 3)}; median RTF "
            f"{median([r['rtf'] for r in rows]):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folders", nargs="+", type=lambda p: Path(p).resolve(), default=FOLDERS)
    parser.add_argument("--calls", nargs="+", help="only calls whose name starts with one of these")
    parser.add_argument("--vocabulary", choices=("on", "off", "both"), default="both")
    parser.add_argument("--hotwords", action="store_true",
                        help="also bias the decoder with the words (rules/vocabulary.yaml hotwords: everywhere)")
    parser.add_argument("--compute-type", default="default", choices=COMPUTE_TYPES,
                        help="as analyze's --compute-type (int8 on the CPU by default: its kernels differ per CPU)")
    parser.add_argument("--beam-size", type=int, default=AsrOptions.beam_size, choices=range(1, 11), metavar="1-10",
                        help=f"as analyze's --beam-size (default {AsrOptions.beam_size})")
    args = parser.parse_args()
    truths = [t for folder in args.folders if folder.is_dir() for t in load_truths(folder)
              if not args.calls or any(t["name"].startswith(c) for c in args.calls)]
    runs = {"both": [True, False], "on": [True], "off": [False]}[args.vocabulary]
    rules_dir = None
    if args.hotwords:  # the shipped rules with `hotwords: everywhere`, in a folder that goes away at exit
        rules_dir = Path(tempfile.mkdtemp(prefix="prescores-rules-"))
        atexit.register(shutil.rmtree, rules_dir, True)
        shutil.copytree(DEFAULT_RULES_DIR, rules_dir, dirs_exist_ok=True)
        path = rules_dir / "vocabulary.yaml"
        path.write_text(re.sub(r"(?m)^hotwords: \w+", "hotwords: everywhere", path.read_text(encoding="utf-8")),
                        encoding="utf-8")
    print(f"machine: {asr_machine()}; compute type {choose_device('auto', args.compute_type).compute_type}; "
          f"beam {args.beam_size}", flush=True)
    results: dict[bool, list[dict]] = {}
    for vocabulary in runs:
        print("with the vocabulary:" if vocabulary else "without it (--no-vocabulary):", flush=True)
        analyzer = Analyzer(AnalyzeOptions(vocabulary=vocabulary, rules_dir=rules_dir, compute_type=args.compute_type,
                                           asr=AsrOptions(beam_size=args.beam_size)))
        rows = []
        for truth in truths:
            started = time.perf_counter()
            analysis = analyzer.analyze(truth["audio_path"])
            rows.append(score_call(truth, analysis, time.perf_counter() - started))
            print_row(rows[-1])
        results[vocabulary] = rows
    for vocabulary, rows in results.items():
        for folder in args.folders:
            own = [r for r, t in zip(rows, truths, strict=True) if Path(t["audio_path"]).parent == folder]
            if own:
                print(f"{'with' if vocabulary else 'without'} vocabulary, {folder.relative_to(ROOT)} ({len(own)}): "
                      f"{summary(own)}")
        print(f"{'with' if vocabulary else 'without'} vocabulary, all ({len(rows)}): {summary(rows)}")
    if len(results) == 2:
        rises = [(on["cer"][role] - off["cer"][role], on["name"], role)
                 for on, off in zip(results[True], results[False], strict=True) for role in ROLES
                 if on["cer"][role] is not None]
        worst = max(rises)
        print(f"largest CER rise with the vocabulary: {worst[1]} {worst[2]} {worst[0]:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
