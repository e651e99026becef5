"""Precision and recall of the rule checks on sample_calls/, beside a raw-transcript baseline.

    .venv/bin/python bench/rules.py            # transcripts from qa_audio.Analyzer
    .venv/bin/python bench/rules.py --oracle   # transcripts built from the truth turns (no ASR)
    .venv/bin/python bench/rules.py --calls call03 call07 --json out/rules_bench.json

What is scored, against ``*.truth.json``:
- forbidden phrases: by phrase (same phrase, times within 0.5 s), agent only (the checks never
  attribute a forbidden phrase to the customer, and the truth's customer hits are not violations);
- silences: by span, start and end each within 0.5 s;
- interruptions: by event (start within 1 s and the spans overlap), with recall also split by
  stereo / mono;
- greeting and closing: exact level per call; anything_else and last_speaker: exact per call.

The baseline is what a plain substring search on the ASR text gives (exact phrases, no pinyin) for
the phrase rules, and ASR segment edges instead of speech intervals for silences and interruptions:
the gap between the two columns is what fuzzy matching and VAD timing buy.

``--oracle`` measures the rules alone: each truth turn becomes a Turn whose words are its characters
spread evenly over the turn, and the speech intervals are the truth turns.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa_audio.checks.rulebook import Rulebook, load_rulebook  # noqa: E402
from qa_audio.checks.script import run_checks  # noqa: E402
from qa_audio.phrase_match import Heard, normalise  # noqa: E402
from qa_audio.schema import SpeechInterval, Transcript, Turn, Word  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CALLS = ROOT / "sample_calls"
TIME_TOL = 0.5
EVENT_START_TOL = 1.0


# ---------------------------------------------------------------------------------------------
# inputs


def load_truths(folder: Path = SAMPLE_CALLS, names: list[str] | None = None) -> dict[str, dict]:
    truths = {}
    for path in sorted(folder.glob("*.truth.json")):
        truth = json.loads(path.read_text(encoding="utf-8"))
        if names and not any(truth["name"].startswith(n) for n in names):
            continue
        truth["audio_path"] = str(folder / truth["file"])
        truths[truth["name"]] = truth
    return truths


def oracle_transcript(truth: dict) -> Transcript:
    """The truth turns as a Transcript: one Word per character, spread evenly over the turn."""
    turns = []
    for t in truth["turns"]:
        chars = [c for c in t["text"] if normalise(c)]
        step = (t["end"] - t["start"]) / max(1, len(chars))
        t0 = t["start"]
        words = [Word(t0 + i * step, t0 + (i + 1) * step, c, 1.0) for i, c in enumerate(chars)]
        turns.append(Turn(speaker=t["role"], role=t["role"], start=t["start"], end=t["end"], text=t["text"],
                          words=words))
    speech = [SpeechInterval(t["role"], t["start"], t["end"]) for t in truth["turns"]]
    return Transcript(duration=truth["duration"], turns=turns, speech=speech,
                      roles={"agent": "agent", "customer": "customer"})


_analyzer: Any = None


def asr_transcript(path: str) -> tuple[Transcript, float]:
    """The pipeline's transcript of one call, and the seconds ``analyze`` took (models loaded once)."""
    global _analyzer
    from qa_audio import Analyzer

    if _analyzer is None:
        _analyzer = Analyzer()
        _analyzer.analyze(path)  # warm-up: model load and first-call costs are not per-call costs
    t0 = time.perf_counter()
    analysis = _analyzer.analyze(path)
    return analysis.transcript, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# the baseline: exact substrings on the ASR text, segment edges for timing


