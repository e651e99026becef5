"""The rule checks: a :class:`Transcript` and a :class:`Rulebook` in, a list of findings out.

Phrase checks (greeting, closing, forbidden phrases, ...) read the ASR words through the fuzzy
matcher in :mod:`qa_audio.phrase_match`. Timing checks (answer delay, silence, interruption, last
speaker) read the speech intervals from VAD / the diarizer, never ASR segment edges: a Whisper
segment can span a pause, so its edges say nothing about when anyone spoke. Only when a transcript
has no speech intervals at all do the timing checks fall back to word times.

The findings are :class:`qa_audio.schema.Finding` with typed details; ``rules/FINDINGS.md``
documents their JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from qa_audio.checks.rulebook import PartsRule, Rulebook
from qa_audio.phrase_match import READING_DIGITS, Heard, HeardChar, Hit, Piece, best_per_span, digit_of
from qa_audio.schema import (
    NO_ROLE,
    AnswerDelayDetails,
    AnythingElseDetails,
    ComplaintReply,
    CountDetails,
    EmpathyDetails,
    Finding,
    ForbiddenPhraseDetails,
    InterruptionDetails,
    LastSpeakerDetails,
    PhraseHit,
    ScriptDetails,
    SilenceDetails,
    Transcript,
    Turn,
)

_SEVERITY_RANK = {"3-5": 1, "0-2": 2}


def _hit(h: Hit, part: str | None = None) -> PhraseHit:
    return PhraseHit(phrase=h.phrase.text, text=h.heard, start=h.start, end=h.end, score=h.score, part=part)


def _weakest(hits: list[PhraseHit]) -> float | None:
    """A finding built from phrase matches is as sure as its weakest match."""
    return min((h.score for h in hits), default=None)


# ---------------------------------------------------------------------------------------------
# what was said


@dataclass
class _Heard:
    """Every stretch of same-role speech, and every phrase hit in it (one pass for all rules)."""

    runs: list[Heard]
    hits: list[Hit]

    def of(self, rule: str, role: str | None = None) -> list[Hit]:
        return [h for h in self.hits if h.rule == rule and (role is None or h.role == role)]

    def chars(self, role: str, start: float, end: float) -> list[HeardChar]:
        return [c for r in self.runs if r.role == role for c in r.chars if start <= c.start < end]


def _pieces(turn: Turn) -> list[Piece]:
    if turn.words:
        return [(w.text, w.start, w.end, w.probability) for w in turn.words]
    return [(turn.text, turn.start, turn.end)]


def _listen(transcript: Transcript, rulebook: Rulebook) -> _Heard:
    runs: list[Heard] = []
    group: list[Turn] = []
    for turn in sorted(transcript.turns, key=lambda t: (t.start, t.end)):
        if group and (turn.role != group[-1].role or turn.speaker != group[-1].speaker):
            runs.append(Heard.from_pieces(group[0].role, [p for t in group for p in _pieces(t)]))
            group = []
        group.append(turn)
    if group:
        runs.append(Heard.from_pieces(group[0].role, [p for t in group for p in _pieces(t)]))
    index = rulebook.index
    hits = [h for run in runs for h in index.find(run)]
    return _Heard(runs=runs, hits=hits)


# ---------------------------------------------------------------------------------------------
# when it was said


def _speech(transcript: Transcript, role: str | None, merge_gap: float = 0.0) -> list[tuple[float, float]]:
    """Speech intervals of a role (or everyone), sorted and merged across gaps <= ``merge_gap``."""
    if transcript.speech:
        spans = [(s.start, s.end) for s in transcript.speech
                 if role is None or transcript.roles.get(s.speaker) == role]
    else:  # no VAD / diarizer output: word times are the next best thing, segment edges are not
        turns = [t for t in transcript.turns if role is None or t.role == role]
        spans = [(w.start, w.end) for t in turns for w in t.words]
        if not spans:
            spans = [(t.start, t.end) for t in turns]
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + merge_gap:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _text_between(heard: _Heard, role: str, start: float, end: float) -> str:
    return "".join(c.ch for c in heard.chars(role, start, end))


# ---------------------------------------------------------------------------------------------
# the checks


def _answer_delay(tr: Transcript, rb: Rulebook) -> Finding:
    agent = _speech(tr, "agent")
    first = agent[0][0] if agent else None
    limit = rb.thresholds.answer_delay_max_s
    return Finding(
        rule="answer_delay", role="agent", start=0.0, end=first if first is not None else 0.0,
        details=AnswerDelayDetails(seconds=None if first is None else round(first, 3), max_s=limit,
                                   within_limit=first is not None and first <= limit),
    )


def greeting_window(tr: Transcript, rb: Rulebook) -> tuple[float, float] | None:
    """Where the greeting check looks: from the agent's first turn to the customer's first answer,
    at most ``greeting.window_s`` (the pipeline decodes this stretch again, see speech/opening.py)."""
    agent_turns = [t for t in sorted(tr.turns, key=lambda t: t.start) if t.role == "agent"]
    if not agent_turns:
        return None
    first = agent_turns[0]
    end = first.start + rb.greeting.window_s
    # The greeting ends where the customer first answers it, and never later than window_s: when
    # diarization fails, one "agent turn" can hold the whole call.
    for t in tr.turns:
        if t.role == "customer" and first.end <= t.start < end:
            end = t.start
    return first.start, end


def _grade(rule: PartsRule, hits: list[Hit], extra_found: set[str]) -> tuple[int, list[str], list[str]]:
    found = {h.phrase.group for h in hits} | extra_found
    level = rule.grade(found)
    order = list(rule.parts)
    return level, [p for p in order if p in found], [p for p in order if p not in found]


def _agent_id_digits(chars: list[HeardChar], keyword_hits: list[Hit], digits: int) -> tuple[bool, str]:
    """Whether a 工号 was given, and the digits heard.

    A run of exactly ``digits`` numerals counts on its own, and so does one in which a single
    character only sounds like a digit (Whisper wrote 宫后午三零七 for 工号五三零七 on call14 and
    播号302要 for 工号三零二幺 on h02: the keyword too far off to count, the number plain). After a
    工号 keyword, every syllable that sounds like a digit (要 for 幺, 久 for 九) is read as one, since
    that is where ASR puts homophones of the number.
    """
    def run_at(i: int, homophones: int) -> str:
        out = []
        while i < len(chars):
            c = chars[i]
            d = digit_of(c.ch)
            if d is None and homophones > 0:
                d = next((READING_DIGITS[r] for r in c.readings if r in READING_DIGITS), None)
                homophones -= d is not None
            if d is None:
                break
            out.append(d)
            i += 1
        return "".join(out)

    best = ""
    for h in keyword_hits:
        after = [i for i, c in enumerate(chars) if c.start >= h.end - 1e-6][:3]
        for i in after:
            run = run_at(i, homophones=len(chars))
            if len(run) >= 2:
                best = run
                break
        if best:
            break
    def digit_like(i: int) -> bool:
        return 0 <= i < len(chars) and (digit_of(chars[i].ch) is not None
                                        or any(r in READING_DIGITS for r in chars[i].readings))

    for homophones in (0, 1):
        i = 0
        while i < len(chars) and len(best) != digits:
            run = run_at(i, homophones)
            # the whole number, not a piece of a longer one
            if len(run) == digits and (homophones == 0 or not digit_like(i - 1) and not digit_like(i + digits)):
                best = run
            i += max(1, len(run)) if homophones == 0 else 1
    return bool(keyword_hits) or len(best) == digits, best


def _greeting(tr: Transcript, rb: Rulebook, heard: _Heard) -> tuple[Finding, float]:
    window = greeting_window(tr, rb)
    if window is None:
        return Finding(rule="greeting", role="agent", start=0.0, end=0.0,
                       details=ScriptDetails(level=min(rb.greeting.levels), parts_found=[],
                                             parts_missing=list(rb.greeting.parts), evidence=[],
                                             agent_id_digits="")), 0.0
    w0, w1 = window
    hits = best_per_span([h for h in heard.of("greeting", "agent") if w0 - 0.05 <= h.start < w1])
    id_parts = rb.greeting.agent_id_parts
    kw_hits = [h for h in hits if h.phrase.group in id_parts]
    chars = heard.chars("agent", w0 - 0.05, w1)
    has_id, digits = _agent_id_digits(chars, kw_hits, rb.deployment.agent_id_digits)
    level, found, missing = _grade(rb.greeting, hits, set(id_parts) if has_id else set())
    # Where the greeting stops: its last phrase if any was heard, else the window's last word.
    end = max([h.end for h in hits], default=max([c.end for c in chars], default=w0))
    evidence = [_hit(h, h.phrase.group) for h in hits]
    return Finding(
        rule="greeting", role="agent", start=w0, end=end, text="".join(c.ch for c in chars),
        confidence=_weakest(evidence),
        details=ScriptDetails(level=level, parts_found=found, parts_missing=missing, evidence=evidence,
                              agent_id_digits=digits,
                              agent_id_complete=len(digits) == rb.deployment.agent_id_digits),
    ), end


def near_greeting(tr: Transcript, rb: Rulebook) -> Transcript:
    """The transcript cut to the turns near the greeting's window (all the greeting check reads)."""
    window = greeting_window(tr, rb)
    return replace(tr, turns=[t for t in tr.turns if window and t.start < window[1] and window[0] - 1.0 < t.end])


