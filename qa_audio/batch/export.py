"""Hand-off to the manual QA queue and back: export rows, read inspectors' sheets, agreement.

The row schema is documented in ``docs/batch.md``. Review order: ``fatal`` first, then
``low_confidence``, then ``low_total``, then a random sample (抽检) of the rest. Before the rubric
exists (no ``total``/``flags`` in the stored JSON) the order falls back to the findings: a
forbidden phrase of the 0-2 band is ``fatal``, one of the 3-5 band is ``low_total``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

from qa_audio.batch.store import Store

logger = logging.getLogger(__name__)

REASONS = ("fatal", "low_confidence", "low_total", "random_sample", "routine")
"""in review order; ``routine`` only with ``--all``"""

COLUMNS = ("review_priority", "review_reason", "call_id", "path", "analysed_at", "duration", "channels", "total",
           "max_total", "flags", "min_confidence", "status")

class ReviewSheetError(ValueError):
    """An inspector sheet that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class ExportOptions:
    status: str = "pending_review"
    """pending_review, reviewed or all"""
    since: str | None = None
    until: str | None = None
    flags: tuple[str, ...] = ()
    sample: int = 10
    seed: int | None = None
    low_confidence: float = 0.6
    low_total: float = 0.6
    everything: bool = False


def export_rows(store: Store, options: ExportOptions | None = None) -> list[dict[str, Any]]:
    """The calls to review, in review order, as rows of the documented schema."""
    options = options or ExportOptions()
    since = _day(options.since, "since")
    until = _day(options.until, "until")
    fatal_findings = store.fatal_findings()
    severe_findings = store.severe_findings()
    counts = store.finding_counts()
    items = store.rubric_items()
    queued: dict[str, list[dict[str, Any]]] = {reason: [] for reason in REASONS}
    for call in store.calls():
        flags = json.loads(call["flags"] or "[]")
        day = call["analysed_at"][:10]
        if options.status != "all" and call["status"] != options.status:
            continue
        if (since and day < since) or (until and day > until):
            continue
        if any(flag not in flags for flag in options.flags):
            continue
        row: dict[str, Any] = {
            "call_id": call["call_id"], "path": call["path"], "analysed_at": call["analysed_at"],
            "duration": call["duration"], "channels": call["channels"], "total": call["total"],
            "max_total": call["max_total"], "flags": flags, "min_confidence": call["min_confidence"],
            "status": call["status"], "finding_counts": counts.get(call["call_id"], {}),
            "items": [{"id": i["item_id"], "score": i["score"], "confidence": i["confidence"]}
                      for i in items.get(call["call_id"], [])],
        }
        share = _share(call["total"], call["max_total"])
        has_rubric = call["total"] is not None
        if "fatal" in flags or call["call_id"] in fatal_findings:
            reason = "fatal"
        elif "needs_review" in flags or (call["min_confidence"] is not None
                                         and call["min_confidence"] < options.low_confidence):
            reason = "low_confidence"
        elif (share is not None and share < options.low_total) or (not has_rubric
                                                                    and call["call_id"] in severe_findings):
            reason = "low_total"
        else:
            reason = "routine"
        row["review_reason"] = reason
        row["_share"] = share
        queued[reason].append(row)

    def worst_first(row: dict[str, Any]) -> tuple:
        share = row["_share"]
        confidence = row["min_confidence"]
        return (share is None, share if share is not None else 0.0,
                confidence if confidence is not None else 1.0, -sum(row["finding_counts"].values()), row["call_id"])

    queued["fatal"].sort(key=worst_first)
    queued["low_confidence"].sort(key=lambda r: (r["min_confidence"] if r["min_confidence"] is not None else 1.0,
                                                 *worst_first(r)))
    queued["low_total"].sort(key=worst_first)
    rest = sorted(queued["routine"], key=lambda r: r["call_id"])
    drawn = random.Random(options.seed).sample(rest, min(options.sample, len(rest)))
    for row in drawn:
        row["review_reason"] = "random_sample"
    drawn_ids = {row["call_id"] for row in drawn}
    ordered = queued["fatal"] + queued["low_confidence"] + queued["low_total"] + drawn
    if options.everything:
        ordered += [row for row in rest if row["call_id"] not in drawn_ids]
    for priority, row in enumerate(ordered, start=1):
        row["review_priority"] = priority
        del row["_share"]
    return [{key: row[key] for key in (*COLUMNS, "finding_counts", "items")} for row in ordered]


