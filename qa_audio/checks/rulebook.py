"""The rulebook: every ``rules/*.yaml`` file validated and compiled into one object.

Each YAML file declares ``type:``; one file per type, all types required (so a deployment that
copies the folder and forgets one file hears about it instead of silently losing a check). Any
mistake -- bad YAML, an unknown type or key, a threshold out of range, a level naming a part that
does not exist -- raises :class:`RuleFileError` with the file and line, because the people editing
these files are QA leads, not programmers.

Loading is cheap (no jieba): the phrase index compiles pinyin at load time, jieba is only built on
the first match that needs word boundaries. Load once per process and reuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qa_audio.call_metadata import MetadataError, compile_file_pattern
from qa_audio.phrase_match import MatchSettings, Phrase, PhraseIndex, compile_phrase
from qa_audio.rule_files import LineDict, RuleFileError, load_rule_file, only_keys, require, rules_folder

SEVERITIES = ("3-5", "0-2")
"""The rubric bands of item 7b a forbidden phrase drags the score into."""

MIN_FORBIDDEN_CHARS = 2
"""A forbidden phrase fails the call, and the pinyin matcher cannot place one syllable safely: a
lone 好 sounds like part of every 你好 and 好的 (and 号, 浩 ...), so ordinary calls would fail."""

AGENT_ID = "{agent_id}"
COMPANY = "{company}"


@dataclass(frozen=True)
class Deployment:
    company_name: str
    company_aliases: tuple[str, ...]
    agent_id_digits: int
    agent_id_keywords: tuple[str, ...]
    file_pattern: str | None = None
    """how the phone system names recordings ({date:%Y%m%d}_{agent_id}_{seq}.wav), if it does"""


@dataclass(frozen=True)
class PartsRule:
    """Greeting or closing: named parts, each a phrase list, and the parts each level needs."""

    window_s: float
    parts: dict[str, list[Phrase]]
    levels: dict[int, tuple[str, ...]]
    """level -> parts required, tried from the highest level down; the lowest level needs nothing."""
    agent_id_parts: frozenset[str] = frozenset()
    """Parts satisfied by the 工号 detector (their phrase list holds ``{agent_id}``)."""

    def grade(self, found: set[str]) -> int:
        for level in sorted(self.levels, reverse=True):
            if set(self.levels[level]) <= found:
                return level
        return min(self.levels)


@dataclass(frozen=True)
class Thresholds:
    answer_delay_max_s: float = 15.0
    silence_min_s: float = 5.0
    silence_include_edges: bool = False
    interruption_min_overlap_s: float = 1.0
    interruption_min_lead_s: float = 0.5
    merge_gap_s: float = 0.3


@dataclass
class Rulebook:
    directory: Path
    settings: MatchSettings
    deployment: Deployment
    greeting: PartsRule
    closing: PartsRule
    anything_else: list[Phrase]
    forbidden: list[Phrase]
    politeness: list[Phrase]
    fillers: list[Phrase]
    hold_notice: list[Phrase]
    hold_notice_window_s: float
    complaints: list[Phrase]
    empathy: list[Phrase]
    empathy_window_s: float
    thresholds: Thresholds
    files: dict[str, Path] = field(default_factory=dict)
    _index: PhraseIndex | None = field(default=None, repr=False)

    @property
    def index(self) -> PhraseIndex:
        """All phrases of all rules in one index, built on first use and kept."""
        if self._index is None:
            phrases: list[Phrase] = []
            for rule in (self.greeting, self.closing):
                for plist in rule.parts.values():
                    phrases.extend(plist)
            for plist in (self.anything_else, self.forbidden, self.politeness, self.fillers,
                          self.hold_notice, self.complaints, self.empathy):
                phrases.extend(plist)
            words = [self.deployment.company_name, *self.deployment.company_aliases]
            self._index = PhraseIndex(phrases, self.settings, user_words=words)
        return self._index


# ---------------------------------------------------------------------------------------------
# validation helpers


class _File:
    """One rule file being validated: its path, parsed data and the keys already consumed."""

    def __init__(self, path: Path, data: LineDict):
        self.path = path
        self.data = data

    def error(self, line: int | None, reason: str) -> RuleFileError:
        return RuleFileError(self.path, line, reason)

    def only_keys(self, mapping: LineDict, allowed: set[str], what: str) -> None:
        only_keys(mapping, allowed, self.path, what)

    def mapping(self, mapping: LineDict, key: str) -> LineDict:
        return require(mapping, key, dict, self.path)

    def number(self, mapping: LineDict, key: str, lo: float, hi: float, default: float | None = None,
               *, lo_open: bool = False) -> float:
        if key not in mapping and default is not None:
            return default
        value = require(mapping, key, (int, float), self.path)
        bad_lo = value <= lo if lo_open else value < lo
        if bad_lo or value > hi:
            lo_txt = f"more than {lo}" if lo_open else f"at least {lo}"
            raise self.error(mapping.line_of(key), f"{key!r} must be {lo_txt} and at most {hi}, not {value}")
        return float(value)

    def integer(self, mapping: LineDict, key: str, lo: int, hi: int, default: int | None = None) -> int:
        if key not in mapping and default is not None:
            return default
        value = require(mapping, key, int, self.path)
        if isinstance(value, bool) or not lo <= value <= hi:
            raise self.error(mapping.line_of(key), f"{key!r} must be a whole number from {lo} to {hi}, "
                                                   f"not {value!r}")
        return value

    def strings(self, mapping: LineDict, key: str, *, allow_empty: bool = False) -> list[tuple[str, int]]:
        value = require(mapping, key, list, self.path)
        if not value and not allow_empty:
            raise self.error(mapping.line_of(key), f"{key!r} must list at least one entry")
        lines = getattr(value, "item_lines", [mapping.line_of(key)] * len(value))
        out = []
        for item, line in zip(value, lines, strict=True):
            if not isinstance(item, str) or not item.strip():
                raise self.error(line, f"each entry of {key!r} must be text, not {item!r}")
            out.append((item, line))
        return out

    def phrases(self, mapping: LineDict, key: str, rule: str, settings: MatchSettings, *,
                group: str = "", min_score: float | None = None, method: str = "pinyin",
                expand: Callable[[str], list[str]] | None = None) -> list[Phrase]:
        """A phrase list: each entry is text, or ``{phrase: ..., min_score: ..., method: ...}``."""
        value = require(mapping, key, list, self.path)
        if not value:
            raise self.error(mapping.line_of(key), f"{key!r} must list at least one phrase")
        return self.phrase_items(value, value.item_lines, rule, settings, group=group, min_score=min_score,
                                 method=method, expand=expand)

    def phrase_items(self, value: list, lines: list[int], rule: str, settings: MatchSettings, *,
                     group: str = "", min_score: float | None = None, method: str = "pinyin",
                     expand: Callable[[str], list[str]] | None = None) -> list[Phrase]:
        out: list[Phrase] = []
        for item, line in zip(value, lines, strict=True):
            p_score, p_method = min_score, method
            if isinstance(item, dict):
                self.only_keys(item, {"phrase", "min_score", "method"}, "a phrase entry")
                text = require(item, "phrase", str, self.path)
                if "min_score" in item:
                    p_score = self.number(item, "min_score", 0.0, 1.0, lo_open=True)
                if "method" in item:
                    p_method = self.method(item, "method")
            elif isinstance(item, str):
                text = item
            else:
                raise self.error(line, f"a phrase must be text or a mapping with 'phrase', not {item!r}")
            texts = expand(text) if expand else [text]
            for t in texts:
                try:
                    out.append(compile_phrase(t, rule, settings, group=group, min_score=p_score,
                                              method=p_method, source=f"{self.path.name}:{line}"))
                except ValueError as exc:
                    raise self.error(line, f"bad phrase {text!r}: {exc}") from exc
        return out

    def method(self, mapping: LineDict, key: str) -> str:
        value = require(mapping, key, str, self.path)
        if value not in ("pinyin", "text"):
            raise self.error(mapping.line_of(key), f"{key!r} must be 'pinyin' or 'text', not {value!r}")
        return value


# ---------------------------------------------------------------------------------------------
# one reader per rule type


def _read_matching(f: _File) -> MatchSettings:
    d = f.data
    f.only_keys(d, {"type", "min_score", "insertion_penalty", "unsure_insertion_penalty", "unsure_below",
                    "deletion_penalty", "near_part_penalty",
                    "half_match", "boundary_max_len", "negations", "confusable_initials",
                    "confusable_finals"}, "matching")
    groups: dict[str, tuple[tuple[str, ...], ...]] = {}
    for key in ("confusable_initials", "confusable_finals"):
        value = require(d, key, list, f.path)
        out = []
        for item, line in zip(value, value.item_lines, strict=True):
            ok = isinstance(item, list) and len(item) >= 2 and all(isinstance(x, str) and x for x in item)
            if not ok:
                raise f.error(line, f"each entry of {key!r} must be a list of two or more syllable parts")
            out.append(tuple(item))
        groups[key] = tuple(out)
    insertion = f.number(d, "insertion_penalty", 0.0, 1.0)
    return MatchSettings(
        min_score=f.number(d, "min_score", 0.0, 1.0, lo_open=True),
        insertion_penalty=insertion,
        # absent from a site's older copy of the file: every extra character costs the same, as before
        unsure_insertion_penalty=f.number(d, "unsure_insertion_penalty", 0.0, 1.0, default=insertion),
        unsure_below=f.number(d, "unsure_below", 0.0, 1.0, default=0.0),
        deletion_penalty=f.number(d, "deletion_penalty", 0.0, 1.0),
        near_part_penalty=f.number(d, "near_part_penalty", 0.0, 0.5),
        half_match=f.number(d, "half_match", 0.0, 0.5),
        boundary_max_len=f.integer(d, "boundary_max_len", 0, 10),
        negations=tuple(s for s, _ in f.strings(d, "negations")),
        confusable_initials=groups["confusable_initials"],
        confusable_finals=groups["confusable_finals"],
    )


def _read_deployment(f: _File) -> Deployment:
    d = f.data
    f.only_keys(d, {"type", "company", "agent_id", "recordings"}, "deployment")
    company = f.mapping(d, "company")
    f.only_keys(company, {"name", "aliases"}, "company")
    name = require(company, "name", str, f.path).strip()
    if not name:
        raise f.error(company.line_of("name"), "'name' must not be empty")
    aliases: tuple[str, ...] = ()
    if "aliases" in company:
        aliases = tuple(s for s, _ in f.strings(company, "aliases", allow_empty=True))
    agent = f.mapping(d, "agent_id")
    f.only_keys(agent, {"digits", "keywords"}, "agent_id")
    pattern = None
    if "recordings" in d:
        recordings = f.mapping(d, "recordings")
        f.only_keys(recordings, {"file_pattern"}, "recordings")
        pattern = require(recordings, "file_pattern", str, f.path).strip() or None
        if pattern:
            try:
                compile_file_pattern(pattern)
            except MetadataError as exc:
                raise f.error(recordings.line_of("file_pattern"), f"file_pattern: {exc}") from exc
    return Deployment(
        company_name=name, company_aliases=aliases,
        agent_id_digits=f.integer(agent, "digits", 1, 12),
        agent_id_keywords=tuple(s for s, _ in f.strings(agent, "keywords")),
        file_pattern=pattern,
    )


def _read_parts_rule(f: _File, rule: str, settings: MatchSettings, dep: Deployment,
                     extra_keys: set[str]) -> PartsRule:
    d = f.data
    f.only_keys(d, {"type", "window_s", "min_score", "parts", "levels"} | extra_keys, rule)
    window = f.number(d, "window_s", 0.0, 600.0, lo_open=True)
    min_score = f.number(d, "min_score", 0.0, 1.0, lo_open=True) if "min_score" in d else None
    parts_node = f.mapping(d, "parts")
    parts: dict[str, list[Phrase]] = {}
    agent_id_parts: set[str] = set()

    def expand(text: str) -> list[str]:
        if COMPANY in text:
            return [text.replace(COMPANY, n) for n in (dep.company_name, *dep.company_aliases)]
        return [text]

    for name in parts_node:
        plist = require(parts_node, name, list, f.path)
        if any(isinstance(x, str) and x.strip() == AGENT_ID for x in plist):
            if len(plist) != 1:
                raise f.error(parts_node.line_of(name), f"{AGENT_ID} must be the only entry of its part; "
                                                        "the keywords live in deployment.yaml")
            agent_id_parts.add(str(name))
            # The keywords (工号) are matched like any phrase; the digits by the 工号 detector.
            kws = list(dep.agent_id_keywords)
            parts[str(name)] = f.phrase_items(kws, [parts_node.line_of(name)] * len(kws), rule, settings,
                                              group=str(name), min_score=min_score)
        else:
            parts[str(name)] = f.phrases(parts_node, name, rule, settings, group=str(name),
                                         min_score=min_score, expand=expand)
    levels_node = f.mapping(d, "levels")
    levels: dict[int, tuple[str, ...]] = {}
    for level in levels_node:
        line = levels_node.line_of(str(level))
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 2:
            raise f.error(line, f"a level must be 0, 1 or 2 (the rubric's bands), not {level!r}")
        needed = levels_node[level]
        if not isinstance(needed, list):
            raise f.error(line, f"level {level} must list the parts it needs (may be empty: [])")
        for part in needed:
            if part not in parts:
                raise f.error(line, f"level {level} needs part {part!r}, which is not defined under 'parts' "
                                    f"({', '.join(parts)})")
        levels[level] = tuple(needed)
    if 0 not in levels:
        raise f.error(levels_node.line, "'levels' must include level 0 (what is left when nothing else fits)")
    return PartsRule(window_s=window, parts=parts, levels=levels, agent_id_parts=frozenset(agent_id_parts))


def _read_simple_list(f: _File, rule: str, settings: MatchSettings,
                      extra: frozenset[str] = frozenset()) -> list[Phrase]:
    d = f.data
    f.only_keys(d, {"type", "phrases", "min_score", "method"} | set(extra), rule)
    min_score = f.number(d, "min_score", 0.0, 1.0, lo_open=True) if "min_score" in d else None
    method = f.method(d, "method") if "method" in d else "pinyin"
    return f.phrases(d, "phrases", rule, settings, group=rule, min_score=min_score, method=method)


def _read_forbidden(f: _File, settings: MatchSettings) -> list[Phrase]:
    d = f.data
    f.only_keys(d, {"type", "min_score", "severities"}, "forbidden_phrases")
    min_score = f.number(d, "min_score", 0.0, 1.0, lo_open=True) if "min_score" in d else None
    sev = f.mapping(d, "severities")
    out: list[Phrase] = []
    for key in sev:
        if str(key) not in SEVERITIES:
            raise f.error(sev.line_of(str(key)), f"severity must be one of {', '.join(SEVERITIES)} "
                                                 f"(the rubric's 7b bands, quoted), not {key!r}")
        phrases = f.phrases(sev, key, "forbidden_phrase", settings, group=str(key), min_score=min_score)
        for phrase, line in zip(phrases, sev[key].item_lines, strict=True):
            if len(phrase.chars) < MIN_FORBIDDEN_CHARS:
                raise f.error(line, f"forbidden phrase {phrase.text!r} is too short: write at least "
                                    f"{MIN_FORBIDDEN_CHARS} characters (the pinyin matcher cannot place a "
                                    "single syllable safely; a lone character is heard inside ordinary "
                                    "words and would fail ordinary calls)")
        out.extend(phrases)
    if not out:
        raise f.error(sev.line, "no forbidden phrases listed")
    return out


def _read_thresholds(f: _File) -> Thresholds:
    d = f.data
    f.only_keys(d, {"type", "answer_delay", "silence", "interruption"}, "thresholds")
    ad, si, it = f.mapping(d, "answer_delay"), f.mapping(d, "silence"), f.mapping(d, "interruption")
    f.only_keys(ad, {"max_s"}, "answer_delay")
    f.only_keys(si, {"min_duration_s", "include_call_edges"}, "silence")
    f.only_keys(it, {"min_overlap_s", "min_customer_lead_s", "merge_gap_s"}, "interruption")
    edges = si.get("include_call_edges", False)
    if not isinstance(edges, bool):
        raise f.error(si.line_of("include_call_edges"), "'include_call_edges' must be true or false")
    return Thresholds(
        answer_delay_max_s=f.number(ad, "max_s", 0.0, 600.0, lo_open=True),
        silence_min_s=f.number(si, "min_duration_s", 0.0, 600.0, lo_open=True),
        silence_include_edges=edges,
        interruption_min_overlap_s=f.number(it, "min_overlap_s", 0.0, 60.0),
        interruption_min_lead_s=f.number(it, "min_customer_lead_s", 0.0, 60.0),
        merge_gap_s=f.number(it, "merge_gap_s", 0.0, 5.0),
    )


RULE_TYPES = ("matching", "deployment", "greeting", "closing", "forbidden_phrases", "politeness",
              "fillers", "hold_notice", "empathy_after_complaint", "thresholds")


def _open(path: Path, *, typed_only: bool = False) -> _File | None:
    """Parse and check ``type:``. With ``typed_only``, a mapping without ``type:`` gives None.

    ``rules/`` is shared with other components (``acoustic.yaml``, ``roles.yaml``) whose files have
    no ``type:``; those are not rule files and are left to their owners.
    """
    data = load_rule_file(path)
    if not isinstance(data, dict):
        if typed_only:
            return None
        raise RuleFileError(path, getattr(data, "line", 1),
                            "the file must be a mapping starting with 'type:'")
    if typed_only and "type" not in data:
        return None
    kind = require(data, "type", str, path)
    if kind not in RULE_TYPES:
        raise RuleFileError(path, data.line_of("type"),
                            f"unknown rule type {kind!r}; expected one of {', '.join(RULE_TYPES)}")
    return _File(path, data)


def load_rulebook(rules_dir: Path | str | None = None, deployment: Path | str | None = None) -> Rulebook:
    """Read and validate every ``*.yaml`` in ``rules_dir`` (default: the ``rules/`` shipped here).

    ``deployment`` names a deployment file to use instead of the folder's own ``type: deployment``
    file, so one rule set can serve several sites that differ only in company name and 工号 format.
    """
    directory = rules_folder(rules_dir)
    files: dict[str, _File] = {}
    untyped: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        f = _open(path, typed_only=True)
        if f is None:
            untyped.append(path.name)
            continue
        kind = f.data["type"]
        if kind == "deployment" and deployment is not None:
            continue
        if kind in files:
            raise RuleFileError(path, f.data.line_of("type"),
                                f"a second {kind!r} file; {files[kind].path.name} already defines it")
        files[kind] = f
    if deployment is not None:
        f = _open(Path(deployment))
        assert f is not None
        if f.data["type"] != "deployment":
            raise RuleFileError(f.path, f.data.line_of("type"), "expected 'type: deployment'")
        files["deployment"] = f
    missing = [k for k in RULE_TYPES if k not in files]
    if missing:
        note = f" (files without 'type:' are not rule files: {', '.join(untyped)})" if untyped else ""
        raise RuleFileError(directory, None, f"no rule file of type {', '.join(missing)}{note}")

    settings = _read_matching(files["matching"])
    dep = _read_deployment(files["deployment"])
    closing_file = files["closing"]
    closing = _read_parts_rule(closing_file, "closing", settings, dep, {"anything_else"})
    anything_else = closing_file.phrases(closing_file.data, "anything_else", "anything_else", settings,
                                         group="anything_else")
    hold = files["hold_notice"]
    emp = files["empathy_after_complaint"]
    emp.only_keys(emp.data, {"type", "complaint_phrases", "empathy_phrases", "response_window_s",
                             "min_score"}, "empathy_after_complaint")
    emp_score = emp.number(emp.data, "min_score", 0.0, 1.0, lo_open=True) if "min_score" in emp.data else None
    return Rulebook(
        directory=directory,
        settings=settings,
        deployment=dep,
        greeting=_read_parts_rule(files["greeting"], "greeting", settings, dep, set()),
        closing=closing,
        anything_else=anything_else,
        forbidden=_read_forbidden(files["forbidden_phrases"], settings),
        politeness=_read_simple_list(files["politeness"], "politeness", settings),
        fillers=_read_simple_list(files["fillers"], "fillers", settings),
        hold_notice=_read_simple_list(hold, "hold_notice", settings, frozenset({"before_silence_s"})),
        hold_notice_window_s=hold.number(hold.data, "before_silence_s", 0.0, 120.0),
        complaints=emp.phrases(emp.data, "complaint_phrases", "complaint", settings, min_score=emp_score),
        empathy=emp.phrases(emp.data, "empathy_phrases", "empathy", settings, min_score=emp_score),
        empathy_window_s=emp.number(emp.data, "response_window_s", 0.0, 600.0, lo_open=True),
        thresholds=_read_thresholds(files["thresholds"]),
        files={k: v.path for k, v in files.items()},
    )