def greeting_finding(tr: Transcript, rb: Rulebook) -> Finding:
    """The greeting check alone: the pipeline asks it whether the first pass already holds the whole
    greeting (speech/opening.py). Give it :func:`near_greeting`'s cut on a long call."""
    return _greeting(tr, rb, _listen(tr, rb))[0]


def _closing(tr: Transcript, rb: Rulebook, heard: _Heard, greeting_end: float) -> list[Finding]:
    agent_turns = [t for t in tr.turns if t.role == "agent"]
    if not agent_turns:
        return [
            Finding(rule="closing", role="agent", start=0.0, end=0.0,
                    details=ScriptDetails(level=min(rb.closing.levels), parts_found=[],
                                          parts_missing=list(rb.closing.parts), evidence=[])),
            Finding(rule="anything_else", role="agent", start=0.0, end=0.0,
                    details=AnythingElseDetails(asked=False, before_close=False)),
        ]
    last_end = max(t.end for t in agent_turns)
    w0 = max(last_end - rb.closing.window_s, greeting_end)
    hits = best_per_span([h for h in heard.of("closing", "agent") if h.start >= w0])
    level, found, missing = _grade(rb.closing, hits, set())
    chars = heard.chars("agent", w0, last_end + 1.0)
    start = min([h.start for h in hits], default=chars[0].start if chars else w0)
    evidence = [_hit(h, h.phrase.group) for h in hits]
    closing = Finding(
        rule="closing", role="agent", start=start, end=last_end,
        text="".join(c.ch for c in chars if c.start >= start), confidence=_weakest(evidence),
        details=ScriptDetails(level=level, parts_found=found, parts_missing=missing, evidence=evidence),
    )
    # 1d: asking "anything else?" before closing earns the points even if the agent hangs up first.
    bye = [h.start for h in hits if h.phrase.group == "goodbye"]
    close_at = min(bye) if bye else last_end
    asks = best_per_span([h for h in heard.of("anything_else", "agent") if h.start >= greeting_end])
    if asks:
        h = asks[0]
        anything = Finding(rule="anything_else", role="agent", start=h.start, end=h.end, text=h.heard,
                           confidence=h.score,
                           details=AnythingElseDetails(asked=True,
                                                       before_close=any(a.start <= close_at for a in asks),
                                                       phrase=h.phrase.text, score=h.score))
    else:
        anything = Finding(rule="anything_else", role="agent", start=closing.start, end=closing.end,
                           details=AnythingElseDetails(asked=False, before_close=False))
    return [closing, anything]


