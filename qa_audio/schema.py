"""The contracts between the stages, declared in one place, and the JSON shapes they serialise to.

Data flows one way: ``audio`` → ``speech`` (VAD, diarization, ASR, words to speakers, roles) →
``acoustic`` → ``checks`` → ``rubric`` → ``report`` → ``batch``. Every stage reads and writes the
dataclasses below, never another stage's JSON: the JSON (``docs/schema.md``) is written once, by
``report.json_output``, from these types, and the batch store, the export and the HTML report read
that JSON back through the ``*_from_dict`` constructors here. (WhisperX keeps its stage contracts in
one ``schema.py`` for the same reason: a newcomer reads one file to know what flows where.)

Times are seconds from the start of the recording. ``Turn.words`` keep their own times because
Whisper segments span pauses (one segment can cover speech, dead air and more speech): segment
edges are not speech edges, word edges and the ``speech`` intervals are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

import numpy as np

SCHEMA_VERSION = "1.7"
"""Of the ``analyze`` JSON: minor for fields added, major for fields removed, renamed or re-typed."""

Role = Literal["agent", "customer"]
NO_ROLE = "none"
"""The role of findings about the call rather than one party (silence: neither party speaks)."""


class ProgressHook(Protocol):
    """Told how far a long step has got, the way pyannote.audio's pipelines report progress.

    ``step`` names the work (``decode``, ``asr``, ``diarize``, ``segmentation``, ``embeddings``,
    ``clustering``, ``batch``); ``completed`` of ``total`` is done. One hook is passed into
    :meth:`qa_audio.Analyzer.analyze` and handed down to every stage that takes long.
    """

    def __call__(self, step: str, *, completed: float, total: float) -> None: ...


def no_progress(step: str, *, completed: float, total: float) -> None:
    """The hook used when the caller passes none."""


def round_json(obj: Any) -> Any:
    """JSON-friendly: numpy scalars to Python, NaN to null, floats to 3 decimals."""
    if isinstance(obj, dict):
        return {k: round_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [round_json(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else round(obj, 3)
    return obj


# --------------------------------------------------------------------------- speech → transcript


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class SpeechInterval:
    """A stretch where one speaker is talking, from VAD (stereo) or the diarizer (mono)."""

    speaker: str
    start: float
    end: float


@dataclass
class Turn:
    speaker: str
    role: Role
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    unintelligible: bool = False
    """speech the ASR wrote no word for (a short reply, unclear speech): it still takes its turn, so
    turn-taking and who spoke last stay right, with empty ``text``"""

    def to_dict(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "role": self.role, "start": self.start, "end": self.end,
                "text": self.text,
                "words": [{"start": w.start, "end": w.end, "text": w.text, "probability": w.probability}
                          for w in self.words],
                "unintelligible": self.unintelligible}


@dataclass
class Transcript:
    duration: float
    turns: list[Turn]
    speech: list[SpeechInterval]
    roles: dict[str, Role]
    """speaker label -> role"""

    def speech_of(self, role: Role) -> list[SpeechInterval]:
        return [s for s in self.speech if self.roles.get(s.speaker) == role]


def transcript_from_result(result: dict[str, Any]) -> Transcript:
    """The transcript of a saved ``analyze`` JSON (its ``audio``, ``speech`` and ``turns``)."""
    speech = result.get("speech") or []
    return Transcript(
        duration=float((result.get("audio") or {}).get("duration") or 0.0),
        turns=[Turn(speaker=t.get("speaker", ""), role=t.get("role", "customer"), start=float(t["start"]),
                    end=float(t["end"]), text=t.get("text", ""),
                    words=[Word(float(w["start"]), float(w["end"]), w.get("text", ""),
                                float(w.get("probability", 1.0))) for w in t.get("words") or []],
                    unintelligible=bool(t.get("unintelligible", False)))
               for t in result.get("turns") or []],
        speech=[SpeechInterval(s["speaker"], float(s["start"]), float(s["end"])) for s in speech],
        roles={s["speaker"]: s["role"] for s in speech if s.get("role")},
    )


# --------------------------------------------------------------------------- transcript → vocabulary


@dataclass(frozen=True)
class VocabularyCorrection:
    """A near-homophone of a listed word (rules/vocabulary.yaml) rewritten as the word.

    ``heard`` is what Whisper wrote, ``written`` what the transcript now says; ``score`` how alike
    they sound (pinyin, 0-1) and ``probability`` Whisper's own, lowest over the rewritten characters.
    """

    speaker: str
    role: str
    start: float
    end: float
    heard: str
    written: str
    score: float
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "role": self.role, "start": self.start, "end": self.end,
                "heard": self.heard, "written": self.written, "score": self.score,
                "probability": self.probability}


@dataclass(frozen=True)
class OpeningRedecode:
    """The greeting's stretch decoded a second time with the deployment's words as ``hotwords``
    (rules/vocabulary.yaml ``hotwords: opening``), because the first pass held part of the greeting
    but not all of it; ``changed``: it heard more of the greeting, so its words replaced the first pass's
    (otherwise the first pass's stand)."""

    start: float
    end: float
    hotwords: str
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "hotwords": self.hotwords, "changed": self.changed}


