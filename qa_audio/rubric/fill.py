"""Pre-filling the inspector's sheet: the call's findings, turns and acoustics in, a :class:`RubricResult` out.

The rubric is a stage of its own, after the checks: :meth:`qa_audio.Analyzer.analyze` fills it
with the sheet of the rules it was given (``--rules``), holds it on ``CallAnalysis.rubric``, and
every output only serialises or shows it. The evaluation reads typed inputs; where a condition in
``rubric.yaml`` names a field (``level``, ``severity``, ``pitch_std_st``), that field is read from the
finding or party figures as the JSON writes them, so the inspector can check every decision
against the JSON with the numbers rounded the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from qa_audio.acoustic.measure import Acoustics
from qa_audio.labels import COMPARATOR_SIGNS, FIELD_NAMES, ROLE_NAMES, RULE_NAMES, VALUE_NAMES, describe_finding
from qa_audio.rubric.sheet import (
    COMPARATORS,
    Condition,
    Item,
    RubricSheet,
    Rule,
    merged_ranges,
    normalise_text,
    round_score,
)
from qa_audio.schema import (
    MAX_MOMENTS,
    Evidence,
    Finding,
    RubricItemResult,
    RubricResult,
    Transcript,
    Turn,
    finding_from_dict,
    round_json,
    transcript_from_result,
)
from qa_audio.speech.roles import RoleAssignment

DEFAULT_MATCH_CONFIDENCE = 0.9
"""How sure a finding condition is when none of its findings carries a confidence of its own."""
PHRASE_CONFIDENCE = 0.7
"""Plain substring matches on ASR text: right most of the time, never certain."""
ACOUSTIC_CONFIDENCE = 0.6


@dataclass
class _Match:
    """A condition that held: the evidence behind it and how sure that evidence is."""

    evidence: list[Evidence] = field(default_factory=list)
    confidence: float = DEFAULT_MATCH_CONFIDENCE


@dataclass(frozen=True)
class _Call:
    """What the sheet is filled from, with the views the conditions read, built once per call."""

    transcript: Transcript
    findings: list[Finding]
    views: list[dict[str, Any]]
    parties: list[dict[str, Any]]
    role_confidence: float


def fill_rubric(transcript: Transcript, roles: RoleAssignment, findings: list[Finding],
                acoustics: Acoustics | None, sheet: RubricSheet) -> RubricResult:
    """Every item of ``sheet`` pre-filled, the footer (合计, problems, suggestions) and the flags."""
    parties = [round_json(asdict(p)) for p in acoustics.parties.values()] if acoustics else []
    # the role confidence as the output reports it, so a reader can redo the arithmetic
    return _fill(_Call(transcript=transcript, findings=findings, views=[f.fields() for f in findings],
                       parties=parties, role_confidence=round(roles.confidence, 3)), sheet)


def fill_rubric_from_result(result: dict[str, Any], sheet: RubricSheet) -> RubricResult:
    """The sheet filled again from a saved ``analyze`` JSON (the store, a file): no audio needed.

    For re-scoring stored calls under an edited ``rubric.yaml``, and for the benchmarks. A field
    the JSON lacks (an older schema) reads as absent, as :func:`qa_audio.schema.finding_from_dict` says.
    """
    transcript = transcript_from_result(result)
    findings = [finding_from_dict(f) for f in result.get("findings") or []]
    parties = list(((result.get("acoustics") or {}).get("parties") or {}).values())
    role_conf = float((result.get("roles") or {}).get("confidence") or 0.0)
    return _fill(_Call(transcript=transcript, findings=findings, views=[f.fields() for f in findings],
                       parties=parties, role_confidence=role_conf), sheet)


def _fill(call: _Call, sheet: RubricSheet) -> RubricResult:
    role_conf = call.role_confidence
    items: list[RubricItemResult] = []
    problems: list[str] = []
    suggestions: list[str] = []
    fired_ids: set[str] = set()
    for item in sheet.items:
        filled, fired = _fill_item(item, call, sheet)
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
            if rule.advice and rule.advice not in filled.advice:
                filled.advice.append(rule.advice)
    scored = [i for i in items if i.score is not None]
    auto = [i for i in items if i.status == "auto"]
    total = round_score(sum(i.score for i in scored if i.score is not None))
    flags = []
    if fired_ids & set(sheet.fatal_rules):
        flags.append("fatal")
    low_auto = [i.id for i in auto if i.confidence is not None and i.confidence < sheet.needs_review_below]
    if low_auto or role_conf < sheet.low_role_confidence:
        flags.append("needs_review")
    inspector_points = round_score(sum(i.points for i in items if i.score is None))
    auto_total = round_score(sum(i.score for i in auto if i.score is not None))
    auto_max = round_score(sum(i.points for i in auto))
    scored_max = round_score(sum(i.points for i in scored))
    max_total = round_score(sheet.max_total)
    summary = (f"合计 {total:g}/{max_total:g}（自动判定 {auto_total:g}/{auto_max:g} 分，"
               f"建议分 {round_score(total - auto_total):g}/{round_score(scored_max - auto_max):g} 分，"
               f"待质检员评定 {inspector_points:g} 分）")
    if not problems:
        problems.append("未发现明显问题（请质检员复核录音）")
    if not suggestions:
        suggestions.append("保持现有服务水平")
    review_reasons = ([f"自动判定项置信度低：{', '.join(low_auto)}"] if low_auto else []) + (
        [f"角色判定置信度低（{role_conf:.2f}）"] if role_conf < sheet.low_role_confidence else [])
    return RubricResult(
        version=sheet.version, title=sheet.title, requirements=sheet.requirements, sheet_path=str(sheet.path),
        items=items, total=total, max_total=max_total, scored_max=scored_max, auto_total=auto_total,
        auto_max=auto_max, inspector_points=inspector_points, summary=summary, flags=flags,
        review_reasons=review_reasons, problems=problems, suggestions=suggestions,
    )


# --------------------------------------------------------------------------- evaluating


def _field_ok(value: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return all(COMPARATORS[op](value, number) for op, number in expected.items())
    return value == expected


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return float(a["start"]) < float(b["end"]) and float(b["start"]) < float(a["end"])


def _evaluate(cond: Condition, call: _Call, sheet: RubricSheet) -> _Match | None:
    if cond.rule is not None:
        return _eval_findings(cond, call)
    if cond.phrases is not None:
        return _eval_phrases(cond, call.transcript, sheet.phrases[cond.phrases])
    return _eval_acoustic(cond, call)


def _eval_findings(cond: Condition, call: _Call) -> _Match | None:
    pairs = [(f, v) for f, v in zip(call.findings, call.views, strict=True) if f.rule == cond.rule]
    if cond.role is not None:
        pairs = [(f, v) for f, v in pairs if f.role == cond.role]
    pairs = [(f, v) for f, v in pairs if all(k in v and _field_ok(v[k], want) for k, want in cond.fields)]
    if cond.overlaps is not None:
        spans = [v for f, v in zip(call.findings, call.views, strict=True) if f.rule == cond.overlaps]
        pairs = [(f, v) for f, v in pairs if any(_overlap(v, s) for s in spans)]
    if len(pairs) < cond.min_count:
        return None
    evidence = [e for f, v in pairs for e in f.moments(describe_finding(v))]
    confidences = [float(f.confidence) for f, _ in pairs if f.confidence is not None]
    return _Match(evidence=evidence, confidence=min(confidences) if confidences else DEFAULT_MATCH_CONFIDENCE)


def _eval_phrases(cond: Condition, transcript: Transcript, phrases: tuple[str, ...]) -> _Match | None:
    evidence = []
    for turn in transcript.turns:
        if cond.role is not None and turn.role != cond.role:
            continue
        text = normalise_text(turn.text)
        hits = [p for p in phrases if p in text]
        if hits:
            start, end = _phrase_time(turn, hits[0])
            evidence.append(Evidence(rule="phrases", role=turn.role, start=start, end=end,
                                     text=_quote(text, hits[0]), phrase=hits[0],
                                     note=f"{ROLE_NAMES.get(turn.role, '')}说了“{hits[0]}”"))
    if len(evidence) < cond.min_count:
        return None
    return _Match(evidence=evidence[:MAX_MOMENTS], confidence=PHRASE_CONFIDENCE)


def _phrase_time(turn: Turn, phrase: str) -> tuple[float, float]:
    """The time of the words that spell the phrase (so a link jumps to it), else the turn's span."""
    words = turn.words
    joined = ""
    starts = []
    for word in words:
        starts.append((len(joined), word))
        joined += normalise_text(word.text)
    at = joined.find(phrase)
    if at >= 0 and starts:
        first = max((w for pos, w in starts if pos <= at), key=lambda w: w.start, default=words[0])
        last_pos = at + len(phrase) - 1
        last = max((w for pos, w in starts if pos <= last_pos), key=lambda w: w.start, default=first)
        return float(first.start), float(last.end)
    return float(turn.start), float(turn.end)


