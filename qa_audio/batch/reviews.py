"""Inspectors' reviews as the workbench stores them: who scored what, when, beside the machine's pre-score.

The call's confirmed scores stay in ``reviews`` (one per call and item), the table ``export``,
``agreement`` and the reports already read, whether a score came from ``import-reviews`` or from the
workbench (``source``). A calibration call (a configurable share, ``rules/workbench.yaml``) is
reviewed by a second inspector as well, blind to the first; that second opinion goes to
``second_reviews``, so nothing that reads ``reviews`` counts a call twice. The three written fields
(该坐席存在的主要问题 / 改善建议 / 综合评价) go to ``review_notes``, one row per inspector and call.

Nothing is overwritten without a trace: triggers append every insert, change and removal of those
three tables and of ``assignments`` to ``review_history``, whoever writes (the workbench, an import,
a hand-typed SQL statement), and the history itself refuses UPDATE and DELETE.

Which calls are calibration calls is decided by the call's hash: its characters 9-16 (hex) below
``share`` of the hex range. The sha256 of a recording is uniform, so the share holds, the choice is
the same in every process and page, and it is independent of the random sample (which orders calls
by their first characters, ``qa_audio/batch/queue.py``).
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from qa_audio.batch.store import Store, item_bands, now, review_problem
from qa_audio.rubric.sheet import band_index

REVIEW_TABLES = """
CREATE TABLE IF NOT EXISTS second_reviews (
    call_id TEXT NOT NULL REFERENCES calls(call_id),
    item_id TEXT NOT NULL,
    inspector_score REAL NOT NULL,
    inspector TEXT NOT NULL,
    reviewed_at TEXT NOT NULL,
    prefill REAL,
    PRIMARY KEY (call_id, item_id)
);
CREATE TABLE IF NOT EXISTS review_notes (
    call_id TEXT NOT NULL REFERENCES calls(call_id),
    inspector TEXT NOT NULL,
    second_opinion INTEGER NOT NULL DEFAULT 0,
    problems TEXT NOT NULL DEFAULT '',
    suggestions TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '',
    submitted_at TEXT NOT NULL,
    PRIMARY KEY (call_id, inspector)
);
CREATE INDEX IF NOT EXISTS review_notes_inspector ON review_notes(inspector, submitted_at);
CREATE TABLE IF NOT EXISTS assignments (
    call_id TEXT NOT NULL REFERENCES calls(call_id),
    inspector TEXT NOT NULL,
    assigned_by TEXT NOT NULL,
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (call_id, inspector)
);
CREATE INDEX IF NOT EXISTS assignments_inspector ON assignments(inspector, call_id);
CREATE TABLE IF NOT EXISTS review_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    call_id TEXT NOT NULL,
    item_id TEXT,
    inspector TEXT,
    what TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    source TEXT
);
CREATE INDEX IF NOT EXISTS review_history_call ON review_history(call_id, seq)
"""

# One trigger per table and change; the history is what an auditor reads, so each row says what
# changed, the inspector, the old and new value. ``strftime`` gives the same UTC ISO form as now().
_NOTE = "json_object('problems', {t}.problems, 'suggestions', {t}.suggestions, 'summary', {t}.summary)"


def _history(event: str, table: str, what: str, old: str, new: str, source: str = "'workbench'",
             item: bool = True) -> str:
    """An AFTER ``event`` trigger on ``table`` appending one history row (``old``/``new``: SQL on OLD/NEW)."""
    row = "OLD" if event == "DELETE" else "NEW"
    item_id = f"{row}.item_id" if item else "NULL"
    return (f"AFTER {event} ON {table} BEGIN INSERT INTO review_history "
            "(at, call_id, item_id, inspector, what, old_value, new_value, source) "
            f"VALUES (strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), {row}.call_id, {item_id}, "
            f"{row}.inspector, '{what}', {old}, {new}, {source}); END")


TRIGGERS = {
    "reviews_added": _history("INSERT", "reviews", "score", "NULL", "NEW.inspector_score", "NEW.source"),
    "reviews_changed": _history("UPDATE", "reviews", "score",
                                "json_object('score', OLD.inspector_score, 'inspector', OLD.inspector)",
                                "NEW.inspector_score", "NEW.source"),
    "reviews_removed": _history("DELETE", "reviews", "score removed", "OLD.inspector_score", "NULL", "OLD.source"),
    "second_reviews_added": _history("INSERT", "second_reviews", "second opinion", "NULL", "NEW.inspector_score"),
    "second_reviews_changed": _history("UPDATE", "second_reviews", "second opinion", "OLD.inspector_score",
                                       "NEW.inspector_score"),
    "second_reviews_removed": _history("DELETE", "second_reviews", "second opinion removed", "OLD.inspector_score",
                                       "NULL"),
    "review_notes_added": _history("INSERT", "review_notes", "notes", "NULL", _NOTE.format(t="NEW"), item=False),
    "review_notes_changed": _history("UPDATE", "review_notes", "notes", _NOTE.format(t="OLD"), _NOTE.format(t="NEW"),
                                     item=False),
    "assignments_added": _history("INSERT", "assignments", "assigned", "NULL", "NEW.assigned_by", item=False),
    "assignments_removed": _history("DELETE", "assignments", "unassigned", "OLD.assigned_by", "NULL", item=False),
    "review_history_kept": """BEFORE UPDATE ON review_history BEGIN
        SELECT RAISE(ABORT, 'review_history is append-only'); END""",
    "review_history_not_deleted": """BEFORE DELETE ON review_history BEGIN
        SELECT RAISE(ABORT, 'review_history is append-only'); END""",
}


class ReviewRefused(ValueError):
    """A submitted review that cannot be stored: an unknown call or item, a score outside the bands,
    a call this inspector may not review (``status`` is the HTTP status the workbench answers)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Submission:
    """One inspector's review of one call, as the workbench form sends it."""

    call_id: str
    inspector: str
    scores: dict[str, float]
    problems: str = ""
    suggestions: str = ""
    summary: str = ""


