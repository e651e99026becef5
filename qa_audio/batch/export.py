"""Hand-off to the manual QA queue and back: export rows, read inspectors' sheets, agreement.

The row schema is documented in ``docs/batch.md``. Review order: ``fatal`` first, then
``low_confidence``, then ``low_total``, then a random sample (抽检) of the rest. Before the rubric
exists (no ``total``/``flags`` in the stored JSON) the order falls back to the findings: a
forbidden phrase of the 0-2 band is ``fatal``, one of the 3-5 band is ``low_total``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import IO, Any

from qa_audio.batch.queue import REASONS, QueueFilter, queue_page
from qa_audio.batch.reviews import agreement_figures, item_order
from qa_audio.batch.store import Store, item_bands

logger = logging.getLogger(__name__)

__all__ = ["COLUMNS", "REASONS", "ExportOptions", "agreement_report", "export_rows", "read_reviews", "write_rows"]

COLUMNS = ("review_priority", "review_reason", "call_id", "path", "analysed_at", "duration", "channels", "total",
           "max_total", "flags", "min_confidence", "status", "agent_id", "team", "started_at", "metadata_source",
           "agent_id_mismatch")

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""what a CSV text cell may not start with (OWASP's CSV injection list, plus the fullwidth ＝＋－＠)"""
CALL_COLUMNS = ("path", "analysed_at", "duration", "channels", "total", "max_total", "flags", "min_confidence",
                "status")
"""the columns of ``calls`` an export row carries"""
REVIEW_FIELDS = ("call_id", "item_id", "inspector_score", "inspector", "reviewed_at")
"""the columns (CSV) or keys (JSONL) of an inspector sheet; the first three are required"""


class ReviewSheetError(ValueError):
    """An inspector sheet that cannot be read; the message names the file and line."""


ExportOptions = QueueFilter
"""what ``qa-audio export`` selects and how it draws its sample: the review queue's own filter"""


def export_rows(store: Store, options: ExportOptions | None = None) -> list[dict[str, Any]]:
    """The calls to review, in review order (``qa_audio/batch/queue.py``), as rows of the documented schema."""
    options = options or ExportOptions()
    queue = replace(options, since=parse_day(options.since, "since"), until=parse_day(options.until, "until"))
    ordered = queue_page(store.conn, queue).rows
    # the columns a row shows, not the calls' whole result JSON (29 KB a call)
    calls = {call["call_id"]: call for call in store.conn.execute(
        f"SELECT call_id, {', '.join(CALL_COLUMNS)} FROM calls WHERE superseded_by IS NULL")}
    counts = store.finding_counts()
    items = store.rubric_items()
    metadata = store.metadata()
    rows = []
    for priority, call_id, reason in ordered:
        call = calls[call_id]
        meta = metadata.get(call_id)
        rows.append({
            "review_priority": priority, "review_reason": reason,
            "call_id": call_id, "path": call["path"], "analysed_at": call["analysed_at"],
            "duration": call["duration"], "channels": call["channels"], "total": call["total"],
            "max_total": call["max_total"], "flags": json.loads(call["flags"] or "[]"),
            "min_confidence": call["min_confidence"], "status": call["status"],
            "agent_id": meta["agent_id"] if meta else None, "team": meta["team"] if meta else None,
            "started_at": meta["started_at"] if meta else None,
            "metadata_source": meta["source"] if meta else "none",
            "agent_id_mismatch": bool(meta["agent_id_mismatch"]) if meta else False,
            "finding_counts": counts.get(call_id, {}),
            "items": [{"id": i["item_id"], "score": i["score"], "confidence": i["confidence"]}
                      for i in items.get(call_id, [])],
        })
    return rows


def write_rows(rows: list[dict[str, Any]], handle: IO[str], fmt: str) -> None:
    """JSON Lines (one row object a line) or CSV (lists joined by ';', one column per rule and item)."""
    if fmt == "jsonl":
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r} (jsonl or csv)")
    rules = sorted({rule for row in rows for rule in row["finding_counts"]})
    item_ids = sorted({item["id"] for row in rows for item in row["items"]}, key=item_order)
    writer = csv.writer(handle)
    header = [*COLUMNS, *(f"findings.{r}" for r in rules), *(f"item.{i}" for i in item_ids)]
    writer.writerow([spreadsheet_cell(name) for name in header])
    for row in rows:
        scores = {item["id"]: item["score"] for item in row["items"]}
        cells = [";".join(str(f) for f in row[c]) if c == "flags" else row[c] for c in COLUMNS]
        writer.writerow([spreadsheet_cell(cell) for cell in cells]
                        + [spreadsheet_cell(row["finding_counts"].get(r, 0)) for r in rules]
                        + [spreadsheet_cell(scores.get(i)) for i in item_ids])