# --------------------------------------------------------------------------- transcript → personal data


@dataclass(frozen=True)
class PersonalDataPart:
    """Where one piece of a masked span sits: characters of ``turns[index]`` or ``dropped[index]``."""

    where: Literal["turns", "dropped"]
    index: int
    char_start: int
    char_end: int
    start: float
    end: float
    text: str | None = None
    """the original characters, only where the deployment keeps originals (personal_data.yaml)"""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"where": self.where, "index": self.index, "char_start": self.char_start,
                               "char_end": self.char_end, "start": self.start, "end": self.end}
        if self.text is not None:
            out["text"] = self.text
        return out


@dataclass(frozen=True)
class PersonalDataSpan:
    """A customer's number, e-mail, name or address found in the words, and the mask that replaced it.

    A number read in two turns (a pause, the agent's 嗯 in between) or corrected ("不对，是…") is
    one span of several ``parts``. ``basis`` says why it was taken for its type (``pattern``: the
    digits fit the type and its checksum; ``cue``: fits after the type's cue word but fails the
    checksum; ``length``: only long enough; ``correction``; ``cue word`` for names and addresses).
    """

    type: str
    role: str
    speaker: str
    start: float
    end: float
    mask: str
    confidence: float
    basis: str
    parts: tuple[PersonalDataPart, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "role": self.role, "speaker": self.speaker, "start": self.start,
                "end": self.end, "mask": self.mask, "confidence": self.confidence, "basis": self.basis,
                "parts": [p.to_dict() for p in self.parts]}


def personal_data_from_dict(data: dict[str, Any]) -> PersonalDataSpan:
    return PersonalDataSpan(
        type=str(data.get("type", "")), role=str(data.get("role", "")), speaker=str(data.get("speaker", "")),
        start=float(data.get("start") or 0.0), end=float(data.get("end") or 0.0), mask=str(data.get("mask", "")),
        confidence=float(data.get("confidence") or 0.0), basis=str(data.get("basis", "")),
        parts=tuple(PersonalDataPart(where=p.get("where", "turns"), index=int(p.get("index", 0)),
                                     char_start=int(p.get("char_start", 0)), char_end=int(p.get("char_end", 0)),
                                     start=float(p.get("start") or 0.0), end=float(p.get("end") or 0.0),
                                     text=p.get("text"))
                    for p in data.get("parts") or []))


# --------------------------------------------------------------------------- checks → findings


@dataclass(frozen=True)
class PhraseHit:
    """A rule phrase heard in the words: the phrase as written, what was heard, where, how alike."""

    phrase: str
    text: str
    start: float
    end: float
    score: float
    part: str | None = None
    """greeting and closing: the part of the script the phrase stands for"""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"part": self.part} if self.part is not None else {}
        out.update(phrase=self.phrase, text=self.text, start=self.start, end=self.end, score=self.score)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhraseHit:
        return cls(phrase=data["phrase"], text=data["text"], start=data["start"], end=data["end"],
                   score=data["score"], part=data.get("part"))


