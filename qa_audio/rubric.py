"""The inspector's 100-point sheet, pre-filled from the findings: data in ``rules/rubric.yaml``.

The sheet (items, points, band wording) and the mapping from findings/acoustics to a suggested
score are both read from the YAML, so another call centre's sheet is another file. The engine here
only knows three kinds of condition (findings, phrases in turns, party acoustics) and two effects
(``set`` a score, ``cap`` it), which is how the sheet itself is written ("服务忌语 ... 0-2 分").

``fill_rubric(result, sheet)`` takes the ``analyze`` JSON dict and returns its ``rubric`` object
(documented in ``docs/rubric.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa_audio.rule_files import LineDict, RuleFileError, load_rule_file, require

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
RUBRIC_FILE = "rubric.yaml"
RUBRIC_VERSION = "1.0"
STATUSES = ("auto", "suggested", "inspector")
COMPARATORS = {"gte": lambda a, b: a >= b, "gt": lambda a, b: a > b,
               "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b}
# Keys of a `when` that are not finding fields.
CONDITION_KEYS = {"rule", "role", "min_count", "overlaps", "phrases", "acoustic"}
RULE_KEYS = {"id", "when", "set", "cap", "why", "advice", "confidence", "status"}
ITEM_KEYS = {"id", "name", "points", "status", "bands", "base", "base_confidence", "rules"}
ROLE_NAMES = {"agent": "坐席", "customer": "客户", "none": "无人"}
# Evidence entries kept per rule: the reader needs examples, not every filler word.
MAX_EVIDENCE_PER_RULE = 6
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
    directory = Path(rules_dir) if rules_dir is not None else DEFAULT_RULES_DIR
    path = directory / RUBRIC_FILE
    if not path.exists():
        path = DEFAULT_RULES_DIR / RUBRIC_FILE  # a deployment's rules folder may keep the shipped sheet
    from qa_audio.roles import load_role_cues

    low_role = load_role_cues(Path(rules_dir) if rules_dir is not None else None).low_confidence
    return parse_rubric(path, low_role_confidence=low_role)


def parse_rubric(path: Path | str, low_role_confidence: float = 0.6) -> RubricSheet:
    """Parse one rubric file (no roles.yaml lookup): used by ``load_rubric`` and the tests."""
    path = Path(path)
    data = load_rule_file(path)
    if not isinstance(data, dict):
        raise RuleFileError(path, getattr(data, "line", 1), "expected a mapping with 'items'")
    phrases_raw = data.get("phrases", {})
    if not isinstance(phrases_raw, dict):
        raise RuleFileError(path, data.line_of("phrases"), "'phrases' must map names to lists of phrases")
    phrases: dict[str, tuple[str, ...]] = {}
    for name, values in phrases_raw.items():
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise RuleFileError(path, phrases_raw.line_of(name), f"phrases {name!r} must be a list of text")
        phrases[str(name)] = tuple(_norm(v) for v in values)
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


def _norm(text: str) -> str:
    return _PUNCT.sub("", text or "")


# --------------------------------------------------------------------------- evaluating


@dataclass
class _Match:
    """A condition that held: the evidence behind it and how sure that evidence is."""

    evidence: list[dict[str, Any]] = field(default_factory=list)
    confidence: float = 0.9


def _field_ok(value: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return all(COMPARATORS[op](value, number) for op, number in expected.items())
    return value == expected


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return float(a["start"]) < float(b["end"]) and float(b["start"]) < float(a["end"])


def _evaluate(cond: Condition, result: dict[str, Any], sheet: RubricSheet) -> _Match | None:
    if cond.rule is not None:
        return _eval_findings(cond, result)
    if cond.phrases is not None:
        return _eval_phrases(cond, result, sheet.phrases[cond.phrases])
    return _eval_acoustic(cond, result)


def _eval_findings(cond: Condition, result: dict[str, Any]) -> _Match | None:
    findings = [f for f in result.get("findings") or [] if f.get("rule") == cond.rule]
    if cond.role is not None:
        findings = [f for f in findings if f.get("role") == cond.role]
    findings = [f for f in findings if all(k in f and _field_ok(f[k], v) for k, v in cond.fields)]
    if cond.overlaps is not None:
        spans = [f for f in result.get("findings") or [] if f.get("rule") == cond.overlaps]
        findings = [f for f in findings if any(_overlap(f, s) for s in spans)]
    if len(findings) < cond.min_count:
        return None
    evidence: list[dict[str, Any]] = []
    scores: list[float] = []
    for finding in findings:
        evidence.extend(_finding_evidence(finding))
        for key in ("score", "confidence"):
            if isinstance(finding.get(key), int | float) and not isinstance(finding.get(key), bool):
                scores.append(float(finding[key]))
        # greeting/closing: how well each heard part matched its phrase
        scores.extend(float(e["score"]) for e in finding.get("evidence") or []
                      if isinstance(e, dict) and isinstance(e.get("score"), int | float))
    return _Match(evidence=evidence, confidence=min(scores) if scores else 0.9)


def _finding_evidence(finding: dict[str, Any]) -> list[dict[str, Any]]:
    """One or more evidence entries (time, quote, note) for a finding."""
    rule = finding["rule"]
    base = {"rule": rule, "role": finding.get("role", "none")}
    sub = finding.get("evidence") or []
    if rule in ("politeness", "fillers"):
        # whole-call counters: the individual words are the evidence
        entries = [{**base, "start": e["start"], "end": e["end"], "text": e.get("text", ""),
                    "phrase": e.get("phrase"), "note": f"{_RULE_NAMES.get(rule, rule)}：{e.get('phrase', '')}"}
                   for e in sub if isinstance(e, dict) and "start" in e]
        if not entries:
            entries = [{**base, "start": finding["start"], "end": finding["start"], "text": "",
                        "note": f"{_RULE_NAMES.get(rule, rule)}共 {finding.get('count', 0)} 次"}]
        return entries[:MAX_EVIDENCE_PER_RULE]
    if rule == "empathy_after_complaint":
        entries = []
        for pair in sub:
            complaint, empathy = pair.get("complaint"), pair.get("empathy")
            if isinstance(complaint, dict) and "start" in complaint:
                entries.append({**base, "role": "customer", "start": complaint["start"], "end": complaint["end"],
                                "text": complaint.get("text", ""),
                                "note": "客户抱怨" + ("，坐席已安抚" if empathy else "，坐席未安抚")})
            if isinstance(empathy, dict) and "start" in empathy:
                entries.append({**base, "start": empathy["start"], "end": empathy["end"],
                                "text": empathy.get("text", ""), "note": "坐席致歉/共情"})
        if not entries:
            entries = [{**base, "start": finding["start"], "end": finding["start"], "text": "",
                        "note": f"客户抱怨 {finding.get('count', 0)} 次，已安抚 {finding.get('answered', 0)} 次"}]
        return entries[:MAX_EVIDENCE_PER_RULE]
    entry = {**base, "start": finding["start"], "end": finding["end"], "text": finding.get("text", ""),
             "note": _describe(finding)}
    for key in ("phrase", "severity", "score", "level", "duration", "confidence"):
        if key in finding and finding[key] is not None:
            entry[key] = finding[key]
    return [entry]


_RULE_NAMES = {
    "answer_delay": "接听时间", "greeting": "首问语", "closing": "结束语", "anything_else": "询问其他需求",
    "last_speaker": "最后说话方", "forbidden_phrase": "服务忌语", "silence": "冷场", "interruption": "抢话",
    "politeness": "礼貌用语", "fillers": "口头语", "empathy_after_complaint": "投诉安抚",
    "speech_rate": "语速", "flat_tone": "语调平淡", "customer_agitation": "客户情绪激动",
    "phrases": "话语", "acoustic": "声学指标",
}


def _describe(f: dict[str, Any]) -> str:
    """A short Chinese note on a finding, for the evidence list."""
    rule = f["rule"]
    if rule == "answer_delay":
        return f"坐席 {f.get('seconds')} 秒后开口（上限 {f.get('max_s')} 秒）"
    if rule in ("greeting", "closing"):
        missing = "、".join(_PART_NAMES.get(p, p) for p in f.get("parts_missing") or []) or "无"
        return f"{_RULE_NAMES[rule]} {f.get('level')} 级，缺少：{missing}"
    if rule == "anything_else":
        return "已询问“还有什么可以帮您”" if f.get("asked") else "未询问“还有什么可以帮您”"
    if rule == "last_speaker":
        return f"最后说话的是{ROLE_NAMES.get(f.get('last_speaker', ''), '')}"
    if rule == "forbidden_phrase":
        return f"服务忌语“{f.get('phrase')}”（{f.get('severity')} 分档）"
    if rule == "silence":
        hold = "，之前有等待提示" if f.get("hold_notice") else "，之前没有等待提示"
        return f"冷场 {f.get('duration')} 秒{hold}"
    if rule == "interruption":
        return f"坐席抢话 {f.get('overlap_s')} 秒"
    if rule == "speech_rate":
        direction = "过快" if f.get("direction") == "too_fast" else "过慢"
        return f"语速{direction}：{f.get('value')} {f.get('unit', '字/分钟')}"
    if rule == "flat_tone":
        return f"语调平淡：音高标准差 {f.get('value')} 半音"
    if rule == "customer_agitation":
        return f"客户情绪激动（指数 {f.get('value')}）"
    return _RULE_NAMES.get(rule, rule)


_PART_NAMES = {"greeting": "问候", "company": "公司名", "agent_id": "工号", "offer_help": "请问有什么可以帮您",
               "thanks": "感谢您的来电", "wish": "祝您生活愉快", "goodbye": "再见"}


def _eval_phrases(cond: Condition, result: dict[str, Any], phrases: tuple[str, ...]) -> _Match | None:
    evidence = []
    for turn in result.get("turns") or []:
        if cond.role is not None and turn.get("role") != cond.role:
            continue
        text = _norm(turn.get("text", ""))
        hits = [p for p in phrases if p in text]
        if hits:
            start, end = _phrase_time(turn, hits[0])
            evidence.append({"rule": "phrases", "role": turn.get("role", "none"), "start": start, "end": end,
                             "text": _quote(text, hits[0]), "phrase": hits[0],
                             "note": f"{ROLE_NAMES.get(turn.get('role', ''), '')}说了“{hits[0]}”"})
    if len(evidence) < cond.min_count:
        return None
    # plain substring matches on ASR text: right most of the time, never certain
    return _Match(evidence=evidence[:MAX_EVIDENCE_PER_RULE], confidence=0.7)


def _phrase_time(turn: dict[str, Any], phrase: str) -> tuple[float, float]:
    """The time of the words that spell the phrase (so a link jumps to it), else the turn's span."""
    words = turn.get("words") or []
    joined = ""
    starts: list[tuple[int, dict[str, Any]]] = []
    for word in words:
        starts.append((len(joined), word))
        joined += _norm(word.get("text", ""))
    at = joined.find(phrase)
    if at >= 0 and starts:
        first = max((w for pos, w in starts if pos <= at), key=lambda w: w["start"], default=words[0])
        last_pos = at + len(phrase) - 1
        last = max((w for pos, w in starts if pos <= last_pos), key=lambda w: w["start"], default=first)
        return float(first["start"]), float(last["end"])
    return float(turn.get("start", 0.0)), float(turn.get("end", 0.0))