def baseline_findings(tr: Transcript, rb: Rulebook) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    runs: list[Heard] = []
    for turn in sorted(tr.turns, key=lambda t: t.start):
        pieces = [(w.text, w.start, w.end) for w in turn.words] or [(turn.text, turn.start, turn.end)]
        runs.append(Heard.from_pieces(turn.role, pieces))

    def find(phrases, role, t0=float("-inf"), t1=float("inf")):
        hits = []
        for run in runs:
            if run.role != role:
                continue
            for p in phrases:
                for m in re.finditer(re.escape(p.chars), run.text):
                    s, e = run.chars[m.start()].start, run.chars[m.end() - 1].end
                    if t0 <= s < t1:
                        hits.append((p, s, e))
        return hits

    for p, s, e in find(rb.forbidden, "agent"):
        out.append({"rule": "forbidden_phrase", "role": "agent", "start": s, "end": e, "phrase": p.text,
                    "severity": p.group})
    agent = sorted((t for t in tr.turns if t.role == "agent"), key=lambda t: t.start)
    if agent:
        first, last = agent[0], agent[-1]
        parts = {p.group for p, _, _ in find([q for v in rb.greeting.parts.values() for q in v], "agent",
                                              first.start - 0.01, first.end)}
        if re.search(rf"\d{{{rb.deployment.agent_id_digits}}}", normalise(first.text)):
            parts |= set(rb.greeting.agent_id_parts)
        out.append({"rule": "greeting", "role": "agent", "start": first.start, "end": first.end,
                    "level": rb.greeting.grade(parts)})
        parts = {p.group for p, _, _ in find([q for v in rb.closing.parts.values() for q in v], "agent",
                                              last.start - 0.01, last.end + 1)}
        out.append({"rule": "closing", "role": "agent", "start": last.start, "end": last.end,
                    "level": rb.closing.grade(parts)})
        asked = bool(find(rb.anything_else, "agent", first.end))
        out.append({"rule": "anything_else", "role": "agent", "start": 0.0, "end": 0.0, "asked": asked})
    spans = sorted((t.start, t.end, t.role) for t in tr.turns)
    if spans:
        last_t = max(spans, key=lambda s: s[1])
        out.append({"rule": "last_speaker", "role": last_t[2], "start": last_t[0], "end": last_t[1],
                    "last_speaker": last_t[2]})
    union: list[list[float]] = []
    for a, b, _ in spans:
        if union and a <= union[-1][1]:
            union[-1][1] = max(union[-1][1], b)
        else:
            union.append([a, b])
    edges = [(0.0, union[0][0])] if union else []
    edges += [(a[1], b[0]) for a, b in zip(union, union[1:], strict=False)]
    if union:
        edges.append((union[-1][1], tr.duration))
    for a, b in edges:
        if b - a > rb.thresholds.silence_min_s:
            out.append({"rule": "silence", "role": "none", "start": a, "end": b})
    for a in agent:
        for c in tr.turns:
            if c.role == "customer" and c.start < a.start < c.end:
                out.append({"rule": "interruption", "role": "agent", "start": a.start,
                            "end": min(a.end, c.end)})
    return out


# ---------------------------------------------------------------------------------------------
# scoring


def _pair(preds: list[dict], truths: list[dict], same) -> tuple[int, int, int]:
    """Greedy one-to-one pairing by nearest start among the pairs ``same`` accepts."""
    pairs = sorted(((abs(p["start"] - t["start"]), i, j) for i, p in enumerate(preds)
                    for j, t in enumerate(truths) if same(p, t)))
    used_p, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    tp = len(used_p)
    return tp, len(preds) - tp, len(truths) - tp