def create_review_tables(conn: sqlite3.Connection) -> None:
    """The workbench's review tables and their history triggers (idempotent; inside the caller's transaction)."""
    for statement in (s.strip() for s in REVIEW_TABLES.split(";")):
        if statement:
            conn.execute(statement)
    for name, body in TRIGGERS.items():
        conn.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")


def calibration_pivot(share: float) -> str:
    """The 8 hex digits below which a call's characters 9-16 make it a calibration call."""
    share = min(1.0, max(0.0, share))
    return "g" if share >= 1.0 else format(int(share * 16**8), "08x")


def is_calibration(call_id: str, share: float) -> bool:
    return call_id[8:16] < calibration_pivot(share)


def submit_review(store: Store, submission: Submission, role: str, calibration_share: float) -> str:
    """Store ``submission`` in one transaction; returns ``"primary"`` or ``"second"`` (which table it went to).

    The first inspector of a call gives its confirmed scores (``reviews``, the call marked reviewed);
    on a calibration call a second, other inspector gives the second opinion. The same inspector
    submitting again changes their own scores (the history keeps the old ones). A third inspector, or
    a second one on a call that is not a calibration call, is refused (409), except a lead, whose
    scores then replace the confirmed ones. Every score must be a value of the item's bands, and
    every item with a pre-score or a band must be given one.
    """
    stamp = now()
    with store.transaction() as conn:
        items = {row["item_id"]: row for row in conn.execute(
            "SELECT item_id, points, score, data FROM rubric_items WHERE call_id=?", (submission.call_id,))}
        if not store.has_call(submission.call_id):
            raise ReviewRefused(f"call {submission.call_id[:12]} is not in the store", 404)
        if not items:
            raise ReviewRefused("this call has no rubric items to score (analysed before the rubric existed)")
        unknown = sorted(set(submission.scores) - set(items))
        if unknown:
            raise ReviewRefused(f"no rubric item {unknown[0]!r} in this call")
        missing = [item_id for item_id in items if item_id not in submission.scores]
        if missing:
            raise ReviewRefused(f"item {missing[0]} has no score: every item must be scored")
        for item_id, score in submission.scores.items():
            problem = review_problem({"call_id": submission.call_id, "item_id": item_id,
                                       "inspector_score": score}, items)
            if problem:
                raise ReviewRefused(problem)
        mine = conn.execute("SELECT second_opinion FROM review_notes WHERE call_id=? AND inspector=?",
                            (submission.call_id, submission.inspector)).fetchone()
        primary = conn.execute("SELECT inspector FROM reviews WHERE call_id=? LIMIT 1",
                               (submission.call_id,)).fetchone()
        second = conn.execute("SELECT inspector FROM second_reviews WHERE call_id=? LIMIT 1",
                              (submission.call_id,)).fetchone()
        if mine is not None:
            kind = "second" if mine["second_opinion"] else "primary"
        elif primary is None:
            kind = "primary"
        elif (is_calibration(submission.call_id, calibration_share) and second is None
              and primary["inspector"] != submission.inspector):
            kind = "second"
        elif role == "lead":
            kind = "primary"
        else:
            raise ReviewRefused(f"this call was reviewed by {primary['inspector'] or 'an import'} already", 409)
        table = "reviews" if kind == "primary" else "second_reviews"
        for item_id, score in submission.scores.items():
            prefill = items[item_id]["score"]
            if kind == "primary":
                conn.execute(
                    "INSERT INTO reviews (call_id, item_id, inspector_score, inspector, reviewed_at, imported_at, "
                    "prefill, source) VALUES (?, ?, ?, ?, ?, ?, ?, 'workbench') ON CONFLICT(call_id, item_id) DO "
                    "UPDATE SET inspector_score=excluded.inspector_score, inspector=excluded.inspector, "
                    "reviewed_at=excluded.reviewed_at, imported_at=excluded.imported_at, source='workbench' "
                    "WHERE inspector_score IS NOT excluded.inspector_score OR inspector IS NOT excluded.inspector",
                    (submission.call_id, item_id, float(score), submission.inspector, stamp, stamp, prefill))
            else:
                conn.execute(
                    f"INSERT INTO {table} (call_id, item_id, inspector_score, inspector, reviewed_at, prefill) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(call_id, item_id) DO UPDATE SET "
                    "inspector_score=excluded.inspector_score, reviewed_at=excluded.reviewed_at "
                    "WHERE inspector_score IS NOT excluded.inspector_score",
                    (submission.call_id, item_id, float(score), submission.inspector, stamp, prefill))
        conn.execute(
            "INSERT INTO review_notes (call_id, inspector, second_opinion, problems, suggestions, summary, "
            "submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(call_id, inspector) DO UPDATE SET "
            "problems=excluded.problems, suggestions=excluded.suggestions, summary=excluded.summary, "
            "submitted_at=excluded.submitted_at",
            (submission.call_id, submission.inspector, int(kind == "second"), submission.problems,
             submission.suggestions, submission.summary, stamp))
        if kind == "primary":
            conn.execute("UPDATE calls SET status='reviewed' WHERE call_id=?", (submission.call_id,))
    return kind


