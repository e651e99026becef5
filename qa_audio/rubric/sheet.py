"""The inspector's sheet as data: ``rules/rubric.yaml`` read and checked into a :class:`RubricSheet`.

The sheet (items, points, band wording) and the mapping from findings/acoustics to a suggested
score are both read from the YAML, so another call centre's sheet is another file. A condition is
one of three kinds (findings, phrases in turns, party acoustics) and an effect one of two (``set``
a score, ``cap`` it), which is how the sheet itself is written ("服务忌语 ... 0-2 分"). Every mistake
is a :class:`RuleFileError` with file and line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_audio.rule_files import LineDict, RuleFileError, load_rule_file, only_keys, require, rule_file
from qa_audio.schema import RUBRIC_STATUSES
from qa_audio.speech.roles import load_role_cues

RUBRIC_FILE = "rubric.yaml"
RUBRIC_VERSION = "1.0"
STATUSES = RUBRIC_STATUSES
COMPARATORS = {"gte": lambda a, b: a >= b, "gt": lambda a, b: a > b,
               "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b}
# Keys of a `when` that are not finding fields.
CONDITION_KEYS = {"rule", "role", "min_count", "overlaps", "phrases", "acoustic"}
RULE_KEYS = {"id", "when", "set", "cap", "why", "advice", "confidence", "status"}
ITEM_KEYS = {"id", "name", "points", "status", "bands", "base", "base_confidence", "rules"}
SHEET_KEYS = {"kind", "title", "requirements", "version", "needs_review_below", "fatal_rules", "phrases",
              "items"}
_PUNCT = re.compile(r"[\s，。！？、,.!?;；:：…“”\"'（）()]+")


@dataclass(frozen=True)
class Band:
    min: float
    max: float
    text: str


@dataclass(frozen=True)
class Condition:
    rule: str | None = None
    role: str | None = None
    fields: tuple[tuple[str, Any], ...] = ()
    min_count: int = 1
    overlaps: str | None = None
    phrases: str | None = None
    acoustic: str | None = None


@dataclass(frozen=True)
class Rule:
    when: Condition
    line: int
    id: str | None = None
    set: float | None = None
    cap: float | None = None
    why: str | None = None
    advice: str | None = None
    confidence: float | None = None
    status: str | None = None


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    points: float
    status: str
    bands: tuple[Band, ...]
    base: float | None
    base_confidence: float
    rules: tuple[Rule, ...]
    line: int


@dataclass(frozen=True)
class RubricSheet:
    path: Path
    title: str
    requirements: str
    version: str
    needs_review_below: float
    low_role_confidence: float
    fatal_rules: tuple[str, ...]
    phrases: dict[str, tuple[str, ...]]
    items: tuple[Item, ...]

    @property
    def max_total(self) -> float:
        return sum(item.points for item in self.items)


# --------------------------------------------------------------------------- loading


def load_rubric(rules_dir: Path | None = None) -> RubricSheet:
    """Read and validate ``rubric.yaml``; every problem is a :class:`RuleFileError` with file:line."""
    path = rule_file(rules_dir, RUBRIC_FILE)
    # how sure the agent/customer split must be for the audio to decide an item: a roles threshold
    low_role = load_role_cues(rules_dir).low_confidence
    return parse_rubric(path, low_role_confidence=low_role)


def parse_rubric(path: Path | str, low_role_confidence: float = 0.6) -> RubricSheet:
    """Parse one rubric file (no roles.yaml lookup): used by ``load_rubric`` and the tests."""
    path = Path(path)
    data = load_rule_file(path)
    if not isinstance(data, dict):
        raise RuleFileError(path, getattr(data, "line", 1), "expected a mapping with 'items'")
    only_keys(data, SHEET_KEYS, path, "rubric.yaml")
    phrases_raw = data.get("phrases", {})
    if not isinstance(phrases_raw, dict):
        raise RuleFileError(path, data.line_of("phrases"), "'phrases' must map names to lists of phrases")
    phrases: dict[str, tuple[str, ...]] = {}
    for name, values in phrases_raw.items():
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise RuleFileError(path, phrases_raw.line_of(name), f"phrases {name!r} must be a list of text")
        phrases[str(name)] = tuple(normalise_text(v) for v in values)
    raw_items = require(data, "items", list, path)
    if not raw_items:
        raise RuleFileError(path, data.line_of("items"), "'items' is empty")
    items: list[Item] = []
    seen: set[str] = set()
    rule_ids: set[str] = set()
    for raw, line in zip(raw_items, raw_items.item_lines, strict=True):
        item = _parse_item(raw, line, path, phrases)
        if item.id in seen:
            raise RuleFileError(path, line, f"duplicate item id {item.id!r}")
        seen.add(item.id)
        rule_ids.update(r.id for r in item.rules if r.id)
        items.append(item)
    fatal = data.get("fatal_rules", [])
    if not isinstance(fatal, list) or not all(isinstance(f, str) for f in fatal):
        raise RuleFileError(path, data.line_of("fatal_rules"), "'fatal_rules' must be a list of rule ids")
    for name in fatal:
        if name not in rule_ids:
            raise RuleFileError(path, data.line_of("fatal_rules"), f"fatal rule {name!r} is no rule's id")
    threshold = data.get("needs_review_below", 0.7)
    _check_unit(threshold, path, data.line_of("needs_review_below"), "needs_review_below")
    return RubricSheet(
        path=path,
        title=str(data.get("title", "评分表")),
        requirements=str(data.get("requirements", "")),
        version=str(data.get("version", RUBRIC_VERSION)),
        needs_review_below=float(threshold),
        low_role_confidence=float(low_role_confidence),
        fatal_rules=tuple(fatal),
        phrases=phrases,
        items=tuple(items),
    )


def _parse_item(raw: Any, line: int, path: Path, phrases: dict[str, tuple[str, ...]]) -> Item:
    if not isinstance(raw, dict):
        raise RuleFileError(path, line, "an item must be a mapping with id, name, points, status, bands")
    unknown = set(raw) - ITEM_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise RuleFileError(path, raw.line_of(key), f"unknown item key {key!r}; expected {sorted(ITEM_KEYS)}")
    item_id = require(raw, "id", (str, int), path)
    name = require(raw, "name", str, path)
    points = require(raw, "points", (int, float), path)
    if points <= 0:
        raise RuleFileError(path, raw.line_of("points"), f"points must be positive, not {points}")
    status = require(raw, "status", str, path)
    if status not in STATUSES:
        raise RuleFileError(path, raw.line_of("status"), f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    raw_bands = require(raw, "bands", list, path)
    bands = []
    for band, bline in zip(raw_bands, raw_bands.item_lines, strict=True):
        low = require(band, "min", (int, float), path)
        high = require(band, "max", (int, float), path)
        text = require(band, "text", str, path)
        if not 0 <= low <= high <= points:
            raise RuleFileError(path, bline, f"band {low}-{high} must lie within 0-{points} with min <= max")
        bands.append(Band(float(low), float(high), text))
    if not bands:
        raise RuleFileError(path, raw.line_of("bands"), "an item needs at least one band")
    base = raw.get("base")
    if status == "inspector":
        if base is not None:
            raise RuleFileError(path, raw.line_of("base"), "an inspector item has no base score")
    else:
        base = require(raw, "base", (int, float), path)
        _check_score(base, points, path, raw.line_of("base"), "base")
    base_conf = raw.get("base_confidence", 0.6)
    _check_unit(base_conf, path, raw.line_of("base_confidence"), "base_confidence")
    raw_rules = raw.get("rules", [])
    if not isinstance(raw_rules, list):
        raise RuleFileError(path, raw.line_of("rules"), "'rules' must be a list")
    rules = tuple(_parse_rule(r, rline, path, phrases, points, status)
                  for r, rline in zip(raw_rules, getattr(raw_rules, "item_lines", []), strict=True))
    return Item(id=str(item_id), name=name, points=float(points), status=status, bands=tuple(bands),
                base=None if base is None else float(base), base_confidence=float(base_conf), rules=rules, line=line)


def _parse_rule(raw: Any, line: int, path: Path, phrases: dict[str, tuple[str, ...]], points: float,
                item_status: str) -> Rule:
    if not isinstance(raw, dict):
        raise RuleFileError(path, line, "a rule must be a mapping with 'when'")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise RuleFileError(path, raw.line_of(key), f"unknown rule key {key!r}; expected {sorted(RULE_KEYS)}")
    when = require(raw, "when", dict, path)
    cond = _parse_condition(when, path, phrases)
    effects = [k for k in ("set", "cap") if k in raw]
    if len(effects) > 1:
        raise RuleFileError(path, line, "a rule either sets or caps the score, not both")
    if effects and item_status == "inspector":
        raise RuleFileError(path, raw.line_of(effects[0]), "an inspector item's rules give evidence only, no score")
    for key in effects:
        _check_score(raw[key], points, path, raw.line_of(key), key)
    if "confidence" in raw:
        _check_unit(raw["confidence"], path, raw.line_of("confidence"), "confidence")
    status = raw.get("status")
    if status is not None and status != "auto":
        raise RuleFileError(path, raw.line_of("status"), f"a rule's status can only be 'auto', not {status!r}")
    for key in ("why", "advice", "id"):
        if key in raw and not isinstance(raw[key], str):
            raise RuleFileError(path, raw.line_of(key), f"{key!r} must be text")
    return Rule(when=cond, line=line, id=raw.get("id"), set=_opt_float(raw.get("set")),
                cap=_opt_float(raw.get("cap")), why=raw.get("why"), advice=raw.get("advice"),
                confidence=_opt_float(raw.get("confidence")), status=status)


def _parse_condition(when: LineDict, path: Path, phrases: dict[str, tuple[str, ...]]) -> Condition:
    kinds = [k for k in ("rule", "phrases", "acoustic") if k in when]
    if len(kinds) != 1:
        raise RuleFileError(path, when.line, "a condition needs exactly one of 'rule', 'phrases', 'acoustic'")
    role = when.get("role")
    if role is not None and role not in ("agent", "customer", "none"):
        raise RuleFileError(path, when.line_of("role"), f"role must be agent, customer or none, not {role!r}")
    min_count = when.get("min_count", 1)
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
        raise RuleFileError(path, when.line_of("min_count"),
                            f"min_count must be a whole number >= 1, not {min_count!r}")
    fields = []
    for key, value in when.items():
        if key in CONDITION_KEYS:
            continue
        if kinds[0] == "phrases":
            raise RuleFileError(path, when.line_of(key), f"a phrases condition has no field {key!r}")
        if isinstance(value, dict):
            if not value or set(value) - set(COMPARATORS):
                raise RuleFileError(path, when.line_of(key), f"{key!r}: use one of {', '.join(COMPARATORS)}")
            for op, number in value.items():
                if isinstance(number, bool) or not isinstance(number, int | float):
                    raise RuleFileError(path, when.line_of(key), f"{key!r} {op} needs a number, not {number!r}")
        fields.append((str(key), value))
    if kinds[0] == "phrases" and when["phrases"] not in phrases:
        raise RuleFileError(path, when.line_of("phrases"), f"no phrase list named {when['phrases']!r} in 'phrases'")
    if kinds[0] == "acoustic" and not any(f[0] in COMPARATORS for f in fields):
        raise RuleFileError(path, when.line, "an acoustic condition needs gte, gt, lte or lt")
    for key in ("rule", "acoustic", "overlaps"):
        if key in when and not isinstance(when[key], str):
            raise RuleFileError(path, when.line_of(key), f"{key!r} must be text")
    return Condition(rule=when.get("rule"), role=role, fields=tuple(fields), min_count=min_count,
                     overlaps=when.get("overlaps"), phrases=when.get("phrases"), acoustic=when.get("acoustic"))


def _check_score(value: Any, points: float, path: Path, line: int, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= points:
        raise RuleFileError(path, line, f"{key!r} must be a score within 0-{points:g}, not {value!r}")


def _check_unit(value: Any, path: Path, line: int, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise RuleFileError(path, line, f"{key!r} must be a number within 0-1, not {value!r}")


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def normalise_text(text: str) -> str:
    """Text as phrase lists are compared: punctuation and spaces removed."""
    return _PUNCT.sub("", text or "")


def merged_ranges(bands: tuple[Band, ...]) -> list[list[float]]:
    """Band ranges for agreement statistics, overlapping bands merged (7b: 9-11 ∪ 10-12 = 9-12)."""
    ranges = sorted([b.min, b.max] for b in bands)
    merged: list[list[float]] = []
    for low, high in ranges:
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [[round_score(a), round_score(b)] for a, b in merged]


def band_index(score: float, ranges: Sequence[Sequence[float]]) -> int:
    """Index of the merged band holding ``score`` (nearest band when between two or outside).

    Without bands (a result stored before the rubric) the score itself, rounded, is the band.
    """
    if not ranges:
        return round(score)
    for index, (low, high) in enumerate(ranges):
        if low <= score <= high:
            return index
    return min(range(len(ranges)), key=lambda i: min(abs(score - ranges[i][0]), abs(score - ranges[i][1])))


def round_score(value: float) -> float | int:
    """Whole scores as ints (the sheet's points are whole), anything else to 0.5."""
    rounded = round(float(value) * 2) / 2
    return int(rounded) if rounded == int(rounded) else rounded
