"""The per-agent and per-team figures of ``qa-audio report``, computed in SQL over the batch store.

Every score is the inspector's where a review gave one (``reviews``) and the pre-score elsewhere,
and each figure says how many of its item scores were the inspector's. A call's date is its
``started_at`` (call metadata) where known, else the day it was analysed. Superseded calls and
calls without a sheet are left out. The heavy lifting (means, counts, weekly trend, ranking of
coaching examples) is SQL over indexed tables, so 100,000 calls take seconds (``bench/report.py``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from qa_audio.batch.export import parse_day
from qa_audio.batch.store import Store
from qa_audio.coaching.categories import Categories
from qa_audio.rubric.sheet import RubricSheet

UNKNOWN = "（未知）"
"""the group of calls whose agent (or team) is not known"""
GROUPINGS = ("agent", "team")
WORK_TABLES = ("scope", "finals", "totals")
"""the TEMP tables a report builds on its connection (``_scope``), dropped when it is done"""


@dataclass(frozen=True)
class ItemFigure:
    item_id: str
    name: str
    points: float
    mean: float | None
    beside: float | None
    """the same mean over the agent's team (a team report: over the whole centre)"""
    scored: int
    by_inspector: int


@dataclass(frozen=True)
class Moment:
    call_id: str
    path: str
    start: float | None
    note: str


@dataclass(frozen=True)
class Problem:
    category: str
    item_id: str
    item_name: str
    calls: int
    share: float
    severity: str
    frequency: str
    by_severity: dict[str, int]


@dataclass(frozen=True)
class CoachingLine:
    advice: str
    calls: int
    moments: list[Moment]


@dataclass(frozen=True)
class WeekPoint:
    week: str
    """the Monday of the week, YYYY-MM-DD"""
    calls: int
    mean_share: float | None
    """mean total / maximum over the week's calls"""


@dataclass
class GroupFigures:
    key: str
    team: str | None
    calls: int
    reviewed: int
    mean_total: float | None
    max_total: float | None
    fatal: int
    needs_review: int
    agent_id_mismatch: int
    item_scores: int
    inspector_scores: int
    items: list[ItemFigure] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    coaching: list[CoachingLine] = field(default_factory=list)
    trend: list[WeekPoint] = field(default_factory=list)
    rule_rates: dict[str, Any] = field(default_factory=dict)
    listen_first: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    by: str
    since: str | None
    until: str | None
    sheet_title: str
    groups: list[GroupFigures]
    centre: GroupFigures
    calls: int
    undated: int
    """calls dated by their analysis day (no started_at)"""


def build_report(store: Store, sheet: RubricSheet, categories: Categories, by: str,
                 since: str | None = None, until: str | None = None) -> Report:
    if by not in GROUPINGS:
        raise ValueError(f"--by {by!r}: agent or team")
    since, until = parse_day(since, "since"), parse_day(until, "until")
    with _working(store.conn) as conn:
        return _build(conn, sheet, categories, by, since, until)


