"""``rules/personal_data.yaml`` read and checked: the types of personal data, how a digit may be
written, the cues, what a mask keeps and what is an ordinary number, so that a bad value names its
file and line and the detector never restates a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_audio.rule_files import LineDict, LineList, RuleFileError, load_rule_file, only_keys, require, rule_file

PERSONAL_DATA_FILE = "personal_data.yaml"
TOP_KEYS = {"keep_originals", "mask_char", "audio", "digits", "misheard", "max_misheard_per_number",
            "id_check_letter", "separators", "max_separator_chars", "join_turns_within_s", "join_min_digits",
            "continuation_prefix_chars", "corrections",
            "correction_window_chars", "partial_cues", "cue_window_chars", "cue_min_digits", "numbers",
            "other_number", "ordinary_numbers", "patterns", "cued"}
NUMBER_KEYS = {"type", "name", "pattern", "check", "keep_first", "keep_last", "cues"}
CHECKS = ("gb11643", "luhn")
"""the checksums a number type may name (the algorithms are code; which type uses one is data)"""


@dataclass(frozen=True)
class NumberType:
    type: str
    name: str
    pattern: re.Pattern[str]
    check: str | None
    keep_first: int
    keep_last: int
    cues: tuple[str, ...]


@dataclass(frozen=True)
class TextPattern:
    type: str
    name: str
    pattern: re.Pattern[str]
    keep_first: int
    keep_from: re.Pattern[str] | None


@dataclass(frozen=True)
class CuedType:
    type: str
    name: str
    roles: frozenset[str]
    cues: tuple[str, ...]
    skip: frozenset[str]
    min_chars: int
    max_chars: int
    stop: frozenset[str]
    spelled_out_chars: int


@dataclass(frozen=True)
class ToneSettings:
    tone_hz: float
    tone_dbfs: float
    pad_s: float


@dataclass(frozen=True)
class PersonalDataRules:
    path: Path
    keep_originals: bool
    mask_char: str
    tone: ToneSettings
    digits: dict[str, str]
    """character -> digit, for every way a digit is written (ASCII and full-width digits besides)"""
    misheard: dict[str, str]
    max_misheard: int
    id_letters: frozenset[str]
    separators: frozenset[str]
    max_separator_chars: int
    join_turns_within_s: float
    join_min_digits: int
    continuation_prefix_chars: int
    corrections: tuple[str, ...]
    correction_window: int
    partial_cues: tuple[str, ...]
    cue_window: int
    cue_min_digits: int
    numbers: tuple[NumberType, ...]
    other_type: str
    other_name: str
    other_min_digits: int
    other_keep_last: int
    ordinary_before: tuple[str, ...]
    ordinary_after: tuple[str, ...]
    ordinary_keep: frozenset[str]
    patterns: tuple[TextPattern, ...]
    cued: tuple[CuedType, ...]

    def type_names(self) -> dict[str, str]:
        """type -> its Chinese name, for the reports."""
        names = {n.type: n.name for n in self.numbers}
        names[self.other_type] = self.other_name
        names.update({p.type: p.name for p in self.patterns})
        names.update({c.type: c.name for c in self.cued})
        return names

    def settings(self) -> dict[str, Any]:
        """What is echoed into every output's ``settings``."""
        return {"rules": str(self.path), "keep_originals": self.keep_originals, "types": self.type_names()}