def _overlaps(p: dict, t: dict, tol: float) -> bool:
    return p["start"] <= t["end"] + tol and p["end"] >= t["start"] - tol


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    return {"tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None}


def score_rules(findings_by_call: dict[str, list[dict]], truths: dict[str, dict]) -> dict[str, Any]:
    """Per-rule precision / recall (and per-call accuracies) of findings (``to_dict()`` form)."""
    counts: dict[str, list[int]] = {k: [0, 0, 0] for k in
                                    ("forbidden_phrase", "silence", "interruption", "interruption_stereo",
                                     "interruption_mono")}
    per_phrase: dict[str, list[int]] = {}
    exact: dict[str, list[int]] = {k: [0, 0] for k in ("greeting", "closing", "anything_else", "last_speaker",
                                                       "silence_hold_notice")}
    misses: list[str] = []
    delay_err: list[float] = []

    def add(key: str, tp: int, fp: int, fn: int, table=counts) -> None:
        row = table.setdefault(key, [0, 0, 0])
        row[0] += tp
        row[1] += fp
        row[2] += fn

    for name, truth in truths.items():
        found = findings_by_call.get(name, [])
        qa = truth["qa"]
        by_rule: dict[str, list[dict]] = {}
        for f in found:
            by_rule.setdefault(f["rule"], []).append(f)

        # forbidden phrases, by phrase
        t_forb = [t for t in qa["forbidden_phrases"] if t["role"] == "agent"]
        p_forb = by_rule.get("forbidden_phrase", [])
        keys = {normalise(x["phrase"]) for x in t_forb + p_forb}
        for key in keys:
            tp, fp, fn = _pair([p for p in p_forb if normalise(p["phrase"]) == key],
                               [t for t in t_forb if normalise(t["phrase"]) == key],
                               lambda p, t: _overlaps(p, t, TIME_TOL))
            add("forbidden_phrase", tp, fp, fn)
            add(key, tp, fp, fn, per_phrase)
            if fp or fn:
                misses.append(f"{name}: forbidden {key} fp={fp} fn={fn}")

        # silences, by span
        sil_t, sil_p = qa["silences"], by_rule.get("silence", [])
        tp, fp, fn = _pair(sil_p, sil_t, lambda p, t: abs(p["start"] - t["start"]) <= TIME_TOL
                           and abs(p["end"] - t["end"]) <= TIME_TOL)
        add("silence", tp, fp, fn)
        if fp or fn:
            misses.append(f"{name}: silence fp={fp} fn={fn} pred={[(p['start'], p['end']) for p in sil_p]} "
                          f"truth={[(t['start'], t['end']) for t in sil_t]}")
        for t in sil_t:
            match = [p for p in sil_p if abs(p["start"] - t["start"]) <= TIME_TOL
                     and abs(p["end"] - t["end"]) <= TIME_TOL and "hold_notice" in p]
            if match:
                exact["silence_hold_notice"][0] += match[0]["hold_notice"] == t["hold_notice"]
                exact["silence_hold_notice"][1] += 1

        # interruptions, by event
        it_t, it_p = qa["interruptions"], by_rule.get("interruption", [])
        tp, fp, fn = _pair(it_p, it_t, lambda p, t: abs(p["start"] - t["start"]) <= EVENT_START_TOL
                           and _overlaps(p, t, 0.0))
        add("interruption", tp, fp, fn)
        add("interruption_stereo" if truth.get("channels") == 2 else "interruption_mono", tp, fp, fn)
        if fp or fn:
            misses.append(f"{name}: interruption fp={fp} fn={fn} "
                          f"pred={[(p['start'], p['end']) for p in it_p]} "
                          f"truth={[(t['start'], t['end']) for t in it_t]}")

        # per-call exact values
        for rule in ("greeting", "closing"):
            got = [f.get("level") for f in by_rule.get(rule, [])]
            ok = bool(got) and got[0] == qa[rule]["level"]
            exact[rule][0] += ok
            exact[rule][1] += 1
            if not ok:
                misses.append(f"{name}: {rule} level {got[:1]} != truth {qa[rule]['level']}")
        got = [f.get("asked") for f in by_rule.get("anything_else", [])]
        exact["anything_else"][0] += bool(got) and got[0] == qa["anything_else"]
        exact["anything_else"][1] += 1
        got = [f.get("last_speaker", f.get("role")) for f in by_rule.get("last_speaker", [])]
        exact["last_speaker"][0] += bool(got) and got[0] == qa["last_speaker"]
        exact["last_speaker"][1] += 1
        delays = [f.get("seconds") for f in by_rule.get("answer_delay", []) if f.get("seconds") is not None]
        if delays:
            delay_err.append(abs(delays[0] - qa["answer_delay"]))

    return {
        "calls": len(truths),
        "rules": {k: _prf(*v) for k, v in counts.items()},
        "per_phrase": {k: _prf(*v) for k, v in sorted(per_phrase.items())},
        "exact": {k: {"correct": c, "calls": n, "accuracy": c / n if n else None}
                  for k, (c, n) in exact.items()},
        "answer_delay_mean_abs_error_s": statistics.fmean(delay_err) if delay_err else None,
        "misses": misses,
    }


# ---------------------------------------------------------------------------------------------
# report


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:5.3f}"


