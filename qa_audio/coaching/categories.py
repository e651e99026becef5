"""``rules/categories.yaml``: the problem categories, severity grades and frequency threshold of the
per-agent and team reports, checked against the sheet so a typo names its file and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qa_audio.rubric.sheet import RubricSheet
from qa_audio.rule_files import LineList, RuleFileError, load_rule_file, only_keys, require, rule_file

CATEGORIES_FILE = "categories.yaml"
OTHER_CATEGORY = "其他"


@dataclass(frozen=True)
class SeverityGrade:
    level: str
    fatal: bool
    items: frozenset[str]
    lost_share_at_least: float

    def fits(self, item_id: str, lost_share: float, call_fatal: bool) -> bool:
        if self.fatal:
            return call_fatal and item_id in self.items
        return lost_share >= self.lost_share_at_least


@dataclass(frozen=True)
class Categories:
    path: Path
    category_of: dict[str, str]
    """item id -> category name"""
    order: tuple[str, ...]
    """category names in the file's order, 其他 last"""
    severity: tuple[SeverityGrade, ...]
    often_share: float
    listen_first: int
    coaching_calls_per_line: int

    def grade(self, item_id: str, lost_share: float, call_fatal: bool) -> str:
        for grade in self.severity:
            if grade.fits(item_id, lost_share, call_fatal):
                return grade.level
        return self.severity[-1].level

    def rank_of(self, level: str) -> int:
        """0 for the worst grade (the file lists the worst first)."""
        return next((i for i, g in enumerate(self.severity) if g.level == level), len(self.severity))


def load_categories(rules_dir: Path | str | None, sheet: RubricSheet) -> Categories:
    path = rule_file(rules_dir, CATEGORIES_FILE)
    data = load_rule_file(path)
    if not isinstance(data, dict):
        raise RuleFileError(path, getattr(data, "line", 1), "the file must be a mapping")
    only_keys(data, {"categories", "severity", "frequency", "listen_first", "coaching_calls_per_line"}, path,
              CATEGORIES_FILE)
    item_ids = {item.id for item in sheet.items}
    category_of: dict[str, str] = {}
    order: list[str] = []
    entries = require(data, "categories", list, path)
    for index, entry in enumerate(entries):
        line = entries.item_lines[index] if isinstance(entries, LineList) else None
        if not isinstance(entry, dict):
            raise RuleFileError(path, line, "each category is a mapping with 'name' and 'items'")
        only_keys(entry, {"name", "items"}, path, "a category")
        name = require(entry, "name", str, path).strip()
        if not name or name in order:
            raise RuleFileError(path, entry.line_of("name"), f"category name {name!r} is empty or given twice")
        order.append(name)
        for item_id in require(entry, "items", list, path):
            item_id = str(item_id)
            if item_id not in item_ids:
                raise RuleFileError(path, entry.line_of("items"), f"item {item_id!r} is not on the sheet "
                                                                  f"({sheet.path.name}: {', '.join(sorted(item_ids))})")
            if item_id in category_of:
                raise RuleFileError(path, entry.line_of("items"), f"item {item_id!r} is in two categories")
            category_of[item_id] = name
    for item_id in item_ids - set(category_of):
        category_of[item_id] = OTHER_CATEGORY
    if OTHER_CATEGORY in category_of.values() and OTHER_CATEGORY not in order:
        order.append(OTHER_CATEGORY)

    grades = []
    severity = require(data, "severity", list, path)
    if not severity:
        raise RuleFileError(path, data.line_of("severity"), "'severity' lists at least one grade")
    for index, entry in enumerate(severity):
        line = severity.item_lines[index] if isinstance(severity, LineList) else None
        if not isinstance(entry, dict):
            raise RuleFileError(path, line, "each severity grade is a mapping with 'level'")
        only_keys(entry, {"level", "fatal", "items", "lost_share_at_least"}, path, "a severity grade")
        level = require(entry, "level", str, path)
        fatal = bool(entry.get("fatal", False))
        share = 0.0
        if not fatal:
            share = float(require(entry, "lost_share_at_least", (int, float), path))
            if not 0 <= share <= 1:
                raise RuleFileError(path, entry.line_of("lost_share_at_least"), "'lost_share_at_least' must be 0-1")
        items = frozenset(str(i) for i in entry.get("items") or [])
        unknown = items - item_ids
        if unknown:
            raise RuleFileError(path, entry.line_of("items"),
                                f"items {', '.join(sorted(unknown))} are not on the sheet")
        grades.append(SeverityGrade(level, fatal, items, share))
    frequency = require(data, "frequency", dict, path)
    only_keys(frequency, {"often_share_at_least"}, path, "frequency")
    often = float(require(frequency, "often_share_at_least", (int, float), path))
    if not 0 < often <= 1:
        raise RuleFileError(path, frequency.line_of("often_share_at_least"), "'often_share_at_least' must be 0-1")
    listen = require(data, "listen_first", int, path)
    per_line = require(data, "coaching_calls_per_line", int, path)
    if listen < 0 or per_line < 1:
        raise RuleFileError(path, data.line_of("listen_first"), "'listen_first' >= 0, 'coaching_calls_per_line' >= 1")
    return Categories(path=path, category_of=category_of, order=tuple(order), severity=tuple(grades),
                      often_share=often, listen_first=listen, coaching_calls_per_line=per_line)
