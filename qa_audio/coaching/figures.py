"""The per-agent and per-team figures of ``qa-audio report``, computed in SQL over the batch store.

Every score is the inspector's where a review gave one (``reviews``) and the pre-score elsewhere,
and each figure says how many of its item scores were the inspector's. A call's date is its
``started_at`` (call metadata) where known, else the day it was analysed. Superseded calls and
calls without a sheet are left out. The heavy lifting (means, counts, weekly trend, ranking of
coaching examples) is SQL over indexed tables, so 100,000 calls take seconds (``bench/report.py``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from qa_audio.batch.export import parse_day
from qa_audio.batch.store import Store
from qa_audio.coaching.categories import Categories
from qa_audio.rubric.sheet import RubricSheet

UNKNOWN = "（未知）"
"""the group of calls whose agent (or team) is not known"""
GROUPINGS = ("agent", "team")


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
    conn = store.conn
    # The working tables are TEMP (in memory, this connection only): a read-only store (mode=ro)
    # stays unwritable, only the guard against writing the temp schema is lifted meanwhile.
    query_only = conn.execute("PRAGMA query_only").fetchone()[0]
    conn.execute("PRAGMA query_only=OFF")
    conn.execute("PRAGMA temp_store=MEMORY")
    try:
        return _build(conn, sheet, categories, by, since, until)
    finally:
        for table in ("scope", "finals", "totals"):
            conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
        conn.execute(f"PRAGMA query_only={int(query_only)}")


def _build(conn: sqlite3.Connection, sheet: RubricSheet, categories: Categories, by: str, since: str | None,
           until: str | None) -> Report:
    _scope(conn, by, since, until)
    names = {item.id: item.name for item in sheet.items}
    points = {item.id: item.points for item in sheet.items}
    groups = {row["grp"]: _group(row) for row in conn.execute(SUMMARY_SQL.format(key="grp"))}
    centre_rows = list(conn.execute(SUMMARY_SQL.format(key="'全部'")))
    centre = _group(centre_rows[0]) if centre_rows and centre_rows[0]["calls"] else _empty("全部")

    means = _means(conn, "grp")
    beside_key = "team" if by == "agent" else "'全部'"
    beside = _means(conn, beside_key)
    centre_means = _means(conn, "'全部'")
    for group in groups.values():
        other = group.team if by == "agent" else "全部"
        group.items = _items(sheet, names, points, means.get(group.key, {}), beside.get(other or "", {}))
    centre.items = _items(sheet, names, points, centre_means.get("全部", {}), {})

    _problems(conn, groups, centre, categories, names)
    _coaching(conn, groups, centre, categories.coaching_calls_per_line)
    _trend(conn, groups, centre)
    if by == "team":
        for key, group in list(groups.items()) + [("全部", centre)]:
            group.rule_rates = _rule_rates(conn, key if group is not centre else None, group.calls)
            group.listen_first = _listen_first(conn, key if group is not centre else None, categories.listen_first)
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
    for table in ("scope", "finals", "totals"):
        conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
    conn.execute(f"""
        CREATE TEMP TABLE scope AS
        SELECT c.call_id, c.path, COALESCE(NULLIF({key}, ''), '{UNKNOWN}') AS grp,
               COALESCE(NULLIF(m.team, ''), '{UNKNOWN}') AS team,
               substr(COALESCE(m.started_at, c.analysed_at), 1, 10) AS day, m.started_at IS NOT NULL AS dated,
               c.flags LIKE '%"fatal"%' AS fatal, c.flags LIKE '%"needs_review"%' AS needs_review,
               c.status = 'reviewed' AS reviewed, c.max_total, COALESCE(m.agent_id_mismatch, 0) AS mismatch
        FROM calls c LEFT JOIN {metadata} m ON m.call_id = c.call_id
        WHERE c.superseded_by IS NULL AND c.total IS NOT NULL""")
    if since:
        conn.execute("DELETE FROM scope WHERE day < ?", (since,))
    if until:
        conn.execute("DELETE FROM scope WHERE day > ?", (until,))
    conn.execute("CREATE INDEX temp.scope_call ON scope(call_id)")
    conn.execute("""
        CREATE TEMP TABLE finals AS
        SELECT s.call_id, s.grp, s.team, ri.item_id, ri.points, COALESCE(rv.inspector_score, ri.score) AS final,
               rv.inspector_score IS NOT NULL AS by_inspector
        FROM scope s JOIN rubric_items ri ON ri.call_id = s.call_id
        LEFT JOIN reviews rv ON rv.call_id = ri.call_id AND rv.item_id = ri.item_id
        WHERE COALESCE(rv.inspector_score, ri.score) IS NOT NULL""")
    conn.execute("CREATE INDEX temp.finals_call ON finals(call_id, item_id)")
    conn.execute("""
        CREATE TEMP TABLE totals AS
        SELECT call_id, SUM(final) AS total, SUM(by_inspector) AS inspector, COUNT(*) AS scored
        FROM finals GROUP BY call_id""")
    conn.execute("CREATE INDEX temp.totals_call ON totals(call_id)")


SUMMARY_SQL = """
SELECT {key} AS grp, MAX(s.team) AS team, COUNT(*) AS calls, SUM(s.reviewed) AS reviewed,
       AVG(t.total) AS mean_total, AVG(s.max_total) AS max_total, SUM(s.fatal) AS fatal,
       SUM(s.needs_review) AS needs_review, SUM(s.mismatch) AS mismatch,
       COALESCE(SUM(t.scored), 0) AS item_scores, COALESCE(SUM(t.inspector), 0) AS inspector_scores