def _quote(text: str, phrase: str, context: int = 8) -> str:
    at = text.find(phrase)
    if at < 0:
        return text[: 2 * context]
    lo, hi = max(0, at - context), min(len(text), at + len(phrase) + context)
    return ("…" if lo else "") + text[lo:hi] + ("…" if hi < len(text) else "")


def _eval_acoustic(cond: Condition, result: dict[str, Any]) -> _Match | None:
    parties = ((result.get("acoustics") or {}).get("parties") or {}).values()
    evidence = []
    for party in parties:
        if cond.role is not None and party.get("role") != cond.role:
            continue
        value = party.get(cond.acoustic)
        if value is None:
            continue
        if all(_field_ok(value, {k: v}) if k in COMPARATORS else party.get(k) == v for k, v in cond.fields):
            span = _party_span(result, party.get("speaker"))
            evidence.append({"rule": "acoustic", "role": party.get("role", "none"), "start": span[0],
                             "end": span[1], "text": "", "value": value,
                             "note": f"{ROLE_NAMES.get(party.get('role', ''), '')} {cond.acoustic} = {value}"})
    if len(evidence) < cond.min_count:
        return None
    return _Match(evidence=evidence, confidence=0.6)


def _party_span(result: dict[str, Any], speaker: str | None) -> tuple[float, float]:
    """Where a party's longest pause lies is not in the JSON; point at its longest turn instead."""
    turns = [t for t in result.get("turns") or [] if t.get("speaker") == speaker]
    if not turns:
        return 0.0, 0.0
    longest = max(turns, key=lambda t: float(t["end"]) - float(t["start"]))
    return float(longest["start"]), float(longest["end"])