@contextmanager
def _working(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """The connection ready for TEMP work tables (in memory, this connection only): a read-only store
    (mode=ro) stays unwritable; only the guard against writing the temp schema is lifted meanwhile."""
    query_only = conn.execute("PRAGMA query_only").fetchone()[0]
    conn.execute("PRAGMA query_only=OFF")
    conn.execute("PRAGMA temp_store=MEMORY")
    # the report reads most of the store: map it and cache more pages than the default 2 MB
    conn.execute("PRAGMA mmap_size=2147483648")
    conn.execute("PRAGMA cache_size=-262144")
    try:
        yield conn
    finally:
        _drop_work_tables(conn)
        conn.execute(f"PRAGMA query_only={int(query_only)}")


def _build(conn: sqlite3.Connection, sheet: RubricSheet, categories: Categories, by: str, since: str | None,
           until: str | None) -> Report:
    _scope(conn, by, since, until)
    names = {item.id: item.name for item in sheet.items}
    points = {item.id: item.points for item in sheet.items}
    groups = {row["grp"]: _group(row) for row in conn.execute(SUMMARY_SQL.format(key="grp"))}
    centre_rows = list(conn.execute(SUMMARY_SQL.format(key="'全部'")))
    centre = _group(centre_rows[0]) if centre_rows and centre_rows[0]["calls"] else _empty("全部")

    (means, team_means, centre_means), losses, advised = _item_pass(conn)
    beside = team_means if by == "agent" else centre_means
    for key, group in [*groups.items(), ("全部", centre)]:
        group.item_scores = sum(n for _, n, _ in means.get(key, centre_means.get(key, {})).values())
    for group in groups.values():
        other = group.team if by == "agent" else "全部"
        group.items = _items(sheet, names, points, means.get(group.key, {}), beside.get(other or "", {}))
    centre.items = _items(sheet, names, points, centre_means.get("全部", {}), {})

    _problems(losses, groups, centre, categories, names)
    for key, lines in _coaching(conn, advised, categories.coaching_calls_per_line).items():
        (centre if key is None else groups[key]).coaching = lines
    _trend(conn, groups, centre)
    if by == "team":
        for key, rates in _rule_rates(conn, {k: g.calls for k, g in groups.items()} | {None: centre.calls}).items():
            (groups[key] if key is not None else centre).rule_rates = rates
        for key, calls in _listen_first(conn, categories.listen_first).items():
            (groups[key] if key is not None else centre).listen_first = calls
    undated = conn.execute("SELECT COUNT(*) FROM scope WHERE NOT dated").fetchone()[0]
    ordered = sorted(groups.values(), key=lambda g: (g.key == UNKNOWN, g.key))
    return Report(by=by, since=since, until=until, sheet_title=sheet.title, groups=ordered, centre=centre,
                  calls=centre.calls, undated=undated)


# --------------------------------------------------------------------------- SQL


def _scope(conn: sqlite3.Connection, by: str, since: str | None, until: str | None) -> None:
    """TEMP tables: the calls in the period (``scope``), their item scores (``finals``), their totals."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    metadata = ("call_metadata" if "call_metadata" in tables else
                "(SELECT NULL AS call_id, NULL AS agent_id, NULL AS team, NULL AS started_at, "
                "0 AS agent_id_mismatch WHERE 0)")
    key = "m.agent_id" if by == "agent" else "m.team"
    _drop_work_tables(conn)
    conn.execute(f"""
        CREATE TEMP TABLE scope AS
        SELECT c.call_id, c.path, COALESCE(NULLIF({key}, ''), '{UNKNOWN}') AS grp,
               COALESCE(NULLIF(m.team, ''), '{UNKNOWN}') AS team,
               substr(COALESCE(m.started_at, c.analysed_at), 1, 10) AS day, m.started_at IS NOT NULL AS dated,
               c.flags LIKE '%"fatal"%' AS fatal, c.flags LIKE '%"needs_review"%' AS needs_review,
               c.status = 'reviewed' AS reviewed, c.total AS prescore_total, c.max_total,
               COALESCE(m.agent_id_mismatch, 0) AS mismatch
        FROM calls c LEFT JOIN {metadata} m ON m.call_id = c.call_id
        WHERE c.superseded_by IS NULL AND c.total IS NOT NULL""")
    if since:
        conn.execute("DELETE FROM scope WHERE day < ?", (since,))
    if until:
        conn.execute("DELETE FROM scope WHERE day > ?", (until,))
    conn.execute("CREATE INDEX temp.scope_call ON scope(call_id)")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(rubric_items)")}
    if "advice" in columns:
        extra = "ri.advice, ri.moment, ri.moment_note"
    else:  # a version-1 store opened read-only: the same from the JSON, slower
        extra = ("COALESCE(json_extract(ri.data, '$.advice'), '[]') AS advice, "
                 "json_extract(ri.data, '$.evidence[0].start') AS moment, "
                 "json_extract(ri.data, '$.evidence[0].note') AS moment_note")
    conn.execute(f"""
        CREATE TEMP TABLE finals AS
        SELECT s.call_id, s.grp, s.team, s.fatal, ri.item_id, ri.points,
               COALESCE(rv.inspector_score, ri.score) AS final, rv.inspector_score IS NOT NULL AS by_inspector,
               {extra}
        FROM scope s JOIN rubric_items ri ON ri.call_id = s.call_id
        LEFT JOIN reviews rv ON rv.call_id = ri.call_id AND rv.item_id = ri.item_id
        WHERE COALESCE(rv.inspector_score, ri.score) IS NOT NULL""")
    # a call's total: its stored pre-score total, moved by the inspector's scores where reviewed
    # (reviews are few: no pass over every item score)
    conn.execute("""
        CREATE TEMP TABLE totals AS
        SELECT s.call_id, s.prescore_total + COALESCE(r.adjust, 0) AS total, COALESCE(r.n, 0) AS inspector
        FROM scope s LEFT JOIN (
            SELECT rv.call_id, SUM(rv.inspector_score - COALESCE(ri.score, 0)) AS adjust, COUNT(*) AS n
            FROM reviews rv JOIN rubric_items ri ON ri.call_id = rv.call_id AND ri.item_id = rv.item_id
            GROUP BY rv.call_id) r ON r.call_id = s.call_id""")
    conn.execute("CREATE INDEX temp.totals_call ON totals(call_id)")


def _drop_work_tables(conn: sqlite3.Connection) -> None:
    for table in WORK_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")


SUMMARY_SQL = """
SELECT {key} AS grp, MAX(s.team) AS team, COUNT(*) AS calls, SUM(s.reviewed) AS reviewed,
       AVG(t.total) AS mean_total, AVG(s.max_total) AS max_total, SUM(s.fatal) AS fatal,
       SUM(s.needs_review) AS needs_review, SUM(s.mismatch) AS mismatch,
       COALESCE(SUM(t.inspector), 0) AS inspector_scores
FROM scope s LEFT JOIN totals t ON t.call_id = s.call_id GROUP BY 1"""


def _group(row: sqlite3.Row) -> GroupFigures:
    return GroupFigures(key=row["grp"], team=row["team"], calls=row["calls"], reviewed=row["reviewed"] or 0,
                        mean_total=_round(row["mean_total"]), max_total=_round(row["max_total"]),
                        fatal=row["fatal"] or 0, needs_review=row["needs_review"] or 0,
                        agent_id_mismatch=row["mismatch"] or 0, item_scores=0,
                        inspector_scores=row["inspector_scores"])


def _empty(key: str) -> GroupFigures:
    return GroupFigures(key=key, team=None, calls=0, reviewed=0, mean_total=None, max_total=None, fatal=0,
                        needs_review=0, agent_id_mismatch=0, item_scores=0, inspector_scores=0)


def _item_pass(conn: sqlite3.Connection) -> tuple[tuple[dict, dict, dict], list[tuple], list[tuple]]:
    """One pass over the item scores: the item means by group, by team and over the centre; the
    losses, (group, item, call fatal, lost share, calls), for the problems; and (group, item, score,
    advice lines, calls) of the losses that carry advice, for the coaching lines."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    losses, advised = [], []
    for grp, team, item_id, total, n, insp in conn.execute(
            "SELECT grp, team, item_id, SUM(final), COUNT(*), SUM(by_inspector) FROM finals GROUP BY 1, 2, 3"):
        sums[(grp, team, item_id)] = [total, n, insp]
    # the losses apart: a quarter of the rows, grouped with their advice (text) only there
    # (SQLite gives the bare columns moment, moment_note of the row whose call_id is the MIN: each
    # group of losses brings one example call with the moment behind it, at no extra pass)
    for grp, item_id, fatal, final, points, advice, n, call_id, moment, note in conn.execute(
            "SELECT grp, item_id, fatal, final, points, advice, COUNT(*), MIN(call_id), moment, moment_note "
            "FROM finals WHERE final < points GROUP BY 1, 2, 3, 4, 6"):
        losses.append((grp, item_id, bool(fatal), (points - final) / points if points else 0.0, n))
        if advice and advice != "[]":
            advised.append((grp, item_id, final, points, json.loads(advice), n, (call_id, moment, note)))
    out: tuple[dict, dict, dict] = ({}, {}, {})
    for (grp, team, item_id), (total, n, insp) in sums.items():
        for table, key in zip(out, (grp, team, "全部"), strict=True):
            acc = table.setdefault(key, {}).setdefault(item_id, [0.0, 0, 0])
            acc[0] += total
            acc[1] += n
            acc[2] += insp
    means = tuple({k: {i: (a[0] / a[1], a[1], a[2]) for i, a in v.items()} for k, v in t.items()} for t in out)
    return means, losses, advised  # type: ignore[return-value]


def _items(sheet: RubricSheet, names: dict[str, str], points: dict[str, float],
           own: dict[str, tuple[float, int, int]], beside: dict[str, tuple[float, int, int]]) -> list[ItemFigure]:
    out = []
    for item in sheet.items:
        mean, n, insp = own.get(item.id, (None, 0, 0))
        other = beside.get(item.id)
        out.append(ItemFigure(item.id, names[item.id], points[item.id], _round(mean),
                              _round(other[0]) if other else None, n, insp or 0))
    return out


def _problems(losses: list[tuple], groups: dict[str, GroupFigures], centre: GroupFigures,
              categories: Categories, names: dict[str, str]) -> None:
    """Items that lost points, graded per call by categories.yaml, ranked worst and most often first."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for grp, item_id, fatal, lost, n in losses:
        level = categories.grade(item_id, lost, fatal)
        for key in (grp, None):
            levels = counts.setdefault((key or "", item_id), {})
            levels[level] = levels.get(level, 0) + n
    for (key, item_id), levels in counts.items():
        group = groups.get(key) if key else centre
        if group is None or not group.calls:
            continue
        calls = sum(levels.values())
        worst = min(levels, key=categories.rank_of)
        share = calls / group.calls
        group.problems.append(Problem(
            category=categories.category_of.get(item_id, "其他"), item_id=item_id,
            item_name=names.get(item_id, item_id),
            calls=calls, share=round(share, 3), severity=worst,
            frequency="经常" if share >= categories.often_share else "偶尔", by_severity=levels))
    for group in [*groups.values(), centre]:
        group.problems.sort(key=lambda p: (categories.rank_of(p.severity), -p.calls, p.item_id))


def _coaching(conn: sqlite3.Connection, advised: list[tuple], per_line: int) -> dict[str | None, list[CoachingLine]]:
    """The sheet's advice lines of the items that lost points, each with calls behind it: from the
    groups of losses that lost the most points on it (one example call each, by call id); by
    group, key None for the centre."""
    counts: dict[tuple[str | None, str], int] = {}
    examples: dict[tuple[str | None, str], list[tuple]] = {}
    for grp, _, final, points, lines, n, example in advised:
        for line in lines:
            for key in ((grp, line), (None, line)):
                counts[key] = counts.get(key, 0) + n
                examples.setdefault(key, []).append((final - points, example[0], example))
    chosen = {key: [e for _, _, e in sorted(found)[:per_line]] for key, found in examples.items()}
    ids = sorted({e[0] for found in chosen.values() for e in found})
    paths: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        batch = ids[start:start + 500]
        paths.update(conn.execute(f"SELECT call_id, path FROM scope WHERE call_id IN ({','.join('?' * len(batch))})",
                                  batch).fetchall())
    out: dict[str | None, list[CoachingLine]] = {}
    for (key, line), n in counts.items():
        moments = [Moment(call_id, paths.get(call_id, ""), moment, note or "") for call_id, moment, note in
                   chosen[(key, line)]]
        out.setdefault(key, []).append(CoachingLine(line, n, _unique(moments)))
    for lines in out.values():
        lines.sort(key=lambda line: (-line.calls, line.advice))
    return out


def _unique(moments: list[Moment]) -> list[Moment]:
    seen: set[str] = set()
    return [m for m in moments if not (m.call_id in seen or seen.add(m.call_id))]


def _trend(conn: sqlite3.Connection, groups: dict[str, GroupFigures], centre: GroupFigures) -> None:
    """Calls and mean score share week by week (weeks start on Monday); the centre's from the groups'."""
    centre_weeks: dict[str, list[float]] = {}
    for grp, week, calls, shares, scored in conn.execute("""
            SELECT s.grp, date(s.day, '-' || ((CAST(strftime('%w', s.day) AS INTEGER) + 6) % 7) || ' days'),
                   COUNT(*), SUM(t.total / NULLIF(s.max_total, 0)), COUNT(t.total / NULLIF(s.max_total, 0))
            FROM scope s JOIN totals t ON t.call_id = s.call_id GROUP BY 1, 2 ORDER BY 2"""):
        if not week:
            continue
        acc = centre_weeks.setdefault(week, [0, 0.0, 0])
        acc[0] += calls
        acc[1] += shares or 0.0
        acc[2] += scored
        group = groups.get(grp)
        if group is not None:
            group.trend.append(WeekPoint(week, calls, _round(shares / scored, 4) if scored else None))
    centre.trend = [WeekPoint(week, int(calls), _round(shares / scored, 4) if scored else None)
                    for week, (calls, shares, scored) in sorted(centre_weeks.items())]


def _rule_rates(conn: sqlite3.Connection, calls: dict[str | None, int]) -> dict[str | None, dict[str, Any]]:
    """What the centre's rules heard, per team and (key None) over the centre: each forbidden phrase,
    dead air, answer delay, pace outliers. Teams split the calls, so the centre's counts are their sums."""
    def share(key: str | None, n: int) -> float | None:
        return round(n / calls[key], 3) if calls.get(key) else None

    out: dict[str | None, dict[str, Any]] = {
        key: {"forbidden_phrases": {}, "dead_air_calls": 0, "delay_sum": 0.0, "delay_n": 0,
              "answer_delay_over_limit": 0, "speech_rate_outlier_calls": 0} for key in calls}
    for grp, phrase, n in conn.execute("""
            SELECT s.grp, json_extract(f.data, '$.phrase'), COUNT(DISTINCT f.call_id) FROM findings f
            JOIN scope s ON s.call_id = f.call_id WHERE f.rule = 'forbidden_phrase' AND f.role = 'agent'
            GROUP BY 1, 2"""):
        for key in (grp, None):
            if key in out:
                out[key]["forbidden_phrases"][phrase] = out[key]["forbidden_phrases"].get(phrase, 0) + n
    for grp, dead_air, delay_sum, delay_n, over, pace in conn.execute("""
            SELECT s.grp,
                   COUNT(DISTINCT CASE WHEN f.rule = 'silence' AND json_extract(f.data, '$.hold_notice') = 0
                                  THEN f.call_id END),
                   SUM(CASE WHEN f.rule = 'answer_delay' THEN json_extract(f.data, '$.seconds') END),
                   COUNT(CASE WHEN f.rule = 'answer_delay' THEN json_extract(f.data, '$.seconds') END),
                   SUM(f.rule = 'answer_delay' AND json_extract(f.data, '$.within_limit') = 0),
                   COUNT(DISTINCT CASE WHEN f.rule = 'speech_rate' AND f.role = 'agent' THEN f.call_id END)
            FROM findings f JOIN scope s ON s.call_id = f.call_id
            WHERE f.rule IN ('silence', 'answer_delay', 'speech_rate') GROUP BY 1"""):
        for key in (grp, None):
            if key in out:
                rates = out[key]
                rates["dead_air_calls"] += dead_air
                rates["delay_sum"] += delay_sum or 0.0
                rates["delay_n"] += delay_n
                rates["answer_delay_over_limit"] += over or 0
                rates["speech_rate_outlier_calls"] += pace
    for key, rates in out.items():
        phrases = sorted(rates.pop("forbidden_phrases").items(), key=lambda kv: (-kv[1], kv[0]))
        rates["forbidden_phrases"] = [{"phrase": p, "calls": n, "share": share(key, n)} for p, n in phrases]
        delay_sum, delay_n = rates.pop("delay_sum"), rates.pop("delay_n")
        rates["answer_delay_mean_s"] = _round(delay_sum / delay_n) if delay_n else None
        rates["dead_air_share"] = share(key, rates["dead_air_calls"])
        rates["speech_rate_outlier_share"] = share(key, rates["speech_rate_outlier_calls"])
    return out


def _listen_first(conn: sqlite3.Connection, limit: int) -> dict[str | None, list[dict[str, Any]]]:
    """The calls to listen to first, per team and (key None) over the centre: fatal, then flagged for
    review, then the lowest totals; one sort for all teams, the centre's first are among theirs."""
    out: dict[str | None, list[dict[str, Any]]] = {}
    rows = conn.execute("""
        SELECT * FROM (
            SELECT s.grp AS k, s.call_id, s.path, s.day, s.fatal, s.needs_review, t.total, s.max_total,
                   t.total / NULLIF(s.max_total, 0) AS share,
                   ROW_NUMBER() OVER (PARTITION BY s.grp ORDER BY s.fatal DESC, s.needs_review DESC,
                                      t.total / NULLIF(s.max_total, 0), s.call_id) AS rank
            FROM scope s JOIN totals t ON t.call_id = s.call_id)
        WHERE rank <= ? ORDER BY k, rank""", (limit,))
    everyone = []
    for row in rows:
        item = {k: row[k] for k in ("call_id", "path", "day", "fatal", "needs_review", "total", "max_total")}
        out.setdefault(row["k"], []).append(item)
        everyone.append(((-row["fatal"], -row["needs_review"], row["share"] is not None, row["share"] or 0.0,
                          row["call_id"]), item))
    # the same order as the SQL's (SQLite sorts NULL first)
    out[None] = [item for _, item in sorted(everyone, key=lambda e: e[0])[:limit]]
    return out


def _round(value: Any, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)
