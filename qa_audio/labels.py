"""The Chinese words every output uses for roles, rules, statuses and flags, and the mm:ss clock.

One vocabulary, so the JSON's evidence notes, the Markdown sheet and the HTML report name a thing
the same way (they used to word the same flag three ways). These are display names, not rules:
nothing here says what a call must contain or when a check fires (that is ``qa_audio/rules/``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qa_audio.schema import OpeningRedecode, PersonalDataSpan, VocabularyCorrection

UNINTELLIGIBLE = "（听不清）"
"""shown for a turn of speech the ASR wrote no word for"""

ROLE_NAMES = {"agent": "坐席", "customer": "客户", "none": "无人"}

RULE_NAMES = {
    "answer_delay": "接听时间", "greeting": "首问语", "closing": "结束语", "anything_else": "询问其他需求",
    "last_speaker": "最后说话方", "forbidden_phrase": "服务忌语", "silence": "冷场", "interruption": "抢话",
    "politeness": "礼貌用语", "fillers": "口头语", "empathy_after_complaint": "投诉安抚",
    "speech_rate": "语速", "flat_tone": "语调平淡", "customer_agitation": "客户情绪激动",
    "phrases": "话语", "acoustic": "声学指标",
}

PART_NAMES = {"greeting": "问候", "company": "公司名", "agent_id": "工号", "offer_help": "请问有什么可以帮您",
              "thanks": "感谢您的来电", "wish": "祝您生活愉快", "goodbye": "再见"}

FIELD_NAMES = {"level": "级别", "within_limit": "在时限内开口", "asked": "已询问", "before_close": "在结束语之前",
               "last_speaker": "最后说话方", "severity": "档位", "hold_notice": "有等待提示", "count": "次数",
               "unanswered": "未安抚次数", "answered": "已安抚次数", "direction": "方向"}

COMPARATOR_SIGNS = {"gte": "≥", "gt": ">", "lte": "≤", "lt": "<"}

VALUE_NAMES: dict[Any, str] = {True: "是", False: "否", "too_fast": "过快", "too_slow": "过慢",
                               "customer": "客户", "agent": "坐席"}

STATUS_NAMES = {"auto": "自动", "suggested": "建议", "inspector": "待质检员"}

FLAG_NAMES = {"fatal": "致命错误（0-2 档服务忌语）", "needs_review": "需人工复核（置信度低）"}

REASON_NAMES = {"fatal": "致命", "low_confidence": "低置信度", "low_total": "低分", "random_sample": "抽检",
                "routine": "常规"}
"""why a call is in the review queue (qa_audio/batch/queue.py REASONS)"""


def format_time(seconds: float) -> str:
    """``mm:ss.s``, the clock an inspector reads beside the player."""
    minutes, secs = divmod(max(0.0, float(seconds)), 60)
    return f"{int(minutes):02d}:{secs:04.1f}"


def describe_finding(f: dict[str, Any]) -> str:
    """A short Chinese note on a finding (its JSON fields), for the evidence lists."""
    rule = f["rule"]
    if rule == "answer_delay":
        return f"坐席 {f.get('seconds')} 秒后开口（上限 {f.get('max_s')} 秒）"
    if rule in ("greeting", "closing"):
        missing = "、".join(PART_NAMES.get(p, p) for p in f.get("parts_missing") or []) or "无"
        return f"{RULE_NAMES[rule]} {f.get('level')} 级，缺少：{missing}"
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
        direction = VALUE_NAMES.get(f.get("direction"), "")
        return f"语速{direction}：{f.get('value')} {f.get('unit', '字/分钟')}"
    if rule == "flat_tone":
        return f"语调平淡：音高标准差 {f.get('value')} 半音"
    if rule == "customer_agitation":
        return f"客户情绪激动（指数 {f.get('value')}）"
    return RULE_NAMES.get(rule, rule)


def describe_vocabulary(corrections: Iterable[VocabularyCorrection]) -> str:
    """``[00:02] 心和通信→星河通信、[00:03] 宫号→工号`` for the reports: every rewrite, where it is."""
    return "、".join(f"[{format_time(c.start)}] {c.heard}→{c.written}" for c in corrections)


OPENING_NOTE = "开场白按热词（{hotwords}）重新识别"
"""what the reports and the workbench say where the greeting was decoded again and that changed it"""


def describe_opening(opening: OpeningRedecode | None) -> str:
    """``[00:00-00:05] 开场白按热词（星河通信 工号）重新识别`` when the greeting was decoded again and it changed."""
    if opening is None or not opening.changed:
        return ""
    return (f"[{format_time(opening.start)}-{format_time(opening.end)}] "
            + OPENING_NOTE.format(hotwords=opening.hotwords))


def describe_personal_data(spans: Iterable[PersonalDataSpan], type_names: dict[str, str]) -> str:
    """``手机号 2 处、身份证号 1 处`` for the reports (the names come from personal_data.yaml)."""
    counts: dict[str, int] = {}
    for span in spans:
        counts[span.type] = counts.get(span.type, 0) + 1
    return "、".join(f"{type_names.get(kind, kind)} {n} 处" for kind, n in counts.items())