def _quote(text: str, phrase: str, context: int = 8) -> str:
    at = text.find(phrase)
    if at < 0:
        return text[: 2 * context]
    lo, hi = max(0, at - context), min(len(text), at + len(phrase) + context)
    return ("…" if lo else "") + text[lo:hi] + ("…" if hi < len(text) else "")


def _eval_acoustic(cond: Condition, call: _Call) -> _Match | None:
    evidence = []
    for party in call.parties:
        if cond.role is not None and party.get("role") != cond.role:
            continue
        value = party.get(cond.acoustic)
        if value is None:
            continue
        if all(_field_ok(value, {k: v}) if k in COMPARATORS else party.get(k) == v for k, v in cond.fields):
            start, end = _party_span(call.transcript, party.get("speaker"))
            evidence.append(Evidence(rule="acoustic", role=party.get("role", "none"), start=start, end=end,
                                     value=value,
                                     note=f"{ROLE_NAMES.get(party.get('role', ''), '')} {cond.acoustic} = {value}"))
    if len(evidence) < cond.min_count:
        return None
    return _Match(evidence=evidence, confidence=ACOUSTIC_CONFIDENCE)


def _party_span(transcript: Transcript, speaker: str | None) -> tuple[float, float]:
    """Point at the party's longest turn (where its longest pause lies is not kept)."""
    turns = [t for t in transcript.turns if t.speaker == speaker]
    if not turns:
        return 0.0, 0.0
    longest = max(turns, key=lambda t: float(t.end) - float(t.start))
    return float(longest.start), float(longest.end)


