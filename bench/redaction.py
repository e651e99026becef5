"""Recall and precision of the personal-data masking, on calls made for it and on the other samples.

    .venv/bin/python bench/redaction.py                   # sample_calls/personal_data/ and sample_calls/
    .venv/bin/python bench/redaction.py --calls pd03 pd07 --no-audio --json out/redaction.json

Scored against ``*.truth.json`` of ``sample_calls/personal_data/`` (customers and agents reading
numbers as digits, numerals, 幺, in groups with pauses, over two turns, with corrections), whose
``personal_data`` items carry the times of what was read and ``ordinary_numbers`` the 工号,
amounts, dates, counts, plan names and times that must stay:

- recall per type: a truth item is masked when a masked span's part overlaps its time (±0.3 s:
  the truth times are proportional within a synthesis chunk, good to ~0.2 s); ``typed`` is the
  share of those masked under the same type (an unmatched digit makes a 身份证 a long number:
  still masked, but not typed). A missed item is looked up in the unmasked transcript (the call
  analysed again with ``redact=False``): ``heard`` recall leaves out items of which the ASR wrote
  fewer than 3 digits anywhere near its time, i.e. nothing the masking could have found;
- precision per type: a masked span is right when one of its parts overlaps a truth item;
- false masks: ordinary numbers that a masked span overlaps by at least half their length (or
  0.2 s), over all ordinary numbers; on the 14 other sample calls, every span not over a truth
  turn that reads a long number;
- leaks: texts of the JSON that still hold 7 or more digits in a row in any written form;
- audio: the redacted copy (``qa-audio redact-audio``) analysed again: the masked spans found in it
  and long numbers heard in it (both should be 0: the tone replaced the words).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa_audio.pipeline import AnalyzeOptions, Analyzer  # noqa: E402
from qa_audio.redact.audio import write_redacted_audio  # noqa: E402
from qa_audio.redact.rules import ToneSettings  # noqa: E402
from qa_audio.report.json_output import to_json_dict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PERSONAL_CALLS = ROOT / "sample_calls" / "personal_data"
SAMPLE_CALLS = ROOT / "sample_calls"
TOL = 0.3
LONG_NUMBER = re.compile(r"(?:[0-9０-９零〇一二三四五六七八九幺两][\s,，、\-]?){7,}")
NUMBER_TYPES = {"mobile", "id_card", "bank_card", "landline", "number"}


def load(folder: Path, names: list[str] | None) -> list[dict[str, Any]]:
    truths = []
    for path in sorted(folder.glob("*.truth.json")):
        truth = json.loads(path.read_text(encoding="utf-8"))
        if names and not any(truth["name"].startswith(n) for n in names):
            continue
        truth["audio_path"] = str(folder / truth["file"])
        truths.append(truth)
    return truths


def overlaps(a0: float, a1: float, b0: float, b1: float, tol: float = 0.0) -> bool:
    return a0 < b1 + tol and b0 - tol < a1


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "call_id" and not k.endswith("_at") for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def overlap_s(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


DIGIT_RUN = re.compile(r"(?:[0-9０-９零〇一二三四五六七八九幺两][\s,，、\-]?){3,}")


def heard_digits(unmasked, item: dict[str, Any]) -> bool:
    """Whether the ASR wrote 3 or more digits in a row in the words around the item's time (±0.5 s)."""
    return any(DIGIT_RUN.search("".join(w.text for w in t.words
                                        if overlaps(w.start, w.end, item["start"], item["end"], 0.5)))
               for t in unmasked.transcript.turns)