def assign(store: Store, call_ids: list[str], inspector: str, lead: str) -> int:
    """Give calls to an inspector (a second one on a calibration call is allowed); returns how many were new."""
    stamp = now()
    added = 0
    with store.transaction() as conn:
        for call_id in call_ids:
            if not store.has_call(call_id):
                raise ReviewRefused(f"call {call_id[:12]} is not in the store", 404)
            cursor = conn.execute("INSERT OR IGNORE INTO assignments (call_id, inspector, assigned_by, assigned_at) "
                                  "VALUES (?, ?, ?, ?)", (call_id, inspector, lead, stamp))
            added += cursor.rowcount
    return added


def unassign(store: Store, call_ids: list[str], inspector: str) -> int:
    with store.transaction() as conn:
        return sum(conn.execute("DELETE FROM assignments WHERE call_id=? AND inspector=?",
                                (call_id, inspector)).rowcount for call_id in call_ids)


def history(conn: sqlite3.Connection, call_id: str) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM review_history WHERE call_id=? ORDER BY seq", (call_id,)).fetchall()


def calibration_agreement(conn: sqlite3.Connection) -> dict[str, Any]:
    """Per item over calibration calls with both opinions: first inspector vs second, and the machine
    vs each of them on the same calls (n, exact, within one band, Cohen's κ of the bands)."""
    rows = conn.execute(
        "SELECT s.item_id, s.call_id, r.inspector_score AS first, s.inspector_score AS second, "
        "i.score AS prefill, i.data FROM second_reviews s "
        "JOIN reviews r ON r.call_id = s.call_id AND r.item_id = s.item_id "
        "JOIN rubric_items i ON i.call_id = s.call_id AND i.item_id = s.item_id "
        "JOIN calls c ON c.call_id = s.call_id WHERE c.superseded_by IS NULL").fetchall()
    by_item: dict[str, list[tuple[float | None, float, float, list[tuple[float, float]]]]] = {}
    calls: set[str] = set()
    for row in rows:
        calls.add(row["call_id"])
        by_item.setdefault(row["item_id"], []).append(
            (row["prefill"], float(row["first"]), float(row["second"]), item_bands(json.loads(row["data"]))))
    items = []
    for item_id in sorted(by_item, key=item_order):
        quads = by_item[item_id]
        people = agreement_figures([(a, b, bands) for _, a, b, bands in quads])
        machine = agreement_figures([(p, a, bands) for p, a, _, bands in quads if p is not None]
                                    + [(p, b, bands) for p, _, b, bands in quads if p is not None])
        items.append({"item_id": item_id, "inspectors": people, "machine": machine})
    return {"calls": len(calls), "items": items}


def agreement_figures(pairs: list[tuple[float, float, list[tuple[float, float]]]]) -> dict[str, Any]:
    """n, exact, within one band and Cohen's κ (scikit-learn) of (score a, score b, the item's bands)."""
    if not pairs:
        return {"n": 0, "exact": None, "within_one_band": None, "kappa": None}
    from sklearn.metrics import cohen_kappa_score

    first = [band_index(a, bands) for a, _, bands in pairs]
    other = [band_index(b, bands) for _, b, bands in pairs]
    exact = sum(a == b for a, b, _ in pairs) / len(pairs)
    within = sum(abs(a - b) <= 1 for a, b in zip(first, other, strict=True)) / len(pairs)
    kappa: float | None = None
    if len(set(first) | set(other)) > 1:
        value = float(cohen_kappa_score(first, other))
        kappa = round(value, 4) if math.isfinite(value) else None
    return {"n": len(pairs), "exact": round(exact, 4), "within_one_band": round(within, 4), "kappa": kappa}


def item_order(item_id: str) -> tuple:
    """Sheet order of item ids: 1a, 1b, …, 2a, 3, …, 7b (by their number, then the letter)."""
    digits = "".join(ch for ch in item_id if ch.isdigit())
    return (int(digits) if digits else 1_000, item_id)