def load_personal_data_rules(rules_dir: Path | str | None = None) -> PersonalDataRules:
    path = rule_file(rules_dir, PERSONAL_DATA_FILE)
    data = load_rule_file(path)
    if not isinstance(data, dict):
        raise RuleFileError(path, getattr(data, "line", 1), "the file must be a mapping")
    only_keys(data, TOP_KEYS, path, PERSONAL_DATA_FILE)
    reader = _Reader(path)

    keep = require(data, "keep_originals", bool, path)
    mask_char = require(data, "mask_char", str, path)
    if len(mask_char) != 1:
        raise RuleFileError(path, data.line_of("mask_char"), "'mask_char' must be one character")
    audio = require(data, "audio", dict, path)
    only_keys(audio, {"tone_hz", "tone_dbfs", "pad_s"}, path, "audio")
    tone = ToneSettings(tone_hz=reader.number(audio, "tone_hz", 50.0, 4000.0),
                        tone_dbfs=reader.number(audio, "tone_dbfs", -60.0, -3.0),
                        pad_s=reader.number(audio, "pad_s", 0.0, 2.0))

    digits = reader.digit_map(data, "digits")
    for d in "0123456789":
        digits[d] = d
        digits[chr(ord("０") + int(d))] = d
    misheard = reader.digit_map(data, "misheard")
    clash = set(misheard) & set(digits)
    if clash:
        raise RuleFileError(path, data.line_of("misheard"),
                            f"{''.join(sorted(clash))} listed both as a digit and as misheard")

    numbers_node = require(data, "numbers", list, path)
    numbers = tuple(reader.number_type(item, line) for item, line in _items(numbers_node))
    other = require(data, "other_number", dict, path)
    only_keys(other, {"type", "name", "min_digits", "keep_last"}, path, "other_number")
    ordinary = require(data, "ordinary_numbers", dict, path)
    only_keys(ordinary, {"before", "after", "keep"}, path, "ordinary_numbers")
    keep_numbers = reader.strings(ordinary, "keep", allow_empty=True)
    for number in keep_numbers:
        if not number.isdigit():
            raise RuleFileError(path, ordinary.line_of("keep"), f"'keep' lists digits only, not {number!r}")

    patterns_node = require(data, "patterns", list, path)
    patterns = tuple(reader.text_pattern(item, line) for item, line in _items(patterns_node))
    cued_node = require(data, "cued", list, path)
    cued = tuple(reader.cued_type(item, line) for item, line in _items(cued_node))
    types = [n.type for n in numbers] + [str(other.get("type"))] + [p.type for p in patterns] + [c.type for c in cued]
    seen: set[str] = set()
    for kind in types:
        if kind in seen:
            raise RuleFileError(path, None, f"type {kind!r} is declared twice")
        seen.add(kind)

    return PersonalDataRules(
        path=path, keep_originals=keep, mask_char=mask_char, tone=tone, digits=digits, misheard=misheard,
        max_misheard=reader.integer(data, "max_misheard_per_number", 0, 5),
        id_letters=frozenset(reader.strings(data, "id_check_letter")),
        separators=frozenset(reader.strings(data, "separators")),
        max_separator_chars=reader.integer(data, "max_separator_chars", 1, 5),
        join_turns_within_s=reader.number(data, "join_turns_within_s", 0.0, 60.0),
        join_min_digits=reader.integer(data, "join_min_digits", 1, 20),
        continuation_prefix_chars=reader.integer(data, "continuation_prefix_chars", 0, 20),
        corrections=reader.strings(data, "corrections", allow_empty=True),
        correction_window=reader.integer(data, "correction_window_chars", 1, 40),
        partial_cues=reader.strings(data, "partial_cues", allow_empty=True),
        cue_window=reader.integer(data, "cue_window_chars", 1, 40),
        cue_min_digits=reader.integer(data, "cue_min_digits", 1, 30),
        numbers=numbers,
        other_type=reader.word(other, "type"), other_name=reader.word(other, "name"),
        other_min_digits=reader.integer(other, "min_digits", 3, 30),
        other_keep_last=reader.integer(other, "keep_last", 0, 10),
        ordinary_before=reader.strings(ordinary, "before", allow_empty=True),
        ordinary_after=reader.strings(ordinary, "after", allow_empty=True),
        ordinary_keep=frozenset(keep_numbers),
        patterns=patterns, cued=cued,
    )


def _items(node: list) -> list[tuple[Any, int | None]]:
    lines = node.item_lines if isinstance(node, LineList) else [None] * len(node)
    return list(zip(node, lines, strict=True))