def score_call(truth: dict[str, Any], analysis, analyzer: Analyzer | None, workdir: Path,
               raw: Analyzer) -> dict[str, Any]:
    spans = analysis.personal_data
    items = truth.get("personal_data") or []
    ordinary = truth.get("ordinary_numbers") or []
    result = to_json_dict(analysis)
    row: dict[str, Any] = {"call": truth["name"], "items": [], "spans": [], "ordinary_masked": [],
                           "ordinary": len(ordinary), "redaction_s": analysis.timings.get("redaction")}
    unmasked = None
    for item in items:
        hits = [s for s in spans if any(overlaps(p.start, p.end, item["start"], item["end"], TOL) for p in s.parts)]
        heard = True
        if not hits:
            unmasked = unmasked or raw.analyze(truth["audio_path"])
            heard = heard_digits(unmasked, item) if item["type"] in NUMBER_TYPES else True
        row["items"].append({"type": item["type"], "role": item["role"], "masked": bool(hits), "heard": heard,
                             "typed": any(s.type == item["type"] for s in hits), "text": item["text"],
                             "as": [s.type for s in hits]})
    for span in spans:
        right = any(overlaps(p.start, p.end, i["start"], i["end"], TOL) for p in span.parts for i in items)
        row["spans"].append({"type": span.type, "right": right, "mask": span.mask, "basis": span.basis,
                             "start": span.start})
    for number in ordinary:
        need = min(0.2, (number["end"] - number["start"]) / 2)
        if any(overlap_s(p.start, p.end, number["start"], number["end"]) >= need for s in spans for p in s.parts):
            row["ordinary_masked"].append(f"{number['type']}:{number['text']}")
    row["leaks"] = [m.group() for text in strings(result) for m in [LONG_NUMBER.search(text)] if m]
    if analyzer is not None and spans:
        copy = workdir / Path(truth["audio_path"]).name
        write_redacted_audio(truth["audio_path"], copy, spans,
                             ToneSettings(**analysis.settings["personal_data"]["audio"]))
        again = analyzer.analyze(copy)
        row["audio_spans_left"] = len(again.personal_data)
        row["audio_long_numbers"] = sum(bool(LONG_NUMBER.search(t.text)) for t in again.transcript.turns)
    return row


def score_other(truth: dict[str, Any], analysis) -> dict[str, Any]:
    """A sample call not made for this: a span is false unless a truth turn there reads a long number."""
    reading = [t for t in truth["turns"] if LONG_NUMBER.search(t["text"])]
    spans = []
    for span in analysis.personal_data:
        right = any(overlaps(p.start, p.end, t["start"], t["end"], TOL) for p in span.parts for t in reading)
        spans.append({"type": span.type, "right": right, "mask": span.mask})
    leaks = [m.group() for text in strings(to_json_dict(analysis)) for m in [LONG_NUMBER.search(text)] if m]
    return {"call": truth["name"], "spans": spans, "numbers_read": len(reading), "leaks": leaks}