def _last_speaker(tr: Transcript) -> Finding | None:
    spans = [(s.end, s.start, tr.roles.get(s.speaker)) for s in tr.speech if tr.roles.get(s.speaker)]
    if not spans:
        spans = [(t.end, t.start, t.role) for t in tr.turns]
    if not spans:
        return None
    end, start, role = max(spans, key=lambda s: (s[0], -s[1]))
    return Finding(rule="last_speaker", role=role, start=start, end=end,
                   details=LastSpeakerDetails(last_speaker=role))


def _forbidden(heard: _Heard) -> list[Finding]:
    # Only the agent can commit a service violation: the customer's "我不知道" is just an answer.
    hits = best_per_span(heard.of("forbidden_phrase", "agent"),
                         prefer=lambda h: _SEVERITY_RANK.get(h.phrase.group, 0))
    return [Finding(rule="forbidden_phrase", role="agent", start=h.start, end=h.end, text=h.heard,
                    confidence=h.score,
                    details=ForbiddenPhraseDetails(phrase=h.phrase.text, severity=h.phrase.group, score=h.score,
                                                   source=h.phrase.source)) for h in hits]


def _silences(tr: Transcript, rb: Rulebook, heard: _Heard) -> list[Finding]:
    union = _speech(tr, None)
    edges: list[tuple[float, float]] = []
    if union:
        edges = [(a[1], b[0]) for a, b in zip(union, union[1:], strict=False)]
        if rb.thresholds.silence_include_edges:
            edges = [(0.0, union[0][0]), *edges, (union[-1][1], max(tr.duration, union[-1][1]))]
    holds = best_per_span(heard.of("hold_notice", "agent"))
    out = []
    for a, b in edges:
        if b - a <= rb.thresholds.silence_min_s:
            continue
        # A notice counts when it ended shortly before the silence (word times can end a little
        # after the VAD edge, hence the small allowance past the start).
        notice = [h for h in holds if a - rb.hold_notice_window_s <= h.end <= a + 0.5]
        h = notice[-1] if notice else None
        out.append(Finding(
            rule="silence", role=NO_ROLE, start=a, end=b, confidence=h.score if h else None,
            details=SilenceDetails(duration=round(b - a, 3), hold_notice=h is not None,
                                   hold_notice_text=h.heard if h else None,
                                   hold_notice_start=h.start if h else None,
                                   phrase=h.phrase.text if h else None, score=h.score if h else None),
        ))
    return out


