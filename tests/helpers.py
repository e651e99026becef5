"""What the tests share: the repository's paths, the sample calls' truth, and hand-made results.

One module, so no test imports another test module. Fixtures stay in ``conftest.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from qa_audio.audio import Audio
from qa_audio.pipeline import CallAnalysis
from qa_audio.rubric import RubricSheet, fill_rubric_from_result
from qa_audio.schema import finding_from_dict, transcript_from_result
from qa_audio.speech.roles import RoleAssignment

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE_CALLS = ROOT / "sample_calls"
REAL_SPEECH = SAMPLE_CALLS / "real_speech"
"""real Mandarin recordings with exact transcripts (their sources and licences: its README.md)"""
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


def sample_call_truths() -> list[dict]:
    from bench.metrics import load_truths

    return load_truths(SAMPLE_CALLS)


def turn(role: str, start: float, end: float, text: str) -> dict[str, Any]:
    return {"speaker": "CH0" if role == "agent" else "CH1", "role": role, "start": start, "end": end,
            "text": text, "words": []}


def good_call(**changes: Any) -> dict[str, Any]:
    """A clean 40 s stereo call: full script, no violations."""
    result: dict[str, Any] = {
        "audio": {"duration": 40.0},
        "roles": {"method": "channel_map", "confidence": 1.0},
        "speech": [{"speaker": "CH0", "role": "agent", "start": 0.8, "end": 6.0},
                   {"speaker": "CH1", "role": "customer", "start": 7.0, "end": 12.0}],
        "turns": [turn("agent", 0.8, 6.0, "您好！星河通信，工号1024为您服务，请问有什么可以帮您？"),
                  turn("customer", 7.0, 12.0, "我想查一下话费。"),
                  turn("agent", 13.0, 30.0, "好的，您这个月的话费是五十八元。"),
                  turn("agent", 31.0, 36.0, "感谢您的来电，祝您生活愉快，再见！")],
        "findings": [
            {"rule": "answer_delay", "role": "agent", "start": 0.0, "end": 0.8, "text": "", "seconds": 0.8,
             "max_s": 15.0, "within_limit": True},
            {"rule": "greeting", "role": "agent", "start": 0.8, "end": 6.0, "text": "您好星河通信", "level": 2,
             "parts_found": ["greeting", "company", "agent_id", "offer_help"], "parts_missing": [],
             "evidence": [{"part": "company", "phrase": "星河通信", "text": "星河通信", "start": 1.2, "end": 2.0,
                           "score": 0.96}], "agent_id_digits": "1024", "agent_id_complete": True},
            {"rule": "politeness", "role": "agent", "start": 0.0, "end": 40.0, "text": "", "count": 5,
             "per_phrase": {"请问": 2, "感谢": 1, "您好": 2}, "evidence": []},
            {"rule": "fillers", "role": "agent", "start": 0.0, "end": 40.0, "text": "", "count": 0,
             "per_phrase": {}, "evidence": []},
            {"rule": "empathy_after_complaint", "role": "agent", "start": 0.0, "end": 40.0, "text": "", "count": 0,
             "answered": 0, "unanswered": 0, "evidence": []},
            {"rule": "anything_else", "role": "agent", "start": 29.0, "end": 30.0, "text": "还有什么可以帮您",
             "phrase": "还有什么可以帮您", "score": 1.0, "asked": True, "before_close": True},
            {"rule": "closing", "role": "agent", "start": 31.0, "end": 36.0, "text": "感谢您的来电祝您生活愉快再见",
             "level": 2, "parts_found": ["thanks", "wish", "goodbye"], "parts_missing": [], "evidence": []},
            {"rule": "last_speaker", "role": "agent", "start": 31.0, "end": 36.0, "text": "", "last_speaker": "agent"},
        ],
        "acoustics": {"parties": {"CH0": {"speaker": "CH0", "role": "agent", "longest_pause_s": 0.6},
                                  "CH1": {"speaker": "CH1", "role": "customer", "longest_pause_s": 0.4}}},
    }
    result.update(changes)
    return result


def with_finding(result: dict[str, Any], rule: str, **fields: Any) -> dict[str, Any]:
    """The result with the (single) finding of ``rule`` changed, or a new one added."""
    result = copy.deepcopy(result)
    for finding in result["findings"]:
        if finding["rule"] == rule and "start" not in fields:
            finding.update(fields)
            return result
    base = {"rule": rule, "role": "agent", "start": 10.0, "end": 11.0, "text": ""}
    result["findings"].append({**base, **fields})
    return result


def phrase(start: float, severity: str, text: str) -> dict[str, Any]:
    return {"rule": "forbidden_phrase", "role": "agent", "start": start, "end": start + 1.2, "text": text,
            "phrase": text, "severity": severity, "score": 0.95, "source": "forbidden_phrases.yaml:31"}


def analysis_from_result(result: dict[str, Any], sheet: RubricSheet) -> CallAnalysis:
    """A CallAnalysis made from a hand-made result, for the reports' tests (no audio is decoded)."""
    transcript = transcript_from_result(result)
    channels = len({s.speaker for s in transcript.speech}) or 1
    audio = Audio(path="call.wav", format="WAV", encoding="PCM_16", sample_rate=8000, duration=transcript.duration,
                  channels=tuple(np.zeros(1, dtype=np.float32) for _ in range(channels)))
    return CallAnalysis(
        audio=audio, transcript=transcript,
        roles=RoleAssignment(roles=transcript.roles, confidence=float(result["roles"]["confidence"]),
                             method=result["roles"]["method"]),
        dropped=[], settings={}, timings={}, acoustics=None,
        findings=[finding_from_dict(f) for f in result["findings"]],
        rubric=fill_rubric_from_result(result, sheet),
    )


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (which must occur once) in a rule file copy; the 1-based line where it was."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    return line