# --------------------------------------------------------------------------- filling


def fill_rubric(result: dict[str, Any], sheet: RubricSheet) -> dict[str, Any]:
    """The ``rubric`` object of the analyze JSON: every item pre-filled, the footer and the flags."""
    role_conf = float((result.get("roles") or {}).get("confidence") or 0.0)
    items = []
    problems: list[str] = []
    suggestions: list[str] = []
    fired_ids: set[str] = set()
    for item in sheet.items:
        filled, fired = _fill_item(item, result, sheet, role_conf)
        items.append(filled)
        families: set[tuple] = set()
        for rule, _ in fired:
            if rule.id:
                fired_ids.add(rule.id)
            # "twice" and "once" of the same finding are one problem: the first (worse) one words it
            family = (rule.when.rule, rule.when.phrases, rule.when.acoustic, repr(rule.when.fields))
            repeated = family in families
            families.add(family)
            if rule.why and not repeated and (rule.set is not None or rule.cap is not None
                                              or item.status == "inspector"):
                line = f"{item.name}：{rule.why}"
                if line not in problems:
                    problems.append(line)
            if rule.advice and rule.advice not in suggestions:
                suggestions.append(rule.advice)
    scored = [i for i in items if i["score"] is not None]
    auto = [i for i in items if i["status"] == "auto"]
    total = _round(sum(i["score"] for i in scored))
    flags = []
    if fired_ids & set(sheet.fatal_rules):
        flags.append("fatal")
    low_auto = [i["id"] for i in auto if i["confidence"] is not None and i["confidence"] < sheet.needs_review_below]
    if low_auto or role_conf < sheet.low_role_confidence:
        flags.append("needs_review")
    inspector_points = _round(sum(i["points"] for i in items if i["score"] is None))
    auto_total = _round(sum(i["score"] for i in auto))
    auto_max = _round(sum(i["points"] for i in auto))
    summary = (f"合计 {total:g}/{_round(sheet.max_total):g}（自动判定 {auto_total:g}/{auto_max:g} 分，"
               f"建议分 {_round(total - auto_total):g}/{_round(sum(i['points'] for i in scored) - auto_max):g} 分，"
               f"待质检员评定 {inspector_points:g} 分）")
    if not problems:
        problems.append("未发现明显问题（请质检员复核录音）")
    if not suggestions:
        suggestions.append("保持现有服务水平")
    return {
        "version": sheet.version,
        "sheet": {"title": sheet.title, "requirements": sheet.requirements, "path": str(sheet.path)},
        "items": items,
        "total": total,
        "max_total": _round(sheet.max_total),
        "scored_max": _round(sum(i["points"] for i in scored)),
        "auto_total": auto_total,
        "auto_max": auto_max,
        "inspector_points": inspector_points,
        "summary": summary,
        "flags": flags,
        "review_reasons": ([f"自动判定项置信度低：{', '.join(low_auto)}"] if low_auto else [])
        + ([f"角色判定置信度低（{role_conf:.2f}）"] if role_conf < sheet.low_role_confidence else []),
        "problems": problems,
        "suggestions": suggestions,
    }