class _Reader:
    """Typed reads from one file, every error at the line of the offending value."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, mapping: Any, key: str, reason: str) -> RuleFileError:
        line = mapping.line_of(key) if isinstance(mapping, LineDict) else None
        return RuleFileError(self.path, line, reason)

    def number(self, mapping: Any, key: str, lo: float, hi: float) -> float:
        value = float(require(mapping, key, (int, float), self.path))
        if not lo <= value <= hi:
            raise self.error(mapping, key, f"{key!r} must be between {lo:g} and {hi:g}, not {value:g}")
        return value

    def integer(self, mapping: Any, key: str, lo: int, hi: int) -> int:
        value = require(mapping, key, int, self.path)
        if not lo <= value <= hi:
            raise self.error(mapping, key, f"{key!r} must be between {lo} and {hi}, not {value}")
        return value

    def word(self, mapping: Any, key: str) -> str:
        value = require(mapping, key, str, self.path).strip()
        if not value:
            raise self.error(mapping, key, f"{key!r} must not be empty")
        return value

    def strings(self, mapping: Any, key: str, allow_empty: bool = False) -> tuple[str, ...]:
        value = require(mapping, key, list, self.path)
        if not value and not allow_empty:
            raise self.error(mapping, key, f"{key!r} must list at least one entry")
        if not all(isinstance(v, str) and v for v in value):
            raise self.error(mapping, key, f"{key!r} must be a list of non-empty quoted strings")
        return tuple(value)

    def regex(self, mapping: Any, key: str) -> re.Pattern[str]:
        text = require(mapping, key, str, self.path)
        try:
            return re.compile(text)
        except re.error as exc:
            raise self.error(mapping, key, f"{key!r} is not a valid regular expression: {exc}") from exc

    def digit_map(self, mapping: Any, key: str) -> dict[str, str]:
        node = require(mapping, key, dict, self.path)
        out: dict[str, str] = {}
        for digit in node:
            if not isinstance(digit, str) or digit not in set("0123456789"):
                raise self.error(node, str(digit), f"{key}: keys are the digits \"0\" to \"9\" in quotes, "
                                                   f"not {digit!r}")
            strings = self.strings(node, digit, allow_empty=True)
            for ch in strings:
                if len(ch) != 1:
                    raise self.error(node, str(digit), f"{key}: one character each, not {ch!r}")
                if ch in out and out[ch] != str(digit):
                    raise self.error(node, str(digit), f"{key}: {ch!r} stands for two digits")
                out[ch] = str(digit)
        return out

    def number_type(self, item: Any, line: int | None) -> NumberType:
        if not isinstance(item, dict):
            raise RuleFileError(self.path, line, "each entry of 'numbers' must be a mapping with 'type'")
        only_keys(item, NUMBER_KEYS, self.path, "a number type")
        check = item.get("check")
        if check is not None and check not in CHECKS:
            raise self.error(item, "check", f"'check' must be one of {', '.join(CHECKS)}, not {check!r}")
        return NumberType(
            type=self.word(item, "type"), name=self.word(item, "name"), pattern=self.regex(item, "pattern"),
            check=check,
            keep_first=self.integer(item, "keep_first", 0, 8) if "keep_first" in item else 0,
            keep_last=self.integer(item, "keep_last", 0, 8) if "keep_last" in item else 0,
            cues=self.strings(item, "cues", allow_empty=True) if "cues" in item else (),
        )

    def text_pattern(self, item: Any, line: int | None) -> TextPattern:
        if not isinstance(item, dict):
            raise RuleFileError(self.path, line, "each entry of 'patterns' must be a mapping with 'type'")
        only_keys(item, {"type", "name", "pattern", "keep_first", "keep_from"}, self.path, "a pattern")
        return TextPattern(
            type=self.word(item, "type"), name=self.word(item, "name"), pattern=self.regex(item, "pattern"),
            keep_first=self.integer(item, "keep_first", 0, 8) if "keep_first" in item else 0,
            keep_from=self.regex(item, "keep_from") if "keep_from" in item else None,
        )

    def cued_type(self, item: Any, line: int | None) -> CuedType:
        if not isinstance(item, dict):
            raise RuleFileError(self.path, line, "each entry of 'cued' must be a mapping with 'type'")
        only_keys(item, {"type", "name", "roles", "cues", "skip", "min_chars", "max_chars", "stop",
                         "spelled_out_chars"}, self.path, "a cued type")
        roles = self.strings(item, "roles")
        for role in roles:
            if role not in ("agent", "customer"):
                raise self.error(item, "roles", f"'roles' lists agent and/or customer, not {role!r}")
        return CuedType(
            type=self.word(item, "type"), name=self.word(item, "name"), roles=frozenset(roles),
            cues=tuple(sorted(self.strings(item, "cues"), key=len, reverse=True)),
            skip=frozenset(require(item, "skip", str, self.path)) if "skip" in item else frozenset(),
            min_chars=self.integer(item, "min_chars", 1, 60) if "min_chars" in item else 1,
            max_chars=self.integer(item, "max_chars", 1, 60),
            stop=frozenset(require(item, "stop", str, self.path)),
            spelled_out_chars=self.integer(item, "spelled_out_chars", 0, 20) if "spelled_out_chars" in item else 0,
        )