@dataclass(frozen=True)
class Evidence:
    """One moment an inspector can jump to: when, who, what was heard, and a note in Chinese.

    The rubric gathers these from the findings behind each item (``Finding.moments``), from the
    phrases it looks for in the turns, and from the party acoustics it compares.
    """

    rule: str
    role: str
    start: float
    end: float
    text: str = ""
    note: str = ""
    phrase: str | None = None
    severity: str | None = None
    score: float | None = None
    level: int | None = None
    duration: float | None = None
    confidence: float | None = None
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "role": self.role, "start": self.start, "end": self.end,
                               "text": self.text}
        for key in ("phrase", "severity", "score", "level", "duration", "confidence", "value"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Finding:
    """What one check found, with the evidence behind it: the one contract of every finding.

    ``details`` holds the rule's own typed fields (``GreetingDetails`` for ``greeting``, ...). The
    rubric's conditions name fields by the names they have in the JSON (``level``, ``severity``,
    ``within_limit``), so :meth:`fields` is what a condition in ``rubric.yaml`` reads.
    """

    rule: str
    role: str
    """``agent``, ``customer`` or ``none`` (nobody: silence)."""
    start: float
    end: float
    details: FindingDetails
    text: str = ""
    """What was heard (ASR text of the evidence), empty for silences."""
    confidence: float | None = None
    """0-1: how sure the check is (the phrase match's score, the acoustic margin); null where the
    check measures speech intervals and has no score of its own"""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "role": self.role}
        out.update(self.details.leading())
        out.update(start=round(float(self.start), 3), end=round(float(self.end), 3), text=self.text,
                   confidence=None if self.confidence is None else round(float(self.confidence), 3))
        out.update(self.details.to_dict())
        return out

    def fields(self) -> dict[str, Any]:
        """The finding as the JSON has it, for rule conditions that name a field."""
        return self.to_dict()

    def moments(self, note: str) -> list[Evidence]:
        """The evidence an inspector jumps to; ``note`` describes the finding as a whole."""
        return self.details.moments(self, note)


