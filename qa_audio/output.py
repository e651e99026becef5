"""What ``qa-audio analyze`` writes: the versioned JSON the QA queue imports, and Markdown for people.

The JSON layout is documented in ``docs/schema.md``; bump ``SCHEMA_VERSION`` on any change a
consumer could notice (minor: fields added; major: fields removed, renamed or re-typed).
"""

from __future__ import annotations

import json
from typing import Any

from qa_audio import __version__
from qa_audio.pipeline import CallAnalysis
from qa_audio.rubric import fill_rubric
from qa_audio.transcript import Turn

SCHEMA_VERSION = "1.2"
ROLE_NAMES = {"agent": "坐席", "customer": "客户"}


def to_json_dict(analysis: CallAnalysis, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    transcript = analysis.transcript
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "qa-audio", "version": __version__},
        "audio": analysis.audio.describe(),
        "settings": analysis.settings,
        "roles": analysis.roles.to_dict(),
        "speech": [
            {"speaker": s.speaker, "role": transcript.roles.get(s.speaker, "customer"),
             "start": s.start, "end": s.end}
            for s in transcript.speech
        ],
        "turns": [_turn_dict(t) for t in transcript.turns],
        "dropped": [
            {"speaker": speaker, "start": d.start, "end": d.end, "text": d.text, "reason": d.reason}
            for speaker, d in analysis.dropped
        ],
        "findings": [f.to_dict() for f in analysis.findings],
        "acoustics": analysis.acoustics.to_dict() if analysis.acoustics else None,
        "timings": analysis.timings,
    }
    if analysis.rubric_sheet is not None:
        result["rubric"] = fill_rubric(result, analysis.rubric_sheet)
    if extra:
        result.update(extra)
    return result


def to_json(analysis: CallAnalysis, extra: dict[str, Any] | None = None) -> str:
    return json.dumps(to_json_dict(analysis, extra), ensure_ascii=False, indent=2) + "\n"


def _turn_dict(turn: Turn) -> dict[str, Any]:
    return {
        "speaker": turn.speaker,
        "role": turn.role,
        "start": turn.start,
        "end": turn.end,
        "text": turn.text,
        "words": [{"start": w.start, "end": w.end, "text": w.text, "probability": w.probability}
                  for w in turn.words],
    }


def render_markdown(analysis: CallAnalysis) -> str:
    audio = analysis.audio
    roles = analysis.roles
    lines = [
        f"# 通话转写 · {audio.path}",
        "",
        "| 项目 | 值 |",
        "|---|---|",
        f"| 时长 | {format_time(audio.duration)} ({audio.duration:.1f} s) |",
        f"| 格式 | {audio.format} {audio.encoding}, {audio.sample_rate} Hz, {audio.channel_count} 声道 |",
        f"| 说话人区分 | {analysis.settings['speakers']['method']} |",
        f"| 角色判定 | {roles.method}, 置信度 {roles.confidence:.2f} |",
        f"| ASR 模型 | {analysis.settings['asr']['model_version']} |",
        "",
        "## 对话",
        "",
    ]
    for turn in analysis.transcript.turns:
        who = ROLE_NAMES.get(turn.role, turn.role)
        lines.append(f"- **[{format_time(turn.start)}–{format_time(turn.end)}] {who}** "
                     f"({turn.speaker}): {turn.text}")
    if analysis.dropped:
        lines += ["", "## 已删除的识别幻觉", ""]
        for speaker, d in analysis.dropped:
            lines.append(f"- [{format_time(d.start)}–{format_time(d.end)}] {speaker}: {d.text} — {d.reason}")
    return "\n".join(lines) + "\n"


def format_time(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{secs:04.1f}"
