"""The review queue's order, in one SQL query: what ``export`` writes and the workbench's queue page shows.

Order: ``fatal`` (a fatal flag, or a 0-2 band 服务忌语), then ``low_confidence`` (``needs_review`` or an
auto item or the roles under ``low_confidence``, least sure first), then ``low_total`` (under
``low_total`` of the points; before the rubric existed, a 3-5 band 服务忌语), each worst first (lowest
share of the points, least sure, most findings), then the random sample (抽检) of the rest.

The sample is the first ``sample`` of the other calls in the order of their hash from a pivot that
the seed gives (sha256 of the seed), wrapping round. A recording's sha256 is uniform, so this is a
random draw; the same seed draws the same calls, and a call joining the store leaves the others
drawn unless it falls in the sample itself.

Why SQL: the workbench pages through 100,000 calls. Both queries (the draw, then the sorted page
with its count) read the covering index ``calls_queue`` (``qa_audio/batch/store.py``), never the
calls' rows with their result JSON, and sort in SQLite: measured in ``bench/workbench.py`` at
100,000 calls, 0.2-0.4 s a page on 2 cores, the date-bounded queue 0.05 s.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass, field
from typing import Any

REASONS = ("fatal", "low_confidence", "low_total", "random_sample", "routine")
"""in review order; ``routine`` only with ``everything``"""


@dataclass(frozen=True)
class QueueFilter:
    """Which calls, and how the queue's reasons are drawn. Dates are YYYY-MM-DD (checked by the caller)."""

    status: str = "pending_review"
    """pending_review, reviewed or all"""
    since: str | None = None
    until: str | None = None
    flags: tuple[str, ...] = ()
    sample: int = 10
    seed: int | str | None = None
    """None: a new draw each time"""
    low_confidence: float = 0.6
    low_total: float = 0.6
    everything: bool = False
    agent: str | None = None
    """call_metadata.agent_id"""
    assigned_to: str | None = None
    """calls assigned to this inspector"""
    extra_where: tuple[str, ...] = field(default=())
    """further SQL conditions on ``c`` (calls); only from the workbench's own code, never from a request"""
    extra_params: tuple[Any, ...] = field(default=())


def sample_pivot(seed: int | str | None) -> str:
    """The hash position the random sample starts from."""
    if seed is None:
        return secrets.token_hex(32)
    return hashlib.sha256(str(seed).encode()).hexdigest()


