"""``qa-audio report -o report.csv``: the report's figures as one table, a row per agent (or team)
and one for the whole centre; cells a spreadsheet would run as a formula are neutralised."""

from __future__ import annotations

import csv
from typing import IO

from qa_audio.batch.export import spreadsheet_cell
from qa_audio.coaching.figures import GroupFigures, Report

BASE_COLUMNS = ("group", "team", "calls", "reviewed", "mean_total", "max_total", "fatal", "needs_review",
                "agent_id_mismatch", "item_scores", "inspector_scores")


def write_report_csv(report: Report, handle: IO[str]) -> None:
    item_ids = [i.item_id for i in report.centre.items]
    header = [*BASE_COLUMNS, *(f"item.{i}.mean" for i in item_ids), *(f"item.{i}.beside" for i in item_ids),
              "problems", "coaching"]
    writer = csv.writer(handle)
    writer.writerow([spreadsheet_cell(h) for h in [report.by if h == "group" else h for h in header]])
    for group in [*report.groups, report.centre]:
        writer.writerow([spreadsheet_cell(cell) for cell in _row(group, item_ids)])


def _row(g: GroupFigures, item_ids: list[str]) -> list:
    means = {i.item_id: i for i in g.items}
    return [g.key, g.team, g.calls, g.reviewed, g.mean_total, g.max_total, g.fatal, g.needs_review,
            g.agent_id_mismatch, g.item_scores, g.inspector_scores,
            *(means[i].mean if i in means else None for i in item_ids),
            *(means[i].beside if i in means else None for i in item_ids),
            ";".join(f"{p.item_id}:{p.calls}:{p.severity}:{p.frequency}" for p in g.problems),
            ";".join(f"{c.advice}({c.calls})" for c in g.coaching)]
