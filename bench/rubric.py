"""Agreement of the pre-filled rubric with the inspector's sheets in ``sample_calls/*.sheet.json``.

    .venv/bin/python bench/rubric.py --from-dir out/rubric-json     # analyze JSONs already made
    .venv/bin/python bench/rubric.py                                # runs the pipeline on each call
    .venv/bin/python bench/rubric.py --from-dir DIR --calls call04 call05 --json out/rubric_bench.json

What is measured, per item x call pair (items the pre-fill leaves to the inspector are not scored):
- exact: the pre-fill's score equals the sheet's;
- within one band: the two scores' bands (the item's bands in rules/rubric.yaml, overlapping bands
  merged, as ``qa-audio agreement`` does) are at most one apart;
- ``auto`` pairs separately from ``suggested`` ones (an item's status can differ per call: 7b is
  ``auto`` where a 服务忌语 or dead air decides it);
- total error: |pre-fill total - sheet total over the same items| per call (the inspector-only items
  are left out of both sides, so the error is the pre-fill's own);
- fatal: every call whose truth has an agent 0-2 band phrase must carry the ``fatal`` flag, and no
  other call may.

The sheets were reasoned from each call's script and the rubric (see each sheet's ``notes``); they
are one reader's judgement, not an independent panel's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa_audio.rubric import band_index, fill_rubric_from_result, load_rubric  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CALLS = ROOT / "sample_calls"


def load_results(names: list[str], from_dir: Path | None) -> dict[str, dict[str, Any]]:
    """The analyze JSON of each call: read from ``from_dir`` or made now by the pipeline."""
    results = {}
    analyzer = None
    for name in names:
        if from_dir is not None:
            path = from_dir / f"{name}.json"
            if not path.exists():
                print(f"skip {name}: no {path}", file=sys.stderr)
                continue
            results[name] = json.loads(path.read_text(encoding="utf-8"))
            continue
        if analyzer is None:
            from qa_audio.pipeline import Analyzer

            analyzer = Analyzer()
        from qa_audio.report.json_output import to_json_dict

        audio = next(p for p in SAMPLE_CALLS.glob(f"{name}.*") if p.suffix in (".wav", ".flac"))
        results[name] = to_json_dict(analyzer.analyze(audio))
    return results


def evaluate(results: dict[str, dict[str, Any]], sheets: dict[str, dict[str, Any]],
             truths: dict[str, dict[str, Any]], rules_dir: Path | None = None) -> dict[str, Any]:
    rubric_sheet = load_rubric(rules_dir)
    pairs: list[dict[str, Any]] = []
    calls = []
    for name, result in sorted(results.items()):
        rubric = fill_rubric_from_result(result, rubric_sheet).to_dict()
        truth_items = sheets[name]["items"]
        scored_ids = []
        for item in rubric["items"]:
            if item["score"] is None or item["id"] not in truth_items:
                continue
            truth = float(truth_items[item["id"]])
            ranges = item["bands"]
            # "auto as configured": counts the auto items a low role confidence demoted, too
            configured = "auto" if item.get("demoted_from") == "auto" else item["status"]
            pairs.append({"call": name, "item": item["id"], "status": item["status"], "configured": configured,
                          "prefill": item["score"],
                          "truth": truth, "exact": float(item["score"]) == truth,
                          "within_one": abs(band_index(item["score"], ranges) - band_index(truth, ranges)) <= 1,
                          "confidence": item["confidence"]})
            scored_ids.append(item["id"])
        truth_total = sum(float(truth_items[i]) for i in scored_ids)
        severe = any(f.get("severity") == "0-2" and f.get("role") == "agent"
                     for f in truths.get(name, {}).get("qa", {}).get("forbidden_phrases", []))
        calls.append({"call": name, "prefill_total": rubric["total"], "truth_total": truth_total,
                      "error": abs(rubric["total"] - truth_total), "truth_full_total": sum(truth_items.values()),
                      "flags": rubric["flags"], "severe_phrase": severe,
                      "fatal_ok": ("fatal" in rubric["flags"]) == severe})

    def rate(rows: list[dict[str, Any]], key: str) -> float | None:
        return round(sum(r[key] for r in rows) / len(rows), 4) if rows else None

    by_status = {}
    for status in ("auto", "suggested"):
        rows = [p for p in pairs if p["status"] == status]
        by_status[status] = {"n": len(rows), "exact": rate(rows, "exact"), "within_one_band": rate(rows, "within_one")}
    rows = [p for p in pairs if p["configured"] == "auto"]
    by_status["auto_incl_demoted"] = {"n": len(rows), "exact": rate(rows, "exact"),
                                      "within_one_band": rate(rows, "within_one")}
    by_item = {}
    for item_id in dict.fromkeys(p["item"] for p in pairs):
        rows = [p for p in pairs if p["item"] == item_id]
        by_item[item_id] = {"n": len(rows), "auto": sum(p["status"] == "auto" for p in rows),
                            "exact": rate(rows, "exact"), "within_one_band": rate(rows, "within_one")}
    errors = [c["error"] for c in calls]
    return {
        "calls": len(calls),
        "by_status": by_status,
        "by_item": by_item,
        "total_error": {"mean": round(statistics.mean(errors), 2) if errors else None,
                        "max": max(errors) if errors else None},
        "fatal": {"calls_with_severe_phrase": sum(c["severe_phrase"] for c in calls),
                  "flagged_fatal": sum("fatal" in c["flags"] for c in calls),
                  "correct": sum(c["fatal_ok"] for c in calls)},
        "per_call": calls,
        "disagreements": [p for p in pairs if not p["exact"]],
    }


def print_report(report: dict[str, Any]) -> None:
    print(f"calls: {report['calls']}")
    for status, row in report["by_status"].items():
        print(f"{status:>17}: n={row['n']:3d}  exact={_pct(row['exact'])}  "
              f"within one band={_pct(row['within_one_band'])}")
    print("\nitem   n  auto  exact   within-one")
    for item_id, row in report["by_item"].items():
        print(f"{item_id:>4} {row['n']:3d} {row['auto']:5d}  {_pct(row['exact'])}  {_pct(row['within_one_band'])}")
    err = report["total_error"]
    print(f"\ntotal error (scored items): mean {err['mean']}  max {err['max']}")
    fatal = report["fatal"]
    print(f"fatal: {fatal['flagged_fatal']} flagged, {fatal['calls_with_severe_phrase']} with a 0-2 phrase, "
          f"{fatal['correct']}/{report['calls']} calls right")
    print("\ncall                              prefill  truth  error  flags")
    for c in report["per_call"]:
        print(f"{c['call']:<33} {c['prefill_total']:7g} {c['truth_total']:6g} {c['error']:6g}  {','.join(c['flags'])}")
    print("\ndisagreements (call item status prefill truth):")
    for p in report["disagreements"]:
        print(f"  {p['call']:<33} {p['item']:>3} {p['status']:<9} {p['prefill']:g} {p['truth']:g}")


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-dir", type=Path, help="folder of <call>.json analyze outputs")
    parser.add_argument("--calls", nargs="*", help="only calls whose names start with these")
    parser.add_argument("--rules", type=Path, help="rules folder (default: the shipped rules/)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    sheets = {}
    for path in sorted(SAMPLE_CALLS.glob("*.sheet.json")):
        sheet = json.loads(path.read_text(encoding="utf-8"))
        if args.calls and not any(sheet["call"].startswith(c) for c in args.calls):
            continue
        sheets[sheet["call"]] = sheet
    truths = {p.name.removesuffix(".truth.json"): json.loads(p.read_text(encoding="utf-8"))
              for p in SAMPLE_CALLS.glob("*.truth.json")}
    results = load_results(list(sheets), args.from_dir)
    report = evaluate(results, sheets, truths, args.rules)
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
