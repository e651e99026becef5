"""``--format md``: the transcript by role and the pre-filled sheet, as Markdown for people."""

from __future__ import annotations

from qa_audio.labels import (
    FLAG_NAMES,
    ROLE_NAMES,
    STATUS_NAMES,
    UNINTELLIGIBLE,
    describe_opening,
    describe_personal_data,
    describe_vocabulary,
    format_time,
)
from qa_audio.pipeline import CallAnalysis
from qa_audio.schema import RubricResult


def render_markdown(analysis: CallAnalysis) -> str:
    """The whole Markdown report: the call's facts, the transcript, then the pre-filled sheet."""
    return render_transcript_markdown(analysis) + "\n" + render_rubric_markdown(analysis.rubric)


def render_transcript_markdown(analysis: CallAnalysis) -> str:
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
        f"| 客户信息遮蔽 | {_masked(analysis)} |",
        f"| 热词更正 | {_cell(describe_vocabulary(analysis.vocabulary_corrections) or '无')} |",
        f"| 开场白重识别 | {_cell(describe_opening(analysis.opening) or '无')} |",
        "",
        "## 对话",
        "",
    ]
    for turn in analysis.transcript.turns:
        who = ROLE_NAMES.get(turn.role, turn.role)
        lines.append(f"- **[{format_time(turn.start)}–{format_time(turn.end)}] {who}** "
                     f"({turn.speaker}): {turn.text or UNINTELLIGIBLE}")
    if analysis.dropped:
        lines += ["", "## 已删除的识别幻觉", ""]
        for speaker, d in analysis.dropped:
            lines.append(f"- [{format_time(d.start)}–{format_time(d.end)}] {speaker}: {d.text} — {d.reason}")
    return "\n".join(lines) + "\n"


def _masked(analysis: CallAnalysis) -> str:
    if not analysis.personal_data:
        return "未发现"
    names = analysis.settings.get("personal_data", {}).get("types", {})
    return describe_personal_data(analysis.personal_data, names) + "（文中以 * 遮蔽）"


def render_rubric_markdown(rubric: RubricResult) -> str:
    """The pre-filled sheet as a Markdown table, with the footer (合计, problems, suggestions)."""
    lines = [f"## {rubric.title}（预填）", ""]
    if rubric.requirements:
        lines += [f"考核要求：{rubric.requirements}", ""]
    lines += ["| 序号 | 项目 | 分值 | 得分 | 状态 | 置信度 | 档位 | 证据 |", "|---|---|---|---|---|---|---|---|"]
    for item in rubric.items:
        score = "—" if item.score is None else f"{item.score:g}"
        conf = "—" if item.confidence is None else f"{item.confidence:.2f}"
        evidence = "<br>".join(f"[{format_time(e.start)}] {e.note}" + (f"：“{e.text}”" if e.text else "")
                               for e in item.evidence[:4]) or "—"
        lines.append(f"| {item.id} | {item.name} | {item.points:g} | {score} | "
                     f"{STATUS_NAMES.get(item.status, item.status)} | {conf} | "
                     f"{_cell(item.band or '—')} | {_cell(evidence)} |")
    flags = "、".join(f"{FLAG_NAMES.get(f, f)}（{f}）" for f in rubric.flags) or "无"
    lines += ["", f"**{rubric.summary}**", "", f"**标记**：{flags}", "",
              "**该坐席存在的主要问题**：", ""]
    lines += [f"- {p}" for p in rubric.problems]
    lines += ["", "**改善建议**：", ""]
    lines += [f"- {s}" for s in rubric.suggestions]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