def _interruptions(tr: Transcript, rb: Rulebook, heard: _Heard) -> list[Finding]:
    th = rb.thresholds
    agent = _speech(tr, "agent", th.merge_gap_s)
    customer = _speech(tr, "customer", th.merge_gap_s)
    out = []
    for a0, a1 in agent:
        for c0, c1 in customer:
            # The customer was already talking, and kept talking after the agent started.
            if c0 <= a0 - th.interruption_min_lead_s and c1 > a0:
                end = min(a1, c1)
                if end - a0 >= th.interruption_min_overlap_s:
                    out.append(Finding(
                        rule="interruption", role="agent", start=a0, end=end,
                        text=_text_between(heard, "agent", a0 - 0.05, end),
                        details=InterruptionDetails(
                            overlap_s=round(end - a0, 3),
                            customer_text=_text_between(heard, "customer", c0 - 0.05, c1)),
                    ))
                break
    return out


def _count(rule: str, hits: list[Hit], tr: Transcript) -> Finding:
    per_phrase: dict[str, int] = {}
    for h in hits:
        per_phrase[h.phrase.text] = per_phrase.get(h.phrase.text, 0) + 1
    evidence = [_hit(h) for h in hits]
    return Finding(rule=rule, role="agent", start=0.0, end=float(tr.duration), confidence=_weakest(evidence),
                   details=CountDetails(count=len(hits), per_phrase=per_phrase, evidence=evidence))


def _empathy(tr: Transcript, rb: Rulebook, heard: _Heard) -> Finding:
    complaints = best_per_span(heard.of("complaint", "customer"))
    empathy = best_per_span(heard.of("empathy", "agent"))
    evidence = []
    for c in complaints:
        reply = next((e for e in empathy if c.start <= e.start <= c.end + rb.empathy_window_s), None)
        evidence.append(ComplaintReply(complaint=_hit(c), empathy=_hit(reply) if reply else None))
    answered = sum(1 for e in evidence if e.empathy)
    return Finding(rule="empathy_after_complaint", role="agent", start=0.0, end=float(tr.duration),
                   details=EmpathyDetails(count=len(complaints), answered=answered,
                                          unanswered=len(complaints) - answered, evidence=evidence))


def run_checks(transcript: Transcript, rulebook: Rulebook) -> list[Finding]:
    """Every check on one call; findings sorted by start time."""
    heard = _listen(transcript, rulebook)
    greeting, greeting_end = _greeting(transcript, rulebook, heard)
    findings: list[Finding] = [_answer_delay(transcript, rulebook), greeting]
    findings += _closing(transcript, rulebook, heard, greeting_end)
    last = _last_speaker(transcript)
    if last is not None:
        findings.append(last)
    findings += _forbidden(heard)
    findings += _silences(transcript, rulebook, heard)
    findings += _interruptions(transcript, rulebook, heard)
    findings.append(_count("politeness", best_per_span(heard.of("politeness", "agent")), transcript))
    findings.append(_count("fillers", best_per_span(heard.of("fillers", "agent")), transcript))
    findings.append(_empathy(transcript, rulebook, heard))
    findings.sort(key=lambda f: (f.start, f.end, f.rule))
    return findings


__all__ = ["run_checks"]