FROM scope s LEFT JOIN totals t ON t.call_id = s.call_id GROUP BY 1"""


def _group(row: sqlite3.Row) -> GroupFigures:
    return GroupFigures(key=row["grp"], team=row["team"], calls=row["calls"], reviewed=row["reviewed"] or 0,
                        mean_total=_round(row["mean_total"]), max_total=_round(row["max_total"]),
                        fatal=row["fatal"] or 0, needs_review=row["needs_review"] or 0,
                        agent_id_mismatch=row["mismatch"] or 0, item_scores=row["item_scores"],
                        inspector_scores=row["inspector_scores"])


def _empty(key: str) -> GroupFigures:
    return GroupFigures(key=key, team=None, calls=0, reviewed=0, mean_total=None, max_total=None, fatal=0,
                        needs_review=0, agent_id_mismatch=0, item_scores=0, inspector_scores=0)


def _means(conn: sqlite3.Connection, key: str) -> dict[str, dict[str, tuple[float, int, int]]]:
    out: dict[str, dict[str, tuple[float, int, int]]] = {}
    sql = (f"SELECT {key} AS k, item_id, AVG(final) AS mean, COUNT(*) AS n, SUM(by_inspector) AS insp "
           "FROM finals GROUP BY 1, 2")
    for row in conn.execute(sql):
        out.setdefault(row["k"], {})[row["item_id"]] = (row["mean"], row["n"], row["insp"])
    return out


def _items(sheet: RubricSheet, names: dict[str, str], points: dict[str, float],
           own: dict[str, tuple[float, int, int]], beside: dict[str, tuple[float, int, int]]) -> list[ItemFigure]:
    out = []
    for item in sheet.items:
        mean, n, insp = own.get(item.id, (None, 0, 0))
        other = beside.get(item.id)
        out.append(ItemFigure(item.id, names[item.id], points[item.id], _round(mean),
                              _round(other[0]) if other else None, n, insp or 0))
    return out


def _problems(conn: sqlite3.Connection, groups: dict[str, GroupFigures], centre: GroupFigures,
              categories: Categories, names: dict[str, str]) -> None:
    """Items that lost points, graded per call by categories.yaml, ranked worst and most often first."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for row in conn.execute("""
            SELECT f.grp, f.item_id, s.fatal, CASE WHEN f.points > 0 THEN (f.points - f.final) / f.points
                                                    ELSE 0 END AS lost,
                   COUNT(*) AS n
            FROM finals f JOIN scope s ON s.call_id = f.call_id WHERE f.final < f.points
            GROUP BY 1, 2, 3, 4"""):
        level = categories.grade(row["item_id"], float(row["lost"]), bool(row["fatal"]))
        for key in (row["grp"], None):
            levels = counts.setdefault((key or "", row["item_id"]), {})
            levels[level] = levels.get(level, 0) + row["n"]
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


def _coaching(conn: sqlite3.Connection, groups: dict[str, GroupFigures], centre: GroupFigures, per_line: int) -> None:
    """The sheet's advice lines of the items that lost points, each with the calls behind it, worst first."""
    sql = """
        WITH lines AS (
            SELECT f.grp, a.value AS advice, f.call_id, s.path, f.final - f.points AS lost,
                   json_extract(ri.data, '$.evidence[0].start') AS start,
                   json_extract(ri.data, '$.evidence[0].note') AS note
            FROM finals f JOIN rubric_items ri ON ri.call_id = f.call_id AND ri.item_id = f.item_id
            JOIN scope s ON s.call_id = f.call_id, json_each(ri.data, '$.advice') a
            WHERE f.final < f.points),
        ranked AS (
            SELECT {key} AS k, advice, call_id, path, start, note,
                   ROW_NUMBER() OVER (PARTITION BY {key}, advice ORDER BY lost, call_id) AS rank,
                   COUNT(*) OVER (PARTITION BY {key}, advice) AS calls
            FROM lines)
        SELECT * FROM ranked WHERE rank <= ? ORDER BY k, calls DESC, advice, rank"""
    for key, target in (("grp", None), ("'全部'", centre)):
        lines: dict[tuple[str, str], CoachingLine] = {}
        for row in conn.execute(sql.format(key=key), (per_line,)):
            group = target or groups.get(row["k"])
            if group is None:
                continue
            line = lines.get((row["k"], row["advice"]))
            if line is None:
                line = lines[(row["k"], row["advice"])] = CoachingLine(row["advice"], row["calls"], [])
                group.coaching.append(line)
            line.moments.append(Moment(row["call_id"], row["path"], row["start"], row["note"] or ""))