def _fill_item(item: Item, result: dict[str, Any], sheet: RubricSheet,
               role_conf: float) -> tuple[dict[str, Any], list[tuple[Rule, _Match]]]:
    fired: list[tuple[Rule, _Match]] = []
    for rule in item.rules:
        match = _evaluate(rule.when, result, sheet)
        if match is not None:
            fired.append((rule, match))
    evidence = _dedupe([e for _, m in fired for e in m.evidence])
    out: dict[str, Any] = {"id": item.id, "name": item.name, "points": _round(item.points),
                           "max": _round(item.points), "status": item.status,
                           "bands": _merged_ranges(item.bands)}
    if item.status == "inspector":
        note = "录音无法判定，由质检员评分" + ("；以下为可参考的证据" if evidence else "")
        out.update(score=None, confidence=None, band=None, basis=[note], evidence=evidence)
        return out, fired
    assert item.base is not None
    score, conf = item.base, item.base_confidence
    basis = [f"基础分 {item.base:g}"]
    decided_by: Rule | None = None
    for rule, match in fired:
        if rule.set is not None:
            score, conf, decided_by = rule.set, _rule_conf(rule, match), rule
            basis = [f"{_cond_text(rule)} → {rule.set:g} 分"]
            break
    caps = [(rule, match) for rule, match in fired if rule.cap is not None]
    binding: Rule | None = None
    if caps:
        rule, match = min(caps, key=lambda rm: rm[0].cap)  # the lowest cap binds (the sheet's "caps at")
        if rule.cap is not None and rule.cap < score:
            score, binding = rule.cap, rule
            conf = min(conf, _rule_conf(rule, match)) if decided_by else _rule_conf(rule, match)
            basis.append(f"{_cond_text(rule)} → 封顶 {rule.cap:g} 分")
    status = item.status
    # auto when the rule that fixed the score is one the audio decides (a 服务忌语, dead air)
    deciding = binding if binding is not None else decided_by
    if deciding is not None and deciding.status == "auto":
        status = "auto"
    demoted = status == "auto" and role_conf < sheet.low_role_confidence
    if demoted:
        # who is the agent is itself a guess: the audio no longer decides the item on its own
        status = "suggested"
        basis.append(f"角色判定置信度低（{role_conf:.2f}），自动判定降为建议")
    out.update(score=_round(score), confidence=round(max(0.0, min(1.0, conf * role_conf)), 3), status=status,
               band=_band_text(item, score, binding), basis=basis, evidence=evidence)
    if demoted:
        out["demoted_from"] = "auto"
    return out, fired