def read_reviews(path: Path | str, keep_bad: bool = False) -> list[dict[str, Any]]:
    """Rows {call_id, item_id, inspector_score, inspector, reviewed_at, source, line} from a JSONL or
    CSV sheet (by extension); what the row means is checked by :meth:`Store.add_reviews`.

    A row that cannot be read (not JSON, a missing or unknown field, a score that is not a number)
    raises :class:`ReviewSheetError` naming ``file:line``, or with ``keep_bad`` comes back with its
    ``problem`` (for the store to refuse or skip). A file that cannot be read at all, or a CSV header
    without the required columns or with unknown ones, always raises.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewSheetError(f"{path}: cannot read: {exc}") from exc
    raw: list[tuple[int, dict[str, Any] | str]] = []
    if path.suffix.lower() == ".csv":
        raw = _csv_rows(path, text)
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raw.append((number, f"not JSON ({exc.msg})"))
                continue
            if not isinstance(value, dict):
                raw.append((number, "expected an object per line"))
                continue
            unknown = [key for key in value if key not in REVIEW_FIELDS]
            if unknown:
                raw.append((number, f"unknown field(s) {', '.join(repr(k[:30]) for k in unknown[:5])} (expected "
                                    f"{', '.join(REVIEW_FIELDS)})"))
                continue
            raw.append((number, value))
    rows = []
    for number, row in raw:
        parsed = _review_row(row) if isinstance(row, dict) else {"problem": row}
        parsed.update(source=str(path), line=number)
        if parsed.get("problem") and not keep_bad:
            raise ReviewSheetError(f"{path}:{number}: {parsed['problem']}")
        rows.append(parsed)
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return []
        names = [name.strip() for name in header]
        unknown = [name for name in names if name not in REVIEW_FIELDS]
        missing = [name for name in REVIEW_FIELDS[:3] if name not in names]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if unknown or missing or doubled:
            what = "; ".join(part for part in (
                f"unknown column(s) {', '.join(repr(n[:30]) for n in unknown[:5])}" if unknown else "",
                f"missing column(s) {', '.join(missing)}" if missing else "",
                f"column(s) given twice: {', '.join(doubled)}" if doubled else "") if part)
            raise ReviewSheetError(f"{path}:1: {what} (expected {', '.join(REVIEW_FIELDS)})")
        out: list[tuple[int, dict[str, Any] | str]] = []
        for cells in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(names):
                out.append((number, f"{len(cells)} values for {len(names)} columns"))
                continue
            out.append((number, dict(zip(names, cells + [""] * (len(names) - len(cells)), strict=True))))
        return out
    except csv.Error as exc:
        raise ReviewSheetError(f"{path}:{reader.line_num}: not CSV ({exc})") from exc


_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def _review_row(row: dict[str, Any]) -> dict[str, Any]:
    """One sheet row as the store takes it; ``problem`` says why it cannot be (the first reason)."""
    out: dict[str, Any] = {field: None for field in REVIEW_FIELDS}
    missing = [k for k in REVIEW_FIELDS[:3] if row.get(k) is None or (isinstance(row[k], str) and not row[k].strip())]
    if missing:
        return {**out, "problem": f"missing {', '.join(missing)}"}
    for field in ("call_id", "item_id", "inspector", "reviewed_at"):
        value = row.get(field)
        if value is not None and not isinstance(value, str):
            return {**out, "problem": f"{field} must be text, not {json.dumps(value)[:20]}"}
        out[field] = _optional(value)
    score = row["inspector_score"]
    if isinstance(score, str) and _DECIMAL.fullmatch(score.strip()):
        score = float(score.strip())
    if isinstance(score, bool) or not isinstance(score, int | float):
        shown = json.dumps(score, ensure_ascii=False)[:20] if not isinstance(score, str) else repr(score[:20])
        return {**out, "problem": f"inspector_score {shown} is not a number"}
    if not math.isfinite(score):
        return {**out, "problem": "inspector_score must be finite"}
    out["inspector_score"] = float(score)
    return out


def agreement_report(store: Store) -> dict[str, Any]:
    """Per rubric item over reviewed calls: n, exact, within one band, Cohen's kappa of the bands."""
    by_item: dict[str, list[tuple[float, float, list[tuple[float, float]]]]] = {}
    calls: set[str] = set()
    for row in store.review_pairs():
        if row["prefill"] is None:
            continue
        calls.add(row["call_id"])
        bands = item_bands(json.loads(row["data"]))  # [] before the rubric existed
        by_item.setdefault(row["item_id"], []).append((float(row["prefill"]), float(row["inspector"]), bands))
    items = [{"item_id": item_id, **agreement_figures(by_item[item_id])} for item_id in sorted(by_item, key=item_order)]
    return {"calls": len(calls), "items": items}


def parse_day(value: str | None, name: str) -> str | None:
    """``--since`` / ``--until``: a YYYY-MM-DD date, or a ValueError naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise ValueError(f"--{name} {value!r}: expected a date YYYY-MM-DD") from exc


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell: None empty, numbers as they are, text that a spreadsheet would run as a formula
    (starting with = + - @, a tab or a carriage return, or a fullwidth ＝ ＋ － ＠) behind a quote."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _optional(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
