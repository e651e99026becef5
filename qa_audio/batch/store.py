"""The batch's embedded store: one SQLite file (WAL) holding every call's result and its failures.

Identity is the sha256 of a recording's bytes (``call_id``): a renamed file is the same call, a
changed file is a new one. ``calls.call_id`` is the primary key, so a call cannot be stored twice
even when two batches race on one database.

One writer: only the batch's parent process (or the Dask client) writes, one transaction per call
(result JSON + findings + rubric items + path + status together). A kill at any moment, SIGKILL
included, leaves either the whole call or none of it; SQLite's journal does the rest.

Tables (see ``docs/batch.md``):
- ``calls``: one row per analysed recording: the full result JSON and the columns the QA queue
  sorts on (duration, total, flags, min confidence, status ``pending_review`` | ``reviewed``).
  A call whose path now holds different bytes gets ``superseded_by`` = the new call's id; it is
  kept (its review may exist) but left out of exports.
- ``paths``: every path a hash was seen at (analysed or failed).
- ``findings``, ``rubric_items``: extracted from the result JSON when it has them.
- ``failures``: recordings that could not be analysed, keyed by hash (or ``path:size:mtime`` when
  the bytes could not be read), with the one-line reason.
- ``reviews``: the inspectors' scores read back by ``import-reviews``.
- ``call_metadata``: who took the call (agent id, team, start time, queue, direction), from the
  phone system's CSV, the file name or the 工号 heard (``qa_audio/call_metadata.py``), with the
  heard 工号 kept beside it and ``agent_id_mismatch`` where the two disagree.
- ``runs``: one row per batch run, with its counts.
- the workbench's tables (``qa_audio/batch/reviews.py``, ``qa_audio/workbench/accounts.py``):
  ``second_reviews`` (a calibration call's second inspector), ``review_notes`` (the three written
  fields of each submitted review), ``review_history`` (every change to those and to ``reviews``,
  appended by triggers, never updated or deleted), ``assignments``, ``users``, ``sessions``,
  ``login_failures``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qa_audio.call_metadata import CallMetadata, combine

logger = logging.getLogger(__name__)

STORE_VERSION = 3
"""1: calls, findings, rubric items, reviews; 2: call_metadata (filled from the greeting's 工号 on upgrade);
3: the workbench (qa_audio/batch/reviews.py): the queue's facts on calls, second opinions, review notes,
their append-only history, assignments, users and sessions"""
APPLICATION = "qa-audio"
"""``meta`` key ``application``: what marks a file as a qa-audio store"""
STORE_TABLES = ("meta", "runs", "calls", "paths", "findings", "rubric_items", "failures", "reviews")
SQLITE_HEADER = b"SQLite format 3\x00"
STATUSES = ("pending_review", "reviewed")
HASH_CHUNK = 1 << 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    engine TEXT NOT NULL,
    settings TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    audio_seconds REAL NOT NULL DEFAULT 0,
    wall_seconds REAL
);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    analysed_at TEXT NOT NULL,
    run_id INTEGER REFERENCES runs(run_id),
    duration REAL,
    channels INTEGER,
    total REAL,
    max_total REAL,
    flags TEXT NOT NULL DEFAULT '[]',
    min_confidence REAL,
    status TEXT NOT NULL DEFAULT 'pending_review' CHECK (status IN ('pending_review', 'reviewed')),
    superseded_by TEXT,
    processing_seconds REAL,
    finding_count INTEGER NOT NULL DEFAULT 0,
    fatal_finding INTEGER NOT NULL DEFAULT 0,
    severe_finding INTEGER NOT NULL DEFAULT 0,
    result_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_status ON calls(status, analysed_at);
CREATE TABLE IF NOT EXISTS paths (
    call_id TEXT NOT NULL,
    path TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (call_id, path)
);
CREATE INDEX IF NOT EXISTS paths_path ON paths(path);
CREATE TABLE IF NOT EXISTS findings (
    call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    rule TEXT NOT NULL,
    role TEXT,
    start REAL,
    "end" REAL,
    severity TEXT,
    level INTEGER,
    data TEXT NOT NULL,
    PRIMARY KEY (call_id, idx)
);
CREATE INDEX IF NOT EXISTS findings_rule ON findings(rule, severity);
CREATE TABLE IF NOT EXISTS rubric_items (
    call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    name TEXT,
    points REAL,
    score REAL,
    confidence REAL,
    status TEXT,
    data TEXT NOT NULL,
    advice TEXT NOT NULL DEFAULT '[]',
    moment REAL,
    moment_note TEXT,
    PRIMARY KEY (call_id, item_id)
);
CREATE TABLE IF NOT EXISTS failures (
    failure_key TEXT PRIMARY KEY,
    call_id TEXT,
    path TEXT NOT NULL,
    size INTEGER,
    mtime REAL,
    error TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    first_failed_at TEXT NOT NULL,
    last_failed_at TEXT NOT NULL,
    run_id INTEGER
);
CREATE TABLE IF NOT EXISTS reviews (
    call_id TEXT NOT NULL REFERENCES calls(call_id),
    item_id TEXT NOT NULL,
    inspector_score REAL NOT NULL,
    inspector TEXT,
    reviewed_at TEXT,
    imported_at TEXT NOT NULL,
    prefill REAL,
    source TEXT NOT NULL DEFAULT 'import',
    PRIMARY KEY (call_id, item_id)
);
CREATE TABLE IF NOT EXISTS call_metadata (
    call_id TEXT PRIMARY KEY REFERENCES calls(call_id) ON DELETE CASCADE,
    agent_id TEXT,
    team TEXT,
    started_at TEXT,
    queue TEXT,
    direction TEXT,
    source TEXT NOT NULL DEFAULT 'none',
    heard_agent_id TEXT,
    agent_id_mismatch INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS call_metadata_agent ON call_metadata(agent_id);
CREATE INDEX IF NOT EXISTS call_metadata_team ON call_metadata(team)
"""
# The review queue reads only this index (a covering one): the calls' rows carry their whole result
# JSON, and columns added by an upgrade sit behind it, so reading them from the rows of 100,000 calls
# walks every overflow page (bench/workbench.py).
QUEUE_INDEX = """CREATE INDEX IF NOT EXISTS calls_queue ON calls(status, superseded_by, analysed_at, total, max_total,
    min_confidence, flags, finding_count, fatal_finding, severe_finding, call_id)"""
# A batch's every write looks for the calls last analysed from the same path (supersession): without
# this index that is a scan of every call inside the write transaction (24 ms of a 27 ms write at
# 100,000 calls; 2 ms with it: bench/workbench.py), and the workbench's reviews wait behind it.
PATH_INDEX = "CREATE INDEX IF NOT EXISTS calls_path ON calls(path)"
# Store version 3 keeps each call's finding count and its forbidden-phrase bands beside it (the queue's
# order), filled from the findings on upgrade.
CALL_COLUMNS = {"finding_count": "INTEGER NOT NULL DEFAULT 0", "fatal_finding": "INTEGER NOT NULL DEFAULT 0",
                "severe_finding": "INTEGER NOT NULL DEFAULT 0"}
BACKFILL_CALLS = """
UPDATE calls SET finding_count = f.n, fatal_finding = f.fatal, severe_finding = f.severe FROM (
    SELECT call_id, COUNT(*) AS n, MAX(rule = 'forbidden_phrase' AND severity = '0-2') AS fatal,
           MAX(rule = 'forbidden_phrase' AND severity = '3-5') AS severe
    FROM findings GROUP BY call_id) f WHERE f.call_id = calls.call_id
"""
REVIEW_COLUMNS = {"prefill": "REAL", "source": "TEXT NOT NULL DEFAULT 'import'"}
# Calls stored before call_metadata existed get the 工号 their greeting finding heard.
BACKFILL_HEARD = """
INSERT OR IGNORE INTO call_metadata (call_id, agent_id, source, heard_agent_id, updated_at)
SELECT c.call_id, f.heard, CASE WHEN f.heard IS NULL THEN 'none' ELSE 'heard' END, f.heard, ?
FROM calls c LEFT JOIN (
    SELECT call_id, MIN(json_extract(data, '$.agent_id_digits')) AS heard FROM findings
    WHERE rule = 'greeting' AND json_extract(data, '$.agent_id_complete') = 1
      AND COALESCE(json_extract(data, '$.agent_id_digits'), '') <> ''
    GROUP BY call_id) f ON f.call_id = c.call_id
"""
# Store version 2 keeps each item's advice lines and first evidence moment in columns, so the reports
# never parse 100,000 calls' JSON (bench/report.py); a version-1 store gets them on upgrade.
ITEM_COLUMNS = {"advice": "TEXT NOT NULL DEFAULT '[]'", "moment": "REAL", "moment_note": "TEXT"}
BACKFILL_ITEMS = """
UPDATE rubric_items SET advice = COALESCE(json_extract(data, '$.advice'), '[]'),
                        moment = json_extract(data, '$.evidence[0].start'),
                        moment_note = json_extract(data, '$.evidence[0].note')
"""
SOURCE_RANK = {"none": 0, "heard": 1, "file_name": 2, "csv": 3}
"""which metadata wins: the phone system's CSV over the file name over the 工号 heard"""


class StoreError(RuntimeError):
    """The database cannot be opened or is not a qa-audio store."""


class ReviewsRefused(ValueError):
    """Review rows that cannot be stored; ``problems`` holds one ``file:line: reason`` per bad row."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more bad row(s))" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")


@dataclass(frozen=True)
class FileKey:
    """What identifies a file on disk: its content hash, or why it could not be read."""

    path: str
    size: int | None
    mtime: float | None
    call_id: str | None
    error: str | None = None

    @property
    def failure_key(self) -> str:
        return self.call_id or f"{self.path}:{self.size}:{self.mtime}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def hash_file(path: Path | str) -> FileKey:
    """sha256 of the bytes, streamed; an unreadable file gives ``call_id=None`` and the reason."""
    path = str(path)
    try:
        stat = os.stat(path)
    except OSError as exc:
        return FileKey(path, None, None, None, f"{path}: cannot stat: {exc.strerror or exc}")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        return FileKey(path, stat.st_size, stat.st_mtime, None, f"{path}: cannot read: {exc.strerror or exc}")
    return FileKey(path, stat.st_size, stat.st_mtime, digest.hexdigest())


class Store:
    """The SQLite store. Open one per process; only one process should write results at a time.

    ``read_only=True`` (``export``, ``agreement``): opened with SQLite's ``mode=ro``, so nothing is
    ever written to the file; a missing file is not created. Where the folder is read-only and the
    ``-wal``/``-shm`` files cannot be made, it falls back to ``immutable=1`` (safe then: no writer can
    be at work in a folder nobody can write).

    Either way a file must be a qa-audio store: one with the marker (``meta`` ``application`` =
    ``qa-audio``), or one made by an earlier qa-audio (its tables, ``store_version``, no marker:
    a writer adds the marker). An SQLite file of another application is refused, untouched.
    """

    def __init__(self, path: Path | str, timeout: float = 60.0, read_only: bool = False, prepared: bool = False):
        """``prepared=True``: the store exists and a writer has created and upgraded its tables this
        run (the workbench opens one connection per request; the schema's DDL would take the write
        lock each time)."""
        self.path = Path(path)
        self.read_only = read_only
        if read_only:
            self.conn = _connect_read_only(self.path, timeout)
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"{self.path}: cannot open the database: {exc}") from exc
        self.conn.row_factory = sqlite3.Row
        try:
            kind = _store_kind(self.conn, self.path)  # before any write: a foreign file stays as it was
            if read_only:
                if kind == "empty":
                    raise StoreError(f"not a qa-audio store: {self.path} (an empty database)")
                missing = [t for t in STORE_TABLES if t not in _tables(self.conn)]
                if missing:
                    raise StoreError(f"not a qa-audio store: {self.path} (no {', '.join(missing)} table)")
                return
            if prepared:
                self.conn.execute("PRAGMA foreign_keys=ON")
                return
            self.conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed call survives a killed process; a power cut may lose the
            # last few commits but never corrupts the file (they are redone on the next run).
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                _store_kind(self.conn, self.path)  # again, now that no other process can be creating it
                for statement in _statements(SCHEMA):
                    self.conn.execute(statement)
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('store_version', ?)", (str(STORE_VERSION),))
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('application', ?)", (APPLICATION,))
                version = int(self.conn.execute("SELECT value FROM meta WHERE key='store_version'").fetchone()[0])
                if version < 2:  # a store of an earlier qa-audio: its calls get the 工号 they heard
                    self.conn.execute(BACKFILL_HEARD, (now(),))
                    _add_columns(self.conn, "rubric_items", ITEM_COLUMNS)
                    self.conn.execute(BACKFILL_ITEMS)
                if version < 3:
                    _add_columns(self.conn, "calls", CALL_COLUMNS)
                    _add_columns(self.conn, "reviews", REVIEW_COLUMNS)
                    self.conn.execute(BACKFILL_CALLS)
                    self.conn.execute("UPDATE reviews SET prefill = (SELECT score FROM rubric_items i WHERE "
                                      "i.call_id = reviews.call_id AND i.item_id = reviews.item_id)")
                if version < STORE_VERSION:
                    self.conn.execute("UPDATE meta SET value=? WHERE key='store_version'", (str(STORE_VERSION),))
                self.conn.execute(QUEUE_INDEX)
                self.conn.execute(PATH_INDEX)
                from qa_audio.batch.reviews import create_review_tables

                create_review_tables(self.conn)
        except StoreError:
            self.conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            if exc.sqlite_errorname == "SQLITE_NOTADB":
                raise StoreError(f"not a qa-audio store: {self.path} (not an SQLite database)") from exc
            raise StoreError(f"{self.path}: cannot use the database: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; rolled back on any error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ runs
    def start_run(self, engine: str, settings: dict[str, Any]) -> int:
        with self.transaction():
            cursor = self.conn.execute("INSERT INTO runs (started_at, engine, settings) VALUES (?, ?, ?)",
                                       (now(), engine, json.dumps(settings, ensure_ascii=False, default=str)))
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, done: int, skipped: int, failed: int, audio_seconds: float,
                   wall_seconds: float) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET finished_at=?, done=?, skipped=?, failed=?, audio_seconds=?, wall_seconds=? "
                "WHERE run_id=?", (now(), done, skipped, failed, audio_seconds, wall_seconds, run_id))

    # ------------------------------------------------------------------ lookups
    def has_call(self, call_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM calls WHERE call_id=?", (call_id,)).fetchone() is not None

    def failure(self, key: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM failures WHERE failure_key=?", (key,)).fetchone()

    def note_path(self, call_id: str, path: str) -> None:
        """Record that ``call_id`` was seen at ``path`` (a renamed or copied file: not redone)."""
        with self.transaction():
            self._note_path(call_id, path)
            self._supersede_at(path, call_id)

    def _note_path(self, call_id: str, path: str) -> None:
        stamp = now()
        self.conn.execute(
            "INSERT INTO paths (call_id, path, first_seen, last_seen) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(call_id, path) DO UPDATE SET last_seen=excluded.last_seen", (call_id, path, stamp, stamp))

    def _supersede_at(self, path: str, call_id: str) -> None:
        """Calls last analysed from ``path`` with other bytes are now superseded by ``call_id``."""
        if not self.has_call(call_id):
            return
        self.conn.execute("UPDATE calls SET superseded_by=? WHERE path=? AND call_id<>? AND superseded_by IS NULL",
                          (call_id, path, call_id))

    # ------------------------------------------------------------------ writes
    def add_result(self, key: FileKey, result: dict[str, Any], run_id: int | None = None,
                   processing_seconds: float | None = None, given: dict[str, str] | None = None) -> bool:
        """Store one analysed call in one transaction; False if it was already there (a racing run).

        ``given``: the call's row of the phone system's metadata CSV, stored with it."""
        if key.call_id is None:
            raise ValueError("a result needs the file's hash")
        audio = result.get("audio") or {}
        rubric = result.get("rubric") or {}
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT INTO calls (call_id, path, size, analysed_at, run_id, duration, channels, total, max_total, "
                "flags, min_confidence, status, processing_seconds, finding_count, fatal_finding, severe_finding, "
                "result_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending_review', ?, ?, ?, ?, ?) "
                "ON CONFLICT(call_id) DO NOTHING",
                (key.call_id, key.path, key.size or 0, now(), run_id, audio.get("duration"), audio.get("channels"),
                 _number(rubric.get("total")), _number(rubric.get("max_total")),
                 json.dumps(list(rubric.get("flags") or []), ensure_ascii=False), min_confidence(result),
                 processing_seconds, *_queue_facts(result.get("findings") or []),
                 json.dumps(result, ensure_ascii=False)))
            inserted = cursor.rowcount == 1
            if inserted:
                self.conn.executemany(
                    'INSERT INTO findings (call_id, idx, rule, role, start, "end", severity, level, data) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(key.call_id, i, str(f.get("rule", "")), f.get("role"), _number(f.get("start")),
                      _number(f.get("end")), _text(f.get("severity")), _int(f.get("level")),
                      json.dumps(f, ensure_ascii=False)) for i, f in enumerate(result.get("findings") or [])])
                self.conn.executemany(
                    "INSERT OR REPLACE INTO rubric_items (call_id, item_id, name, points, score, confidence, status, "
                    "data, advice, moment, moment_note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(key.call_id, str(item.get("id")), item.get("name"), _number(item.get("points")),
                      _number(item.get("score")), _number(item.get("confidence")), _text(item.get("status")),
                      json.dumps(item, ensure_ascii=False),
                      json.dumps(list(item.get("advice") or []), ensure_ascii=False),
                      *_first_moment(item)) for item in rubric.get("items") or []
                     if item.get("id") is not None])
                self.conn.execute("DELETE FROM failures WHERE failure_key=?", (key.call_id,))
                self._put_metadata(key.call_id, _metadata_of(result))
            if given:
                self._attach(key.call_id, given, "csv")
            self._note_path(key.call_id, key.path)
            self._supersede_at(key.path, key.call_id)
        return inserted

    def attach_metadata(self, call_id: str, given: dict[str, str], source: str = "csv") -> bool:
        """Give a stored call its metadata (a CSV row that came later); False if a better source won."""
        with self.transaction():
            return self._attach(call_id, given, source)

    def _attach(self, call_id: str, given: dict[str, str], source: str) -> bool:
        row = self.conn.execute("SELECT source, heard_agent_id FROM call_metadata WHERE call_id=?",
                                (call_id,)).fetchone()
        if row is not None and SOURCE_RANK.get(row["source"], 0) > SOURCE_RANK[source]:
            return False
        self._put_metadata(call_id, combine(given, source, row["heard_agent_id"] if row else None))
        return True

    def _put_metadata(self, call_id: str, meta: CallMetadata) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO call_metadata (call_id, agent_id, team, started_at, queue, direction, source, "
            "heard_agent_id, agent_id_mismatch, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, meta.agent_id, meta.team, meta.started_at, meta.queue, meta.direction, meta.source,
             meta.heard_agent_id, int(meta.agent_id_mismatch), now()))

    def paths_by_call(self) -> dict[str, list[str]]:
        """Every path each stored call was seen at, the latest first."""
        out: dict[str, list[str]] = {}
        for row in self.conn.execute("SELECT call_id, path FROM paths ORDER BY last_seen DESC"):
            out.setdefault(row["call_id"], []).append(row["path"])
        return out

    def metadata(self) -> dict[str, sqlite3.Row]:
        if "call_metadata" not in _tables(self.conn):
            return {}  # a store read-only from before call_metadata existed
        return {row["call_id"]: row for row in self.conn.execute("SELECT * FROM call_metadata")}

    def add_failure(self, key: FileKey, error: str, kind: str, run_id: int | None = None) -> None:
        """Record (or re-record, counting attempts) a recording that could not be analysed."""
        stamp = now()
        with self.transaction():
            self.conn.execute(
                "INSERT INTO failures (failure_key, call_id, path, size, mtime, error, kind, first_failed_at, "
                "last_failed_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(failure_key) DO UPDATE SET attempts=attempts+1, error=excluded.error, "
                "kind=excluded.kind, path=excluded.path, last_failed_at=excluded.last_failed_at, "
                "run_id=excluded.run_id",
                (key.failure_key, key.call_id, key.path, key.size, key.mtime, error, kind, stamp, stamp, run_id))
            if key.call_id:
                self._note_path(key.call_id, key.path)

    def add_reviews(self, rows: Iterable[dict[str, Any]], skip_bad: bool = False) -> tuple[int, list[str]]:
        """Store inspector scores (one per call and item; a re-import replaces) and mark the calls reviewed.

        Each row is checked against the stored call's rubric: the call must be in the store, the item
        in its rubric, the score a number (not a bool) from 0 to the item's points and inside one of
        its ``bands``; a (call, item) given twice is refused the second time. A row from
        :func:`qa_audio.batch.export.read_reviews` names its ``source`` and ``line`` (and carries
        ``problem`` when it could not be read). Returns (rows stored, the bad rows skipped as
        ``file:line: reason``). All or nothing: a bad row raises :class:`ReviewsRefused` listing every
        bad row and stores nothing, unless ``skip_bad``: then the good rows are stored.
        """
        stamp = now()
        problems: list[str] = []
        good: list[dict[str, Any]] = []
        with self.transaction():
            items: dict[str, dict[str, sqlite3.Row] | None] = {}
            seen: dict[tuple[str, str], str] = {}
            for index, row in enumerate(rows, start=1):
                where = (f"{row['source']}:{row['line']}" if row.get("source") is not None and row.get("line")
                         else f"row {row.get('line') or index}")
                call_id = row.get("call_id")
                if isinstance(call_id, str) and call_id not in items:
                    found = self.conn.execute("SELECT item_id, points, score, data FROM rubric_items WHERE call_id=?",
                                              (call_id,)).fetchall()
                    items[call_id] = {r["item_id"]: r for r in found} if self.has_call(call_id) else None
                reason = review_problem(row, items.get(call_id) if isinstance(call_id, str) else None)
                pair = (str(call_id), str(row.get("item_id")))
                if reason is None and pair in seen:
                    reason = f"call {_short(pair[0])} item {pair[1]} is already scored at {seen[pair]}"
                if reason is not None:
                    problems.append(f"{where}: {reason}")
                    continue
                seen[pair] = f"line {row['line']}" if row.get("line") else where
                good.append({**row, "prefill": items[call_id][row["item_id"]]["score"]})  # type: ignore[index]
            if problems and not skip_bad:
                raise ReviewsRefused(problems)
            for row in good:
                self.conn.execute(
                    "INSERT INTO reviews (call_id, item_id, inspector_score, inspector, reviewed_at, imported_at, "
                    "prefill, source) VALUES (?, ?, ?, ?, ?, ?, ?, 'import') ON CONFLICT(call_id, item_id) DO UPDATE "
                    "SET inspector_score=excluded.inspector_score, inspector=excluded.inspector, "
                    "reviewed_at=excluded.reviewed_at, imported_at=excluded.imported_at, source='import'",
                    (row["call_id"], row["item_id"], float(row["inspector_score"]), row.get("inspector"),
                     row.get("reviewed_at"), stamp, row["prefill"]))
                self.conn.execute("UPDATE calls SET status='reviewed' WHERE call_id=?", (row["call_id"],))
        return len(good), problems

    # ------------------------------------------------------------------ reads
    def calls(self, include_superseded: bool = False) -> list[sqlite3.Row]:
        where = "" if include_superseded else "WHERE superseded_by IS NULL"
        return self.conn.execute(f"SELECT * FROM calls {where} ORDER BY analysed_at, call_id").fetchall()

    def finding_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for row in self.conn.execute("SELECT call_id, rule, COUNT(*) AS n FROM findings GROUP BY call_id, rule"):
            counts.setdefault(row["call_id"], {})[row["rule"]] = row["n"]
        return counts

    def fatal_findings(self) -> set[str]:
        """Calls with a finding that alone fails them: a forbidden phrase of the 0-2 band (rubric 7b)."""
        rows = self.conn.execute("SELECT DISTINCT call_id FROM findings WHERE rule='forbidden_phrase' "
                                 "AND severity='0-2'")
        return {row[0] for row in rows}

    def severe_findings(self) -> set[str]:
        rows = self.conn.execute("SELECT DISTINCT call_id FROM findings WHERE rule='forbidden_phrase' "
                                 "AND severity='3-5'")
        return {row[0] for row in rows}

    def rubric_items(self) -> dict[str, list[sqlite3.Row]]:
        items: dict[str, list[sqlite3.Row]] = {}
        for row in self.conn.execute("SELECT * FROM rubric_items ORDER BY call_id, item_id"):
            items.setdefault(row["call_id"], []).append(row)
        return items

    def review_pairs(self) -> list[sqlite3.Row]:
        """(item, pre-filled score, inspector score, item JSON) for every reviewed item with a pre-fill."""
        return self.conn.execute(
            "SELECT r.call_id, r.item_id, i.score AS prefill, r.inspector_score AS inspector, i.points, i.data "
            "FROM reviews r JOIN rubric_items i ON i.call_id=r.call_id AND i.item_id=r.item_id "
            "JOIN calls c ON c.call_id=r.call_id WHERE c.status='reviewed' ORDER BY r.item_id, r.call_id"
        ).fetchall()

    def failures(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM failures ORDER BY last_failed_at, path").fetchall()

    def counts(self) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT (SELECT COUNT(*) FROM calls) AS calls, (SELECT COUNT(*) FROM failures) AS failures, "
            "(SELECT COUNT(*) FROM calls WHERE status='reviewed') AS reviewed").fetchone()
        return dict(row)

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])


def _queue_facts(findings: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(findings, any 0-2 band 服务忌语, any 3-5 band one): what the review queue sorts on beside the rubric."""
    bands = {f.get("severity") for f in findings if f.get("rule") == "forbidden_phrase"}
    return len(findings), int("0-2" in bands), int("3-5" in bands)


def _add_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for column, kind in columns.items():
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _first_moment(item: dict[str, Any]) -> tuple[float | None, str | None]:
    """(start, note) of an item's first evidence: where its coaching line links to."""
    evidence = item.get("evidence") or []
    first = evidence[0] if evidence and isinstance(evidence[0], dict) else {}
    return _number(first.get("start")), _text(first.get("note"))


def _metadata_of(result: dict[str, Any]) -> CallMetadata:
    """The result's ``call`` section; for a result from before it existed, the 工号 its greeting heard."""
    if isinstance(result.get("call"), dict):
        return CallMetadata.from_dict(result["call"])
    for finding in result.get("findings") or []:
        if finding.get("rule") == "greeting" and finding.get("agent_id_complete") and finding.get("agent_id_digits"):
            return combine(None, "none", str(finding["agent_id_digits"]))
    return CallMetadata()


def min_confidence(result: dict[str, Any]) -> float | None:
    """The lowest confidence of what the result decides: its ``auto`` rubric items and the role
    assignment. ``suggested`` items are leans for the inspector (their confidence is low by
    design); counting them would send most calls to the low-confidence queue."""
    values = [item.get("confidence") for item in (result.get("rubric") or {}).get("items") or []
              if item.get("status") == "auto"]
    values.append((result.get("roles") or {}).get("confidence"))
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return round(min(numbers), 4) if numbers else None


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def review_problem(row: dict[str, Any], items: dict[str, sqlite3.Row] | None) -> str | None:
    """Why a review row cannot be stored (None: it can); ``items`` are the call's rubric items, None
    when the call is not in the store."""
    if row.get("problem"):
        return str(row["problem"])
    call_id, item_id, score = row.get("call_id"), row.get("item_id"), row.get("inspector_score")
    if not isinstance(call_id, str) or not call_id:
        return "call_id must be text"
    if not isinstance(item_id, str) or not item_id:
        return "item_id must be text"
    for field in ("inspector", "reviewed_at"):
        if row.get(field) is not None and not isinstance(row[field], str):
            return f"{field} must be text"
    if isinstance(score, bool) or not isinstance(score, int | float):
        return f"inspector_score {str(score)[:20]!r} is not a number"
    if not math.isfinite(score):
        return "inspector_score must be finite"
    if items is None:
        return f"call {_short(call_id)} is not in the store"
    item = items.get(item_id)
    if item is None:
        if not items:
            return f"call {_short(call_id)} has no rubric items (analysed before the rubric existed)"
        known = ", ".join(sorted(items)[:20])
        return f"call {_short(call_id)} has no rubric item {item_id[:20]!r} (its items: {known})"
    data = json.loads(item["data"] or "{}")
    points = _number(item["points"]) if item["points"] is not None else _number(data.get("max"))
    if score < 0:
        return f"item {item_id}: score {score:g} is below 0"
    if points is not None and score > points:
        return f"item {item_id}: score {score:g} is above its {points:g} points"
    bands = item_bands(data)
    if bands and not any(low - 1e-9 <= score <= high + 1e-9 for low, high in bands):
        named = ", ".join(f"{low:g}" if low == high else f"{low:g}-{high:g}" for low, high in bands)
        return f"item {item_id}: score {score:g} is in none of its bands ({named})"
    return None


def _short(call_id: str) -> str:
    short = call_id if len(call_id) <= 16 else call_id[:12] + "…"
    return short if short.isprintable() else repr(short)


def is_sqlite_file(path: Path | str) -> bool:
    """Whether ``path`` is a file that starts with SQLite's header (an unreadable one: False)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def item_bands(item: dict[str, Any]) -> list[tuple[float, float]]:
    """A rubric item's ``bands`` as sorted (low, high) ranges; [] when it has none (or none readable)."""
    own = item.get("bands")
    parsed: list[tuple[float, float]] = []
    if isinstance(own, list):
        for band in own:
            try:
                if isinstance(band, str) and "-" in band:  # "0-2", as older results wrote them
                    low, high = band.split("-", 1)
                    parsed.append((float(low), float(high)))
                elif isinstance(band, list | tuple) and len(band) == 2:
                    parsed.append((float(band[0]), float(band[1])))
                elif isinstance(band, int | float | str) and not isinstance(band, bool):
                    parsed.append((float(band), float(band)))
            except (TypeError, ValueError):
                continue
    return sorted((low, high) for low, high in parsed if math.isfinite(low) and math.isfinite(high))


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """``mode=ro`` (never writes, never creates); ``immutable=1`` where the folder lets SQLite make no
    ``-wal``/``-shm`` file (a read-only mount), unless a ``-wal`` file holds changes it would miss."""
    if not path.exists():
        raise StoreError(f"{path}: no such database")
    if not path.is_file():
        raise StoreError(f"not a qa-audio store: {path} (not a file)")
    uri = path.absolute().as_uri()
    try:
        return _probe(sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout, isolation_level=None))
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
            raise StoreError(f"{path}: cannot read the database: {exc}") from exc
        wal = Path(f"{path}-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise StoreError(f"{path}: cannot read the store: its -wal file holds changes and SQLite cannot "
                             f"open it here ({exc}); read it where its folder is writable") from exc
    except sqlite3.DatabaseError as exc:
        raise _database_error(path, exc) from exc
    try:
        return _probe(sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=timeout,
                                      isolation_level=None))
    except sqlite3.DatabaseError as exc:
        raise _database_error(path, exc) from exc