def _rule_conf(rule: Rule, match: _Match) -> float:
    return rule.confidence if rule.confidence is not None else match.confidence


def _cond_text(rule: Rule) -> str:
    cond = rule.when
    if cond.rule:
        name = _RULE_NAMES.get(cond.rule, cond.rule)
        parts = [f"{_FIELD_NAMES.get(k, k)}{_value_text(v)}" for k, v in cond.fields]
        if cond.min_count > 1:
            parts.append(f"≥{cond.min_count} 次")
        if cond.overlaps:
            parts.append(f"在{_RULE_NAMES.get(cond.overlaps, cond.overlaps)}内")
        return name + (f"（{'，'.join(parts)}）" if parts else "")
    if cond.phrases:
        return f"{ROLE_NAMES.get(cond.role or '', '')}话语（{cond.phrases}）"
    return f"{cond.acoustic}"


_FIELD_NAMES = {"level": "级别", "within_limit": "15秒内接起", "asked": "已询问", "before_close": "在结束语之前",
                "last_speaker": "最后说话方", "severity": "档位", "hold_notice": "有等待提示", "count": "次数",
                "unanswered": "未安抚次数", "answered": "已安抚次数", "direction": "方向"}
_OPS = {"gte": "≥", "gt": ">", "lte": "≤", "lt": "<"}
_VALUE_NAMES = {True: "：是", False: "：否", "too_fast": "：过快", "too_slow": "：过慢", "customer": "：客户",
                "agent": "：坐席"}


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(f"{_OPS[op]}{number:g}" for op, number in value.items())
    if isinstance(value, bool | str) and value in _VALUE_NAMES:
        return _VALUE_NAMES[value]
    return f" {value}"