# --------------------------------------------------------------------------- filling one item


def _fill_item(item: Item, call: _Call, sheet: RubricSheet) -> tuple[RubricItemResult, list[tuple[Rule, _Match]]]:
    fired: list[tuple[Rule, _Match]] = []
    for rule in item.rules:
        match = _evaluate(rule.when, call, sheet)
        if match is not None:
            fired.append((rule, match))
    evidence = _dedupe([e for _, m in fired for e in m.evidence])
    points = round_score(item.points)
    bands = merged_ranges(item.bands)
    if item.status == "inspector":
        note = "录音无法判定，由质检员评分" + ("；以下为可参考的证据" if evidence else "")
        return RubricItemResult(id=item.id, name=item.name, points=points, status=item.status, bands=bands,
                                score=None, confidence=None, band=None, basis=[note], evidence=evidence), fired
    assert item.base is not None
    role_conf = call.role_confidence
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
    return RubricItemResult(
        id=item.id, name=item.name, points=points, status=status, bands=bands, score=round_score(score),
        confidence=round(max(0.0, min(1.0, conf * role_conf)), 3), band=_band_text(item, score, binding),
        basis=basis, evidence=evidence, demoted_from="auto" if demoted else None,
    ), fired


def _rule_conf(rule: Rule, match: _Match) -> float:
    return rule.confidence if rule.confidence is not None else match.confidence


def _cond_text(rule: Rule) -> str:
    cond = rule.when
    if cond.rule:
        name = RULE_NAMES.get(cond.rule, cond.rule)
        parts = [f"{FIELD_NAMES.get(k, k)}{_value_text(v)}" for k, v in cond.fields]
        if cond.min_count > 1:
            parts.append(f"≥{cond.min_count} 次")
        if cond.overlaps:
            parts.append(f"在{RULE_NAMES.get(cond.overlaps, cond.overlaps)}内")
        return name + (f"（{'，'.join(parts)}）" if parts else "")
    if cond.phrases:
        return f"{ROLE_NAMES.get(cond.role or '', '')}话语（{cond.phrases}）"
    return f"{cond.acoustic}"


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(f"{COMPARATOR_SIGNS[op]}{number:g}" for op, number in value.items())
    if isinstance(value, bool | str) and value in VALUE_NAMES:
        return f"：{VALUE_NAMES[value]}"
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


def _dedupe(evidence: list[Evidence]) -> list[Evidence]:
    seen = set()
    out = []
    for e in sorted(evidence, key=lambda e: (float(e.start), float(e.end))):
        key = (e.rule, round(float(e.start), 2), round(float(e.end), 2), e.note)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out