def _probe(conn: sqlite3.Connection) -> sqlite3.Connection:
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        conn.execute("PRAGMA query_only=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _database_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    if exc.sqlite_errorname == "SQLITE_NOTADB":
        return StoreError(f"not a qa-audio store: {path} (not an SQLite database)")
    return StoreError(f"{path}: cannot read the database: {exc}")


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _store_kind(conn: sqlite3.Connection, path: Path) -> str:
    """``empty`` (a new file), ``marked`` (a qa-audio store) or ``legacy`` (made by an earlier qa-audio:
    its tables and ``store_version``, no marker); anything else is refused (StoreError)."""
    tables = _tables(conn)
    if not tables:
        return "empty"
    meta: dict[str, str] = {}
    if "meta" in tables:
        try:
            meta = {str(key): str(value) for key, value in conn.execute("SELECT key, value FROM meta")}
        except sqlite3.Error:
            meta = {}
    marked = meta.get("application") == APPLICATION
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(calls)")} if "calls" in tables else set()
    legacy = not marked and "store_version" in meta and {"call_id", "result_json"} <= columns
    if not (marked or legacy):
        raise StoreError(f"not a qa-audio store: {path} (an SQLite database without qa-audio's tables)")
    version = meta.get("store_version", "")
    if not version.isdigit():
        raise StoreError(f"not a qa-audio store: {path} (store_version {version[:20]!r})")
    if int(version) > STORE_VERSION:
        raise StoreError(f"{path}: store version {version} is newer than this qa-audio ({STORE_VERSION})")
    return "marked" if marked else "legacy"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