def _band_text(item: Item, score: float, binding: Rule | None) -> str | None:
    holding = [b for b in item.bands if b.min <= score <= b.max]
    if not holding:
        return None
    if binding is not None:
        # overlapping bands (7b's 10-12 and 9-11): the one the cap names is the one that applies
        capped = [b for b in holding if b.max == binding.cap]
        if capped:
            return capped[0].text
    return holding[0].text


def _merged_ranges(bands: tuple[Band, ...]) -> list[list[float]]:
    """Band ranges for agreement statistics, overlapping bands merged (7b: 9-11 ∪ 10-12 = 9-12)."""
    ranges = sorted([b.min, b.max] for b in bands)
    merged: list[list[float]] = []
    for low, high in ranges:
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [[_round(a), _round(b)] for a, b in merged]


def band_index(score: float, ranges: list[list[float]]) -> int:
    """Index of the merged band holding ``score`` (nearest band when between two)."""
    for index, (low, high) in enumerate(ranges):
        if low <= score <= high:
            return index
    return min(range(len(ranges)), key=lambda i: min(abs(score - ranges[i][0]), abs(score - ranges[i][1])))


def _dedupe(evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = set()
    out = []
    for e in sorted(evidence, key=lambda e: (float(e["start"]), float(e["end"]))):
        key = (e["rule"], round(float(e["start"]), 2), round(float(e["end"]), 2), e.get("note"))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _round(value: float) -> float | int:
    """Whole scores as ints (the sheet's points are whole), anything else to 0.5."""
    rounded = round(float(value) * 2) / 2
    return int(rounded) if rounded == int(rounded) else rounded


# --------------------------------------------------------------------------- Markdown

STATUS_NAMES = {"auto": "自动", "suggested": "建议", "inspector": "待质检员"}
FLAG_NAMES = {"fatal": "致命：0-2 档服务忌语", "needs_review": "需复核：置信度低"}


def render_rubric_markdown(rubric: dict[str, Any]) -> str:
    """The pre-filled sheet as a Markdown table, with the footer (合计, problems, suggestions)."""
    sheet = rubric.get("sheet") or {}
    lines = [f"## {sheet.get('title', '评分表')}（预填）", ""]
    if sheet.get("requirements"):
        lines += [f"考核要求：{sheet['requirements']}", ""]
    lines += ["| 序号 | 项目 | 分值 | 得分 | 状态 | 置信度 | 档位 | 证据 |", "|---|---|---|---|---|---|---|---|"]
    for item in rubric.get("items") or []:
        score = "—" if item.get("score") is None else f"{item['score']:g}"
        conf = "—" if item.get("confidence") is None else f"{item['confidence']:.2f}"
        evidence = "<br>".join(f"[{_mmss(e['start'])}] {e.get('note', '')}"
                               + (f"：“{e['text']}”" if e.get("text") else "")
                               for e in (item.get("evidence") or [])[:4]) or "—"
        lines.append(f"| {item['id']} | {item['name']} | {item['points']:g} | {score} | "
                     f"{STATUS_NAMES.get(item['status'], item['status'])} | {conf} | "
                     f"{_cell(item.get('band') or '—')} | {_cell(evidence)} |")
    flags = "、".join(f"{f}（{FLAG_NAMES.get(f, f)}）" for f in rubric.get("flags") or []) or "无"
    total = rubric.get("summary") or f"合计 {rubric.get('total')}/{rubric.get('max_total')}"
    lines += ["", f"**{total}**", "", f"**标记**：{flags}", "",
              "**该坐席存在的主要问题**：", ""]
    lines += [f"- {p}" for p in rubric.get("problems") or []]
    lines += ["", "**改善建议**：", ""]
    lines += [f"- {s}" for s in rubric.get("suggestions") or []]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _mmss(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, float(seconds)), 60)
    return f"{int(minutes):02d}:{secs:04.1f}"