def _trend(conn: sqlite3.Connection, groups: dict[str, GroupFigures], centre: GroupFigures) -> None:
    sql = """
        SELECT {key} AS k, date(s.day, '-' || ((CAST(strftime('%w', s.day) AS INTEGER) + 6) % 7) || ' days') AS week,
               COUNT(*) AS calls, AVG(t.total / NULLIF(s.max_total, 0)) AS share
        FROM scope s JOIN totals t ON t.call_id = s.call_id GROUP BY 1, 2 ORDER BY 1, 2"""
    for key, target in (("s.grp", None), ("'全部'", centre)):
        for row in conn.execute(sql.format(key=key)):
            group = target or groups.get(row["k"])
            if group is not None and row["week"]:
                group.trend.append(WeekPoint(row["week"], row["calls"], _round(row["share"], 4)))


def _rule_rates(conn: sqlite3.Connection, key: str | None, calls: int) -> dict[str, Any]:
    """What the centre's rules heard: each forbidden phrase, dead air, answer delay, pace outliers."""
    where, args = ("s.grp = ?", (key,)) if key is not None else ("1", ())
    phrases = [(row[0], row[1]) for row in conn.execute(f"""
        SELECT json_extract(f.data, '$.phrase'), COUNT(DISTINCT f.call_id) FROM findings f
        JOIN scope s ON s.call_id = f.call_id
        WHERE {where} AND f.rule = 'forbidden_phrase' AND f.role = 'agent' GROUP BY 1 ORDER BY 2 DESC, 1""", args)]
    dead_air = conn.execute(f"""
        SELECT COUNT(DISTINCT f.call_id) FROM findings f JOIN scope s ON s.call_id = f.call_id
        WHERE {where} AND f.rule = 'silence' AND json_extract(f.data, '$.hold_notice') = 0""", args).fetchone()[0]
    delay = conn.execute(f"""
        SELECT AVG(json_extract(f.data, '$.seconds')), SUM(json_extract(f.data, '$.within_limit') = 0)
        FROM findings f JOIN scope s ON s.call_id = f.call_id WHERE {where} AND f.rule = 'answer_delay'""",
                         args).fetchone()
    pace = conn.execute(f"""
        SELECT COUNT(DISTINCT f.call_id) FROM findings f JOIN scope s ON s.call_id = f.call_id
        WHERE {where} AND f.rule = 'speech_rate' AND f.role = 'agent'""", args).fetchone()[0]
    share = (lambda n: round(n / calls, 3) if calls else None)  # noqa: E731
    return {"forbidden_phrases": [{"phrase": p, "calls": n, "share": share(n)} for p, n in phrases],
            "dead_air_calls": dead_air, "dead_air_share": share(dead_air),
            "answer_delay_mean_s": _round(delay[0]), "answer_delay_over_limit": delay[1] or 0,
            "speech_rate_outlier_calls": pace, "speech_rate_outlier_share": share(pace)}


def _listen_first(conn: sqlite3.Connection, key: str | None, limit: int) -> list[dict[str, Any]]:
    """The calls to listen to first: fatal, then flagged for review, then the lowest totals."""
    where, args = ("s.grp = ?", (key,)) if key is not None else ("1", ())
    rows = conn.execute(f"""
        SELECT s.call_id, s.path, s.day, s.fatal, s.needs_review, t.total, s.max_total FROM scope s
        JOIN totals t ON t.call_id = s.call_id WHERE {where}
        ORDER BY s.fatal DESC, s.needs_review DESC, t.total / NULLIF(s.max_total, 0), s.call_id LIMIT ?""",
                        (*args, limit))
    return [dict(row) for row in rows]


def _round(value: Any, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)