def format_table(rules: dict[str, Any], base: dict[str, Any]) -> str:
    lines = [f"{'rule':24} {'P':>5} {'R':>5} {'tp':>4} {'fp':>4} {'fn':>4}   | baseline {'P':>5} {'R':>5}"]
    for key, row in rules["rules"].items():
        b = base["rules"].get(key, {})
        lines.append(f"{key:24} {_fmt(row['precision'])} {_fmt(row['recall'])} {row['tp']:4} {row['fp']:4} "
                     f"{row['fn']:4}   |          {_fmt(b.get('precision'))} {_fmt(b.get('recall'))}")
    lines.append("")
    lines.append(f"{'per call (exact)':24} {'acc':>5} {'n':>4}   | baseline acc")
    for key, row in rules["exact"].items():
        b = base["exact"].get(key, {})
        lines.append(f"{key:24} {_fmt(row['accuracy'])} {row['calls']:4}   |          "
                     f"{_fmt(b.get('accuracy'))}")
    lines.append("")
    lines.append("forbidden phrases by phrase: " + ", ".join(
        f"{k} P={_fmt(v['precision'])} R={_fmt(v['recall'])}" for k, v in rules["per_phrase"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--oracle", action="store_true", help="build transcripts from the truth turns (no ASR)")
    ap.add_argument("--calls", nargs="*", help="only calls whose name starts with one of these")
    ap.add_argument("--rules", type=Path, default=None, help="rules folder (default: the shipped rules/)")
    ap.add_argument("--samples", type=Path, default=SAMPLE_CALLS)
    ap.add_argument("--json", type=Path, default=None, help="also write the full report here")
    ap.add_argument("--save-transcripts", type=Path, default=None,
                    help="pickle the ASR transcripts here, to re-score rule changes without re-running ASR")
    ap.add_argument("--load-transcripts", type=Path, default=None,
                    help="use transcripts pickled by --save-transcripts instead of running the pipeline")
    args = ap.parse_args(argv)

    truths = load_truths(args.samples, args.calls)
    if not truths:
        print(f"no *.truth.json in {args.samples}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    rb = load_rulebook(args.rules)
    rb.index.tokenizer  # noqa: B018 - pay jieba's one-off load here, not inside the first call's timing
    load_s = time.perf_counter() - t0

    saved: dict[str, Transcript] = {}
    if args.load_transcripts:
        with args.load_transcripts.open("rb") as fh:
            saved = pickle.load(fh)  # noqa: S301 - our own file from --save-transcripts
    ours: dict[str, list[dict]] = {}
    base: dict[str, list[dict]] = {}
    rule_s: list[float] = []
    analyze_s: list[float] = []
    for name, truth in truths.items():
        if args.oracle:
            tr = oracle_transcript(truth)
        elif name in saved:
            tr = saved[name]
        else:
            tr, secs = asr_transcript(truth["audio_path"])
            analyze_s.append(secs)
        t = time.perf_counter()
        ours[name] = [f.to_dict() for f in run_checks(tr, rb)]
        rule_s.append(time.perf_counter() - t)
        base[name] = baseline_findings(tr, rb)
        saved[name] = tr
    if args.save_transcripts and not args.oracle:
        with args.save_transcripts.open("wb") as fh:
            pickle.dump(saved, fh)

    report = score_rules(ours, truths)
    base_report = score_rules(base, truths)
    mode = "oracle (truth turns)" if args.oracle else "ASR (qa_audio.pipeline)"
    if args.load_transcripts and not args.oracle:
        mode += f", transcripts loaded from {args.load_transcripts}"
    print(f"rules bench, {len(truths)} calls, transcripts: {mode}")
    print(format_table(report, base_report))
    print(f"\nrulebook load + jieba init: {load_s:.2f} s (once per process)")
    med, top = statistics.median(rule_s) * 1000, max(rule_s) * 1000
    print(f"rules per call: median {med:.1f} ms, max {top:.1f} ms")
    if analyze_s:
        share = sum(rule_s) / sum(analyze_s)
        print(f"analyze per call: median {statistics.median(analyze_s):.2f} s; rules add {share * 100:.2f} %")
    if report["answer_delay_mean_abs_error_s"] is not None:
        print(f"answer delay mean abs error: {report['answer_delay_mean_abs_error_s']:.2f} s")
    if report["misses"]:
        print("\nmisses:\n  " + "\n  ".join(report["misses"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"mode": mode, "rules": report, "baseline": base_report,
                                         "rules_ms": [round(s * 1000, 2) for s in rule_s],
                                         "analyze_s": analyze_s, "findings": ours},
                                        ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["baseline_findings", "format_table", "load_truths", "oracle_transcript", "score_rules"]