class FindingDetails:
    """Base of each rule's typed fields; serialises the fields that are set, in declared order."""

    OPTIONAL: tuple[str, ...] = ()
    """fields left out of the JSON when they are None"""

    def leading(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self.OPTIONAL:
                continue
            out[f.name] = _json_value(value)
        return out

    def moments(self, finding: Finding, note: str) -> list[Evidence]:
        view = finding.fields()
        return [Evidence(rule=finding.rule, role=finding.role, start=view["start"], end=view["end"],
                         text=finding.text, note=note, phrase=view.get("phrase"), severity=view.get("severity"),
                         score=view.get("score"), level=view.get("level"), duration=view.get("duration"),
                         confidence=view.get("confidence"))]


def _json_value(value: Any) -> Any:
    """A details field as JSON: the typed parts (hits, pairs) by their own ``to_dict``."""
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value.to_dict() if isinstance(value, PhraseHit | ComplaintReply | Evidence) else value


MAX_MOMENTS = 6
"""Evidence entries kept per counted rule: the reader needs examples, not every filler word."""


@dataclass
class AnswerDelayDetails(FindingDetails):
    seconds: float | None
    max_s: float
    within_limit: bool


@dataclass
class ScriptDetails(FindingDetails):
    """greeting and closing: the level the parts earn, which parts were heard and where."""

    level: int
    parts_found: list[str]
    parts_missing: list[str]
    evidence: list[PhraseHit]
    agent_id_digits: str | None = None
    """greeting: the 工号 digits heard ("" if none)"""
    agent_id_complete: bool | None = None
    """greeting: the deployment's number of digits was heard (rubric 1e)"""
    OPTIONAL = ("agent_id_digits", "agent_id_complete")


@dataclass
class AnythingElseDetails(FindingDetails):
    asked: bool
    before_close: bool
    phrase: str | None = None
    score: float | None = None
    OPTIONAL = ("phrase", "score")


@dataclass
class LastSpeakerDetails(FindingDetails):
    last_speaker: str


@dataclass
class ForbiddenPhraseDetails(FindingDetails):
    phrase: str
    severity: str
    score: float
    source: str
    """``file:line`` of the phrase in the rules"""


@dataclass
class SilenceDetails(FindingDetails):
    duration: float
    hold_notice: bool
    hold_notice_text: str | None
    hold_notice_start: float | None
    phrase: str | None = None
    score: float | None = None
    OPTIONAL = ("phrase", "score")


@dataclass
class InterruptionDetails(FindingDetails):
    overlap_s: float
    customer_text: str


@dataclass
class CountDetails(FindingDetails):
    """politeness and fillers: counted over the whole call; each hit is evidence."""

    count: int
    per_phrase: dict[str, int]
    evidence: list[PhraseHit]

    def moments(self, finding: Finding, note: str) -> list[Evidence]:
        entries = [Evidence(rule=finding.rule, role=finding.role, start=h.start, end=h.end, text=h.text,
                            phrase=h.phrase, note=f"{note}：{h.phrase}") for h in self.evidence]
        if not entries:
            start = round(float(finding.start), 3)
            entries = [Evidence(rule=finding.rule, role=finding.role, start=start, end=start,
                                note=f"{note}共 {self.count} 次")]
        return entries[:MAX_MOMENTS]


@dataclass(frozen=True)
class ComplaintReply:
    """A customer complaint and the agent's empathy after it (None: none came in time)."""

    complaint: PhraseHit
    empathy: PhraseHit | None

    def to_dict(self) -> dict[str, Any]:
        return {"complaint": self.complaint.to_dict(),
                "empathy": self.empathy.to_dict() if self.empathy else None}


@dataclass
class EmpathyDetails(FindingDetails):
    count: int
    answered: int
    unanswered: int
    evidence: list[ComplaintReply]

    def moments(self, finding: Finding, note: str) -> list[Evidence]:
        entries: list[Evidence] = []
        for pair in self.evidence:
            c = pair.complaint
            entries.append(Evidence(rule=finding.rule, role="customer", start=c.start, end=c.end, text=c.text,
                                    note="客户抱怨" + ("，坐席已安抚" if pair.empathy else "，坐席未安抚")))
            if pair.empathy is not None:
                e = pair.empathy
                entries.append(Evidence(rule=finding.rule, role=finding.role, start=e.start, end=e.end,
                                        text=e.text, note="坐席致歉/共情"))
        if not entries:
            start = round(float(finding.start), 3)
            entries = [Evidence(rule=finding.rule, role=finding.role, start=start, end=start,
                                note=f"客户抱怨 {self.count} 次，已安抚 {self.answered} 次")]
        return entries[:MAX_MOMENTS]


@dataclass
class AcousticDetails(FindingDetails):
    """speech_rate, flat_tone, customer_agitation: a measured value against its band."""

    speaker: str
    value: float
    unit: str
    band: dict[str, float | None]
    direction: str | None = None
    """speech_rate: ``too_fast`` or ``too_slow``"""
    detail: dict[str, Any] = field(default_factory=dict)
    """the figures behind the judgement"""

    def leading(self) -> dict[str, Any]:
        return {"speaker": self.speaker}

    def to_dict(self) -> dict[str, Any]:
        return round_json({"value": self.value, "unit": self.unit, "band": self.band,
                           "direction": self.direction, "detail": self.detail})


FINDING_DETAILS: dict[str, type[FindingDetails]] = {
    "answer_delay": AnswerDelayDetails, "greeting": ScriptDetails, "closing": ScriptDetails,
    "anything_else": AnythingElseDetails, "last_speaker": LastSpeakerDetails,
    "forbidden_phrase": ForbiddenPhraseDetails, "silence": SilenceDetails, "interruption": InterruptionDetails,
    "politeness": CountDetails, "fillers": CountDetails, "empathy_after_complaint": EmpathyDetails,
    "speech_rate": AcousticDetails, "flat_tone": AcousticDetails, "customer_agitation": AcousticDetails,
}
"""Which details each rule's findings carry (``rules/FINDINGS.md`` documents the fields)."""


_EMPTY_IF_MISSING = {"evidence": list, "per_phrase": dict, "parts_found": list, "parts_missing": list,
                     "detail": dict, "band": dict}


def finding_from_dict(data: dict[str, Any]) -> Finding:
    """A finding read back from the JSON (the batch store, a saved result).

    A field the JSON lacks (written by an older schema, or a hand-made example) is None, or empty
    for the lists and mappings.
    """
    kind = FINDING_DETAILS[data["rule"]]
    names = [f.name for f in fields(kind)]  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for name in names:
        if name not in data:
            values[name] = _EMPTY_IF_MISSING[name]() if name in _EMPTY_IF_MISSING else None
            continue
        value = data[name]
        if name == "evidence" and kind is EmpathyDetails:
            value = [ComplaintReply(PhraseHit.from_dict(v["complaint"]),
                                    PhraseHit.from_dict(v["empathy"]) if v.get("empathy") else None)
                     for v in value]
        elif name == "evidence":
            value = [PhraseHit.from_dict(v) for v in value]
        values[name] = value
    confidence = data["confidence"] if "confidence" in data else _confidence_before_1_3(data)
    return Finding(rule=data["rule"], role=data["role"], start=data["start"], end=data["end"],
                   details=kind(**values), text=data.get("text", ""), confidence=confidence)


def _confidence_before_1_3(data: dict[str, Any]) -> float | None:
    """Schema 1.2 and older kept no confidence on check findings: the weakest score in it is one."""
    scores = [data["score"]] if _is_number(data.get("score")) else []
    scores += [e["score"] for e in data.get("evidence") or [] if isinstance(e, dict) and _is_number(e.get("score"))]
    return float(min(scores)) if scores else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------- rubric → the pre-filled sheet

RubricStatus = Literal["auto", "suggested", "inspector"]
RUBRIC_STATUSES: tuple[str, ...] = ("auto", "suggested", "inspector")


@dataclass
class RubricItemResult:
    """One item of the sheet, pre-filled: the score, how it was decided, and the evidence."""

    id: str
    name: str
    points: float
    status: str
    """``auto`` (the audio decides), ``suggested`` (a lean), ``inspector`` (left to a person)"""
    bands: list[list[float]]
    """the sheet's score bands, overlapping ones merged (what "within one band" compares)"""
    score: float | None
    confidence: float | None
    band: str | None
    """the wording of the band the score falls in"""
    basis: list[str]
    evidence: list[Evidence]
    demoted_from: str | None = None
    """``auto`` when a low role confidence turned an audio-decided item into a suggestion"""
    advice: list[str] = field(default_factory=list)
    """the 改善建议 lines this item's firing rules give (since 1.4), for per-agent coaching lists"""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "points": self.points, "max": self.points,
                               "status": self.status, "bands": self.bands, "score": self.score,
                               "confidence": self.confidence, "band": self.band, "basis": self.basis,
                               "evidence": [e.to_dict() for e in self.evidence], "advice": self.advice}
        if self.demoted_from is not None:
            out["demoted_from"] = self.demoted_from
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RubricItemResult:
        return cls(id=str(data["id"]), name=data["name"], points=data["points"], status=data["status"],
                   bands=data.get("bands") or [], score=data.get("score"), confidence=data.get("confidence"),
                   band=data.get("band"), basis=list(data.get("basis") or []),
                   evidence=[Evidence.from_dict(e) for e in data.get("evidence") or []],
                   demoted_from=data.get("demoted_from"), advice=list(data.get("advice") or []))


