"""What the workbench's pages show, read from the store: who may see which call, the queue's rows, the
call page's sheet. Plain functions over an SQLite connection; ``app.py`` only parses and renders.

Who sees what:
- a **lead** sees every call, every review and the history;
- an **inspector** sees the calls not assigned to anybody else that wait for a review (pending, or a
  calibration call whose second opinion is still to give, when the first was not theirs), and the
  calls they reviewed. A calibration call's second inspector does not see the first one's scores.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from datetime import date
from typing import Any

from qa_audio.batch.queue import QueueFilter, QueuePage, queue_page
from qa_audio.batch.reviews import calibration_pivot
from qa_audio.batch.store import item_bands
from qa_audio.labels import OPENING_NOTE, UNINTELLIGIBLE
from qa_audio.workbench.accounts import User
from qa_audio.workbench.settings import WorkbenchSettings

STATUS_CHOICES = {"todo": "待我复核", "pending_review": "待复核", "reviewed": "已复核", "all": "全部"}

_NOT_ELSEWHERE = ("(NOT EXISTS (SELECT 1 FROM assignments a WHERE a.call_id = c.call_id) "
                  "OR EXISTS (SELECT 1 FROM assignments a WHERE a.call_id = c.call_id AND a.inspector = ?))")
_AWAITS_SECOND = ("(c.status = 'reviewed' AND substr(c.call_id, 9, 8) < ? "
                  "AND NOT EXISTS (SELECT 1 FROM second_reviews s WHERE s.call_id = c.call_id) "
                  "AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.call_id = c.call_id AND r.inspector IS ?))")
_MINE = "EXISTS (SELECT 1 FROM review_notes n WHERE n.call_id = c.call_id AND n.inspector = ?)"


class BadRequest(ValueError):
    """A query or form value the page cannot use (answered 400 with this message)."""


@dataclass(frozen=True)
class QueueQuery:
    status: str = "todo"
    since: str | None = None
    until: str | None = None
    agent: str | None = None
    flag: str | None = None
    assigned: str | None = None
    page: int = 1


def parse_queue_query(args: Any) -> QueueQuery:
    """The queue page's filters from the query string, each checked (BadRequest says which is wrong)."""
    status = args.get("status") or "todo"
    if status not in STATUS_CHOICES:
        raise BadRequest(f"status {status[:30]!r}: expected one of {', '.join(STATUS_CHOICES)}")
    days = {}
    for name in ("since", "until"):
        value = (args.get(name) or "").strip()
        if value:
            try:
                days[name] = date.fromisoformat(value).isoformat()
            except ValueError as exc:
                raise BadRequest(f"{name} {value[:30]!r}: expected a date YYYY-MM-DD") from exc
    page_text = args.get("page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= 1_000_000:
        raise BadRequest(f"page {page_text[:20]!r}: expected a page number")
    texts = {}
    for name in ("agent", "flag", "assigned"):
        value = (args.get(name) or "").strip()
        if len(value) > 64:
            raise BadRequest(f"{name}: at most 64 characters")
        texts[name] = value or None
    return QueueQuery(status=status, page=int(page_text), **days, **texts)


def visible_where(user: User, settings: WorkbenchSettings) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``c`` (calls) limiting an inspector to what they may see (none for a lead)."""
    if user.role == "lead":
        return [], []
    pivot = calibration_pivot(settings.calibration_share)
    # CASE, not OR: an OR on status makes SQLite read each call's row (its result JSON) instead of
    # scanning the covering index (bench/workbench.py: 1.0 s → 0.1 s for an inspector's assigned calls)
    return ([_NOT_ELSEWHERE, f"CASE WHEN c.status = 'pending_review' THEN 1 ELSE {_AWAITS_SECOND} OR {_MINE} END"],
            [user.name, pivot, user.name, user.name])


def queue_filter(query: QueueQuery, user: User, settings: WorkbenchSettings) -> QueueFilter:
    where, params = visible_where(user, settings)
    status = query.status
    if status == "todo":
        pivot = calibration_pivot(settings.calibration_share)
        where.append(f"CASE WHEN c.status = 'pending_review' THEN 1 ELSE {_AWAITS_SECOND} END AND NOT {_MINE}")
        params += [pivot, user.name, user.name]
        status = "all"
    return QueueFilter(status=status, since=query.since, until=query.until, flags=(query.flag,) if query.flag else (),
                       sample=settings.random_sample, seed=settings.sample_seed,
                       low_confidence=settings.low_confidence, low_total=settings.low_total,
                       agent=query.agent, assigned_to=query.assigned, extra_where=tuple(where),
                       extra_params=tuple(params))


def queue_rows(conn: sqlite3.Connection, query: QueueQuery, user: User,
               settings: WorkbenchSettings) -> tuple[QueuePage, list[dict[str, Any]]]:
    """The page of the queue and, for each of its calls, what the table shows."""
    page = queue_page(conn, queue_filter(query, user, settings), limit=settings.page_size,
                      offset=(query.page - 1) * settings.page_size)
    ids = [call_id for _, call_id, _ in page.rows]
    if not ids:
        return page, []
    marks = ",".join("?" * len(ids))
    facts = {row["call_id"]: row for row in conn.execute(
        f"SELECT c.call_id, c.path, c.analysed_at, c.duration, c.total, c.max_total, c.flags, c.min_confidence, "
        f"c.status, m.agent_id, m.team, m.started_at, "
        f"(SELECT group_concat(inspector, ', ') FROM assignments a WHERE a.call_id = c.call_id) AS assigned, "
        f"(SELECT group_concat(inspector, ', ') FROM review_notes n WHERE n.call_id = c.call_id) AS reviewed_by "
        f"FROM calls c LEFT JOIN call_metadata m ON m.call_id = c.call_id WHERE c.call_id IN ({marks})", ids)}
    rows = []
    for priority, call_id, reason in page.rows:
        fact = facts[call_id]
        rows.append({"priority": priority, "reason": reason, "call_id": call_id, "name": _file_name(fact["path"]),
                     "analysed_at": fact["analysed_at"][:16].replace("T", " "), "duration": fact["duration"],
                     "total": fact["total"], "max_total": fact["max_total"],
                     "flags": json.loads(fact["flags"] or "[]"), "min_confidence": fact["min_confidence"],
                     "status": fact["status"], "agent_id": fact["agent_id"], "team": fact["team"],
                     "started_at": fact["started_at"], "assigned": fact["assigned"] or "",
                     "reviewed_by": fact["reviewed_by"] if user.role == "lead" else None})
    return page, rows


def may_see(conn: sqlite3.Connection, call_id: str, user: User, settings: WorkbenchSettings) -> bool:
    where, params = visible_where(user, settings)
    sql = "SELECT 1 FROM calls c WHERE c.call_id = ?" + "".join(f" AND {w}" for w in where)
    return conn.execute(sql, [call_id, *params]).fetchone() is not None


def next_call(conn: sqlite3.Connection, user: User, settings: WorkbenchSettings, after: str) -> str | None:
    """The next call of the user's own queue (待我复核) other than ``after``: the calls assigned to them
    first (a lead gave them for a reason; also the cheaper query), then the shared queue."""
    for query in (QueueQuery(assigned=user.name), QueueQuery()):
        page = queue_page(conn, queue_filter(query, user, settings), limit=2)
        found = next((call_id for _, call_id, _ in page.rows if call_id != after), None)
        if found:
            return found
    return None


def allowed_scores(item: dict[str, Any]) -> list[float]:
    """The scores the sheet's bands allow for an item: every whole point inside a band, and the band's
    own ends (a half-point band end stays choosable)."""
    values: set[float] = set()
    for low, high in item_bands(item):
        values.update({low, high})
        values.update(float(v) for v in range(math.ceil(low), math.floor(high) + 1))
    if not values and isinstance(item.get("points"), int | float):
        values.update(float(v) for v in range(int(item["points"]) + 1))
    return sorted(values)


def score_text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def sheet_rows(result: dict[str, Any], scores: dict[str, float | None]) -> list[dict[str, Any]]:
    """The pre-filled sheet as the form shows it: each item, its choices, and the value chosen now."""
    rows = []
    for item in (result.get("rubric") or {}).get("items") or []:
        prefill = item.get("score")
        chosen = scores.get(item["id"], prefill)
        rows.append({"id": item["id"], "name": item.get("name", ""), "points": item.get("points"),
                     "prefill": prefill, "status": item.get("status", ""), "confidence": item.get("confidence"),
                     "band": item.get("band") or "", "basis": item.get("basis") or [],
                     "evidence": item.get("evidence") or [], "choices": allowed_scores(item),
                     "chosen": chosen, "advice": item.get("advice") or []})
    return rows


def review_of(conn: sqlite3.Connection, call_id: str, inspector: str) -> dict[str, Any] | None:
    """An inspector's own review of a call: their scores and notes (None: not reviewed by them)."""
    notes = conn.execute("SELECT * FROM review_notes WHERE call_id=? AND inspector=?", (call_id, inspector)).fetchone()
    if notes is None:
        return None
    table = "second_reviews" if notes["second_opinion"] else "reviews"
    scores = {row["item_id"]: row["inspector_score"] for row in conn.execute(
        f"SELECT item_id, inspector_score FROM {table} WHERE call_id=? AND inspector=?", (call_id, inspector))}
    return {"scores": scores, "problems": notes["problems"], "suggestions": notes["suggestions"],
            "summary": notes["summary"], "submitted_at": notes["submitted_at"],
            "second_opinion": bool(notes["second_opinion"])}


def all_reviews(conn: sqlite3.Connection, call_id: str) -> list[dict[str, Any]]:
    """Every review of a call, the confirmed one first (for leads)."""
    out = []
    for table, label, source in (("reviews", "确认评分", "source"),
                                 ("second_reviews", "校准（第二质检员）", "'workbench'")):
        rows = conn.execute(f"SELECT item_id, inspector_score, inspector, reviewed_at, {source} AS source FROM {table} "
                            "WHERE call_id=? ORDER BY item_id", (call_id,)).fetchall()
        if rows:
            out.append({"label": label, "inspector": rows[0]["inspector"] or "（导入）",
                        "scores": {r["item_id"]: r["inspector_score"] for r in rows},
                        "source": rows[0]["source"], "at": rows[0]["reviewed_at"]})
    return out


def evidence_spans(result: dict[str, Any]) -> list[tuple[float, float]]:
    spans = []
    for item in (result.get("rubric") or {}).get("items") or []:
        for evidence in item.get("evidence") or []:
            start, end = evidence.get("start"), evidence.get("end")
            if isinstance(start, int | float):
                spans.append((float(start), float(end if isinstance(end, int | float) else start)))
    return spans


def transcript_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The turns, each marked where an item's evidence falls in it."""
    spans = evidence_spans(result)
    rows = []
    for turn in result.get("turns") or []:
        start, end = float(turn.get("start", 0.0)), float(turn.get("end", 0.0))
        rows.append({"role": turn.get("role", "customer"), "start": start, "end": end,
                     "text": turn.get("text") or (UNINTELLIGIBLE if turn.get("unintelligible") else ""),
                     "evidence": any(a <= end and b >= start for a, b in spans)})
    return rows


def vocabulary_rewrites(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The deployment's words the analysis wrote where Whisper misheard them (schema 1.6+)."""
    return [{"start": float(c.get("start") or 0.0), "heard": str(c.get("heard", "")),
             "written": str(c.get("written", ""))} for c in result.get("vocabulary_corrections") or []]


def opening_redecoded(result: dict[str, Any]) -> dict[str, Any] | None:
    """The greeting's stretch when it was decoded again with the deployment's words and that changed
    the words (schema 1.7+), else None."""
    opening = result.get("vocabulary_opening")
    if not isinstance(opening, dict) or not opening.get("changed"):
        return None
    return {"start": float(opening.get("start") or 0.0), "end": float(opening.get("end") or 0.0),
            "note": OPENING_NOTE.format(hotwords=str(opening.get("hotwords", "")))}


def originals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The masked spans with their original characters, where the deployment kept them."""
    out = []
    for span in result.get("personal_data") or []:
        texts = [part.get("text") for part in span.get("parts") or [] if part.get("text")]
        if texts:
            out.append({"type": span.get("type", ""), "start": span.get("start", 0.0), "mask": span.get("mask", ""),
                        "original": "".join(texts)})
    return out


def _file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