def _parts(conn: sqlite3.Connection, queue: QueueFilter) -> tuple[str, str, list[Any], str]:
    """(FROM … WHERE … of the filtered calls, the CASE giving a call's class 0-3, their parameters, the
    finding count's column)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    if "finding_count" in columns:
        facts_join, facts, fatal, severe = "", "c.finding_count", "c.fatal_finding", "c.severe_finding"
    else:  # a store of version 2 or older opened read-only: the same facts from the findings, once
        facts_join = ("LEFT JOIN (SELECT call_id, COUNT(*) AS n, MAX(rule = 'forbidden_phrase' AND severity = '0-2') "
                      "AS fatal, MAX(rule = 'forbidden_phrase' AND severity = '3-5') AS severe FROM findings "
                      "GROUP BY call_id) f ON f.call_id = c.call_id")
        facts, fatal, severe = "COALESCE(f.n, 0)", "COALESCE(f.fatal, 0)", "COALESCE(f.severe, 0)"
    where = ["c.superseded_by IS NULL"]
    params: list[Any] = []
    if queue.status != "all":
        where.append("c.status = ?")
        params.append(queue.status)
    if queue.since:
        where.append("c.analysed_at >= ?")
        params.append(queue.since)
    if queue.until:
        where.append("substr(c.analysed_at, 1, 10) <= ?")
        params.append(queue.until)
    for flag in queue.flags:
        where.append("EXISTS (SELECT 1 FROM json_each(c.flags) WHERE value = ?)")
        params.append(flag)
    joins = [facts_join]
    if queue.agent is not None:
        where.append("c.call_id IN (SELECT call_id FROM call_metadata WHERE agent_id = ?)")
        params.append(queue.agent)
    if queue.assigned_to is not None:
        where.append("c.call_id IN (SELECT call_id FROM assignments WHERE inspector = ?)")
        params.append(queue.assigned_to)
    where.extend(queue.extra_where)
    params.extend(queue.extra_params)
    class_sql = f"""CASE
        WHEN {fatal} OR c.flags LIKE '%"fatal"%' THEN 0
        WHEN c.flags LIKE '%"needs_review"%' OR c.min_confidence < ? THEN 1
        WHEN (c.total IS NOT NULL AND c.max_total AND c.total * 1.0 / c.max_total < ?)
             OR (c.total IS NULL AND {severe}) THEN 2
        ELSE 3 END"""
    return f"FROM calls c {' '.join(joins)} WHERE {' AND '.join(where)}", class_sql, params, facts


@dataclass(frozen=True)
class QueuePage:
    rows: list[tuple[int, str, str]]
    """(priority, call_id, reason) in review order"""
    total: int
    """calls in the whole queue"""


def queue_page(conn: sqlite3.Connection, queue: QueueFilter, limit: int | None = None, offset: int = 0) -> QueuePage:
    """One page of the queue (all of it without ``limit``), and how many calls the whole queue holds.

    Two queries: the sample (the routine calls at or after the pivot in hash order, then from the
    start, ``sample`` of them); then the fatal, low-confidence and low-total calls with the drawn
    ones, sorted, with their count from the same pass (``COUNT(*) OVER ()``).
    """
    source, class_sql, params, findings = _parts(conn, queue)
    thresholds = [queue.low_confidence, queue.low_total]
    sample = max(0, int(queue.sample))
    drawn: list[str] = []
    if sample:
        pivot = sample_pivot(queue.seed)
        for side in (">=", "<"):
            if len(drawn) < sample:
                drawn += [row[0] for row in conn.execute(
                    f"SELECT c.call_id {source} AND c.call_id {side} ? AND {class_sql} = 3 ORDER BY c.call_id "
                    "LIMIT ?", [*params, pivot, *thresholds, sample - len(drawn)])]
    values = ", ".join("(?, ?)" for _ in drawn) or "(NULL, NULL)"
    keep = "1" if queue.everything else "(class < 3 OR d.n IS NOT NULL)"
    sql = f"""
WITH drawn(call_id, n) AS (VALUES {values})
SELECT q.call_id, q.class, d.n IS NOT NULL AS drawn, COUNT(*) OVER () AS total FROM (
    SELECT c.call_id, {class_sql} AS class, c.min_confidence, {findings} AS finding_count,
           CASE WHEN c.total IS NOT NULL AND c.max_total THEN c.total * 1.0 / c.max_total END AS share
    {source}) q LEFT JOIN drawn d ON d.call_id = q.call_id
WHERE {keep}
ORDER BY q.class,
         CASE WHEN q.class = 1 THEN COALESCE(q.min_confidence, 1.0) ELSE 0 END,
         CASE WHEN q.class = 3 THEN d.n IS NULL ELSE 0 END,
         CASE WHEN q.class = 3 THEN COALESCE(d.n, 0) ELSE 0 END,
         CASE WHEN q.class < 3 THEN q.share IS NULL ELSE 0 END,
         CASE WHEN q.class < 3 THEN COALESCE(q.share, 0.0) ELSE 0 END,
         CASE WHEN q.class < 3 THEN COALESCE(q.min_confidence, 1.0) ELSE 0 END,
         CASE WHEN q.class < 3 THEN -q.finding_count ELSE 0 END,
         q.call_id"""
    arguments = [value for n, call_id in enumerate(drawn) for value in (call_id, n)] + thresholds + params
    rows = (conn.execute(sql, arguments).fetchall() if limit is None else
            conn.execute(sql + " LIMIT ? OFFSET ?", [*arguments, int(limit), int(offset)]).fetchall())
    if rows or not offset:
        total = int(rows[0][3]) if rows else 0
    else:  # past the end: the count from the first row
        first = conn.execute(sql + " LIMIT 1", arguments).fetchone()
        total = int(first[3]) if first else 0
    page = [(n, row[0], _reason(row[1], bool(row[2]))) for n, row in enumerate(rows, start=offset + 1)]
    return QueuePage(page, total)


def _reason(klass: int, drawn: bool) -> str:
    return REASONS[klass] if klass < 3 else ("random_sample" if drawn else "routine")