def summarise(rows: list[dict[str, Any]], others: list[dict[str, Any]]) -> dict[str, Any]:
    by_type: dict[str, dict[str, int]] = {}
    for row in rows:
        for item in row["items"]:
            t = by_type.setdefault(item["type"], {"items": 0, "masked": 0, "typed": 0, "spans": 0, "right": 0})
            t["items"] += 1
            t["masked"] += item["masked"]
            t["typed"] += item["typed"]
        for span in row["spans"]:
            t = by_type.setdefault(span["type"], {"items": 0, "masked": 0, "typed": 0, "spans": 0, "right": 0})
            t["spans"] += 1
            t["right"] += span["right"]
    for t in by_type.values():
        t["recall"] = round(t["masked"] / t["items"], 3) if t["items"] else None
        t["precision"] = round(t["right"] / t["spans"], 3) if t["spans"] else None
    ordinary = sum(r["ordinary"] for r in rows)
    masked = sum(len(r["ordinary_masked"]) for r in rows)
    numbers = [i for r in rows for i in r["items"] if i["type"] in NUMBER_TYPES]
    key = [i for i in numbers if i["type"] in ("mobile", "id_card", "bank_card")]
    key_heard = [i for i in key if i["heard"]]
    other_spans = [s for o in others for s in o["spans"]]
    return {
        "by_type": by_type,
        "numbers_recall": round(sum(i["masked"] for i in numbers) / len(numbers), 3) if numbers else None,
        "mobile_id_bank_recall": round(sum(i["masked"] for i in key) / len(key), 3) if key else None,
        "mobile_id_bank_heard_recall": (round(sum(i["masked"] for i in key_heard) / len(key_heard), 3)
                                        if key_heard else None),
        "mobile_id_bank_items": len(key), "mobile_id_bank_heard": len(key_heard),
        "ordinary_numbers": ordinary, "ordinary_masked": masked,
        "false_mask_rate": round(masked / ordinary, 4) if ordinary else None,
        "leaks": sum(len(r["leaks"]) for r in rows) + sum(len(o["leaks"]) for o in others),
        "audio_spans_left": sum(r.get("audio_spans_left", 0) for r in rows),
        "audio_long_numbers": sum(r.get("audio_long_numbers", 0) for r in rows),
        "other_calls_spans": len(other_spans),
        "other_calls_false_spans": sum(not s["right"] for s in other_spans),
        "median_redaction_ms": round(1000 * statistics.median(r["redaction_s"] for r in rows), 2) if rows else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", nargs="*", help="name prefixes (default: all)")
    parser.add_argument("--no-audio", action="store_true", help="skip analysing the redacted copies")
    parser.add_argument("--no-others", action="store_true", help="skip the 14 sample calls not made for this")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()

    analyzer = Analyzer()
    raw = Analyzer(AnalyzeOptions(redact=False))
    rows, others = [], []
    with tempfile.TemporaryDirectory(prefix="qa-audio-redaction-") as workdir:
        for truth in load(PERSONAL_CALLS, args.calls):
            analysis = analyzer.analyze(truth["audio_path"])
            row = score_call(truth, analysis, None if args.no_audio else analyzer, Path(workdir), raw)
            rows.append(row)
            missed = [f"{i['type']}:{i['text']}{'' if i['heard'] else ' (ASR wrote no digits of it)'}"
                      for i in row["items"] if not i["masked"]]
            wrong = [f"{s['type']}:{s['mask']}" for s in row["spans"] if not s["right"]]
            print(f"{row['call']:<40} items {sum(i['masked'] for i in row['items'])}/{len(row['items'])} masked"
                  f"  spans {sum(s['right'] for s in row['spans'])}/{len(row['spans'])} right"
                  f"  ordinary masked {len(row['ordinary_masked'])}/{row['ordinary']}  leaks {len(row['leaks'])}"
                  + (f"  audio: spans left {row['audio_spans_left']}, long numbers heard "
                     f"{row['audio_long_numbers']}" if "audio_spans_left" in row else "")
                  + (f"\n    missed {missed}" if missed else "") + (f"\n    wrong {wrong}" if wrong else "")
                  + (f"\n    ordinary masked {row['ordinary_masked']}" if row["ordinary_masked"] else ""),
                  flush=True)
        if not args.no_others:
            for truth in load(SAMPLE_CALLS, args.calls):
                other = score_other(truth, analyzer.analyze(truth["audio_path"]))
                others.append(other)
                right = sum(s["right"] for s in other["spans"])
                print(f"{other['call']:<40} spans {len(other['spans'])} (right {right})"
                      f"  long numbers read {other['numbers_read']}  leaks {len(other['leaks'])}", flush=True)
    summary = summarise(rows, others)
    print("\nper type: recall (masked / items), typed, precision (right / spans)")
    for kind, t in sorted(summary["by_type"].items()):
        print(f"  {kind:<10} recall {t['recall']} ({t['masked']}/{t['items']}), typed {t['typed']}/{t['masked']}, "
              f"precision {t['precision']} ({t['right']}/{t['spans']})")
    print(f"numbers recall {summary['numbers_recall']}; mobile+身份证+bank card recall "
          f"{summary['mobile_id_bank_recall']} of {summary['mobile_id_bank_items']}, "
          f"{summary['mobile_id_bank_heard_recall']} of the {summary['mobile_id_bank_heard']} whose digits the ASR "
          "wrote")
    print(f"false masks on ordinary numbers: {summary['ordinary_masked']}/{summary['ordinary_numbers']} "
          f"= {summary['false_mask_rate']}; on the other sample calls: {summary['other_calls_false_spans']} false of "
          f"{summary['other_calls_spans']} spans")
    print(f"leaks (7+ digits in any JSON text): {summary['leaks']}; redacted audio: spans left "
          f"{summary['audio_spans_left']}, long numbers heard {summary['audio_long_numbers']}; "
          f"median redaction time {summary['median_redaction_ms']} ms per call")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"calls": rows, "others": others, "summary": summary}, ensure_ascii=False,
                                        indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