@dataclass
class RubricResult:
    """The inspector's sheet pre-filled from one call (``docs/rubric.md``)."""

    version: str
    title: str
    requirements: str
    sheet_path: str
    items: list[RubricItemResult]
    total: float
    max_total: float
    scored_max: float
    auto_total: float
    auto_max: float
    inspector_points: float
    summary: str
    flags: list[str]
    """``fatal`` (a 0-2 band 服务忌语), ``needs_review`` (low confidence)"""
    review_reasons: list[str]
    problems: list[str]
    """该坐席存在的主要问题"""
    suggestions: list[str]
    """改善建议"""

    def item(self, item_id: str) -> RubricItemResult:
        return next(i for i in self.items if i.id == item_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sheet": {"title": self.title, "requirements": self.requirements, "path": self.sheet_path},
            "items": [i.to_dict() for i in self.items],
            "total": self.total, "max_total": self.max_total, "scored_max": self.scored_max,
            "auto_total": self.auto_total, "auto_max": self.auto_max, "inspector_points": self.inspector_points,
            "summary": self.summary, "flags": self.flags, "review_reasons": self.review_reasons,
            "problems": self.problems, "suggestions": self.suggestions,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RubricResult:
        sheet = data.get("sheet") or {}
        return cls(version=str(data.get("version", "")), title=sheet.get("title", "评分表"),
                   requirements=sheet.get("requirements", ""), sheet_path=sheet.get("path", ""),
                   items=[RubricItemResult.from_dict(i) for i in data.get("items") or []],
                   total=data.get("total"), max_total=data.get("max_total"), scored_max=data.get("scored_max"),
                   auto_total=data.get("auto_total"), auto_max=data.get("auto_max"),
                   inspector_points=data.get("inspector_points"), summary=data.get("summary", ""),
                   flags=list(data.get("flags") or []), review_reasons=list(data.get("review_reasons") or []),
                   problems=list(data.get("problems") or []), suggestions=list(data.get("suggestions") or []))


__all__ = [
    "NO_ROLE", "SCHEMA_VERSION", "AcousticDetails", "AnswerDelayDetails", "AnythingElseDetails", "ComplaintReply",
    "CountDetails", "EmpathyDetails", "Evidence", "Finding", "FindingDetails", "ForbiddenPhraseDetails",
    "InterruptionDetails", "LastSpeakerDetails", "PersonalDataPart", "PersonalDataSpan", "PhraseHit",
    "ProgressHook", "Role", "RubricItemResult",
    "RubricResult", "ScriptDetails", "SilenceDetails", "SpeechInterval", "Transcript", "Turn",
    "VocabularyCorrection", "Word",
    "finding_from_dict", "no_progress", "personal_data_from_dict", "round_json", "transcript_from_result",
]