def write_rows(rows: list[dict[str, Any]], handle: IO[str], fmt: str) -> None:
    """JSON Lines (one row object a line) or CSV (lists joined by ';', one column per rule and item)."""
    if fmt == "jsonl":
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r} (jsonl or csv)")
    rules = sorted({rule for row in rows for rule in row["finding_counts"]})
    item_ids = sorted({item["id"] for row in rows for item in row["items"]}, key=_item_order)
    writer = csv.writer(handle)
    writer.writerow([*COLUMNS, *(f"findings.{r}" for r in rules), *(f"item.{i}" for i in item_ids)])
    for row in rows:
        scores = {item["id"]: item["score"] for item in row["items"]}
        writer.writerow([";".join(row[c]) if c == "flags" else _cell(row[c]) for c in COLUMNS]
                        + [row["finding_counts"].get(r, 0) for r in rules]
                        + [_cell(scores.get(i)) for i in item_ids])


def read_reviews(path: Path | str) -> list[dict[str, Any]]:
    """Rows {call_id, item_id, inspector_score, inspector, reviewed_at} from a JSONL or CSV sheet."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewSheetError(f"{path}: cannot read: {exc}") from exc
    raw: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        raw = [(number, dict(row)) for number, row in enumerate(reader, start=2)]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReviewSheetError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            if not isinstance(value, dict):
                raise ReviewSheetError(f"{path}:{number}: expected an object per line")
            raw.append((number, value))
    rows = []
    for number, row in raw:
        missing = [k for k in ("call_id", "item_id", "inspector_score") if row.get(k) in (None, "")]
        if missing:
            raise ReviewSheetError(f"{path}:{number}: missing {', '.join(missing)}")
        try:
            score = float(row["inspector_score"])
        except (TypeError, ValueError) as exc:
            raise ReviewSheetError(f"{path}:{number}: inspector_score {row['inspector_score']!r} is not a number") \
                from exc
        if not math.isfinite(score):
            raise ReviewSheetError(f"{path}:{number}: inspector_score must be finite")
        rows.append({"call_id": str(row["call_id"]).strip(), "item_id": str(row["item_id"]).strip(),
                     "inspector_score": score, "inspector": _optional(row.get("inspector")),
                     "reviewed_at": _optional(row.get("reviewed_at"))})
    return rows


def agreement_report(store: Store) -> dict[str, Any]:
    """Per rubric item over reviewed calls: n, exact, within one band, Cohen's kappa of the bands."""
    from sklearn.metrics import cohen_kappa_score

    by_item: dict[str, list[tuple[float, float, list[tuple[float, float]]]]] = {}
    calls: set[str] = set()
    for row in store.review_pairs():
        if row["prefill"] is None:
            continue
        calls.add(row["call_id"])
        bands = _bands(json.loads(row["data"]))
        by_item.setdefault(row["item_id"], []).append((float(row["prefill"]), float(row["inspector"]), bands))
    items = []
    for item_id in sorted(by_item, key=_item_order):
        pairs = by_item[item_id]
        prefill = [_band_index(p, bands) for p, _, bands in pairs]
        inspector = [_band_index(i, bands) for _, i, bands in pairs]
        exact = sum(p == i for p, i, _ in pairs) / len(pairs)
        within = sum(abs(a - b) <= 1 for a, b in zip(prefill, inspector, strict=True)) / len(pairs)
        kappa: float | None = None
        if len(set(prefill) | set(inspector)) > 1:
            value = float(cohen_kappa_score(prefill, inspector))
            kappa = round(value, 4) if math.isfinite(value) else None
        items.append({"item_id": item_id, "n": len(pairs), "exact": round(exact, 4),
                      "within_one_band": round(within, 4), "kappa": kappa})
    return {"calls": len(calls), "items": items}


def _bands(item: dict[str, Any]) -> list[tuple[float, float]]:
    own = item.get("bands")
    if isinstance(own, list) and own:
        parsed = []
        for band in own:
            if isinstance(band, str) and "-" in band:
                low, high = band.split("-", 1)
                parsed.append((float(low), float(high)))
            elif isinstance(band, list | tuple) and len(band) == 2:
                parsed.append((float(band[0]), float(band[1])))
            elif isinstance(band, int | float | str):
                parsed.append((float(band), float(band)))
        if parsed:
            return sorted(parsed)
    return []  # a result from before the rubric: each score is its own band


def _band_index(score: float, bands: list[tuple[float, float]]) -> int:
    """The band holding ``score``; without bands, the score itself (rounded) is the band."""
    if not bands:
        return round(score)
    for index, (low, high) in enumerate(bands):
        if low <= score <= high:
            return index
    # between bands (a half point) or outside: the nearest one
    return min(range(len(bands)), key=lambda i: min(abs(score - bands[i][0]), abs(score - bands[i][1])))


def _item_order(item_id: str) -> tuple:
    digits = "".join(ch for ch in item_id if ch.isdigit())
    return (int(digits) if digits else 1_000, item_id)


def _share(total: float | None, max_total: float | None) -> float | None:
    if total is None or not max_total:
        return None
    return total / max_total


def _day(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise ValueError(f"--{name} {value!r}: expected a date YYYY-MM-DD") from exc


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _optional(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
