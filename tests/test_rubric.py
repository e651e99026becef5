"""The pre-filled rubric: each mapping of rules/rubric.yaml, the caps, the flags, the file checks.

Fast: hand-built analyze results (the findings' shapes are those of rules/FINDINGS.md), no audio.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from qa_audio.rubric import (
    RuleFileError,
    fill_rubric,
    load_rubric,
    parse_rubric,
    render_rubric_markdown,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CALLS = ROOT / "sample_calls"
ITEM_IDS = ["1a", "1b", "1c", "1d", "1e", "2a", "2b", "3", "4", "5", "6", "7a", "7b"]


@pytest.fixture(scope="module")
def sheet():
    return load_rubric()


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


def item(rubric: dict[str, Any], item_id: str) -> dict[str, Any]:
    return next(i for i in rubric["items"] if i["id"] == item_id)


def score(result: dict[str, Any], item_id: str, sheet) -> float | None:
    return item(fill_rubric(result, sheet), item_id)["score"]


# ------------------------------------------------------------------ the sheet as data


def test_shipped_sheet_has_the_inspectors_items(sheet):
    assert [i.id for i in sheet.items] == ITEM_IDS
    assert sheet.max_total == 100
    assert {i.id for i in sheet.items if i.status == "inspector"} == {"6", "7a"}


def test_clean_call_prefill_and_contract(sheet):
    rubric = fill_rubric(good_call(), sheet)
    for key in ("items", "total", "max_total", "flags", "problems", "suggestions"):
        assert key in rubric
    for entry in rubric["items"]:
        assert {"id", "name", "points", "score", "confidence", "status", "evidence", "band"} <= set(entry)
    assert [item(rubric, i)["score"] for i in ("1a", "1b", "1c", "1d")] == [2, 2, 2, 2]
    assert all(item(rubric, i)["status"] == "auto" for i in ("1a", "1b", "1c", "1d"))
    assert item(rubric, "6")["score"] is None and item(rubric, "6")["status"] == "inspector"
    assert rubric["flags"] == []
    assert rubric["max_total"] == 100
    assert rubric["total"] == sum(i["score"] for i in rubric["items"] if i["score"] is not None)
    assert rubric["auto_total"] == 8
    json.dumps(rubric, ensure_ascii=False)  # the contract is plain JSON


def test_another_centres_sheet_is_just_another_file(tmp_path):
    path = tmp_path / "rubric.yaml"
    path.write_text(
        "items:\n"
        "  - id: A\n    name: 开场\n    points: 4\n    status: auto\n    base: 0\n"
        "    bands: [{min: 0, max: 0, text: 无}, {min: 4, max: 4, text: 完整}]\n"
        "    rules:\n      - when: {rule: greeting, level: 2}\n        set: 4\n", encoding="utf-8")
    custom = parse_rubric(path)
    rubric = fill_rubric(good_call(), custom)
    assert rubric["max_total"] == 4 and rubric["total"] == 4
    assert item(rubric, "A")["band"] == "完整"


# ------------------------------------------------------------------ each mapping, positive and negative


@pytest.mark.parametrize(("rule", "fields", "item_id", "expected"), [
    ("answer_delay", {"within_limit": False, "seconds": 20.0}, "1a", 0),
    ("answer_delay", {"within_limit": True}, "1a", 2),
    ("greeting", {"level": 1}, "1b", 1),
    ("greeting", {"level": 0}, "1b", 0),
    ("greeting", {"level": 2}, "1b", 2),
    ("closing", {"level": 1}, "1c", 1),
    ("closing", {"level": 0}, "1c", 0),
    ("closing", {"level": 2}, "1c", 2),
    ("anything_else", {"asked": False, "before_close": False}, "1d", 0),
    ("anything_else", {"asked": True, "before_close": True}, "1d", 2),
    ("fillers", {"count": 3}, "3", 4),
    ("fillers", {"count": 1}, "3", 5),
    ("politeness", {"count": 1}, "3", 3),
    ("politeness", {"count": 5}, "3", 5),
])
def test_finding_field_mappings(sheet, rule, fields, item_id, expected):
    assert score(with_finding(good_call(), rule, **fields), item_id, sheet) == expected


def test_hangs_up_after_the_customer_scores_1d(sheet):
    result = with_finding(good_call(), "anything_else", asked=False, before_close=False)
    result = with_finding(result, "last_speaker", last_speaker="customer", role="customer")
    assert score(result, "1d", sheet) == 2
    assert score(with_finding(good_call(), "anything_else", asked=False, before_close=False), "1d", sheet) == 0


def test_fast_greeting_costs_1e_only_inside_the_greeting(sheet):
    inside = with_finding(good_call(), "speech_rate", start=1.0, end=5.0, direction="too_fast", confidence=0.8)
    outside = with_finding(good_call(), "speech_rate", start=14.0, end=20.0, direction="too_fast", confidence=0.8)
    assert score(inside, "1e", sheet) == 0
    assert score(outside, "1e", sheet) == 2
    assert score(outside, "3", sheet) == 4  # but the pace still counts against item 3


def test_customer_asking_to_repeat_costs_1e(sheet):
    result = good_call()
    result["turns"].insert(1, turn("customer", 6.5, 7.0, "啊？你说得太快了，我没听清。"))
    assert score(result, "1e", sheet) == 0
    assert score(good_call(), "1e", sheet) == 2


def test_flat_tone_leans_2a_down(sheet):
    assert score(with_finding(good_call(), "flat_tone", start=0.8, end=36.0, confidence=0.7), "2a", sheet) <= 4
    assert score(good_call(), "2a", sheet) == 9


def test_reminders_and_care_lean_2b(sheet):
    result = good_call()
    result["turns"][2]["text"] = "另外提醒您，出国前请打开数据漫游。"
    assert score(result, "2b", sheet) == 5
    result["turns"][2]["text"] = "不好意思，我帮您看一下。"
    assert score(result, "2b", sheet) == 4
    assert score(good_call(), "2b", sheet) == 3


def test_interruptions_put_4_in_the_lowest_band(sheet):
    once = with_finding(good_call(), "interruption", start=10.0, end=11.0, overlap_s=1.0)
    twice = with_finding(once, "interruption", start=20.0, end=21.0, overlap_s=1.2)
    assert score(once, "4", sheet) == 2
    assert score(twice, "4", sheet) == 1
    assert score(good_call(), "4", sheet) == 8


def test_long_pauses_cost_5(sheet):
    result = good_call()
    result["acoustics"]["parties"]["CH0"]["longest_pause_s"] = 3.0
    assert score(result, "5", sheet) == 10
    assert score(good_call(), "5", sheet) == 13


def test_empathy_after_a_complaint_leans_7b(sheet):
    answered = with_finding(good_call(), "empathy_after_complaint", count=1, answered=1, unanswered=0)
    unanswered = with_finding(good_call(), "empathy_after_complaint", count=1, answered=0, unanswered=1)
    assert score(answered, "7b", sheet) == 14
    assert score(unanswered, "7b", sheet) == 8
    assert score(good_call(), "7b", sheet) == 12


# ------------------------------------------------------------------ the sheet's caps and the flags


def phrase(start: float, severity: str, text: str) -> dict[str, Any]:
    return {"rule": "forbidden_phrase", "role": "agent", "start": start, "end": start + 1.2, "text": text,
            "phrase": text, "severity": severity, "score": 0.95, "source": "forbidden_phrases.yaml:31"}


def test_a_severe_phrase_caps_7b_at_2_and_is_fatal(sheet):
    result = good_call()
    result["findings"].append(phrase(20.0, "0-2", "你问我我问谁"))
    rubric = fill_rubric(result, sheet)
    entry = item(rubric, "7b")
    assert entry["score"] == 2
    assert entry["status"] == "auto"
    assert entry["evidence"][0]["start"] == 20.0 and entry["evidence"][0]["phrase"] == "你问我我问谁"
    assert "fatal" in rubric["flags"]
    assert any("服务忌语" in p for p in rubric["problems"])


def test_a_severe_phrase_caps_even_a_good_complaint_handling(sheet):
    result = with_finding(good_call(), "empathy_after_complaint", count=1, answered=1, unanswered=0)
    result["findings"].append(phrase(20.0, "0-2", "你投诉都没用的"))
    assert score(result, "7b", sheet) == 2  # the cap beats the set: the sheet's "0-2 档"


def test_two_severe_phrases_take_7b_to_the_band_floor(sheet):
    result = good_call()
    result["findings"] += [phrase(20.0, "0-2", "你问我我问谁"), phrase(25.0, "0-2", "你投诉都没用的")]
    rubric = fill_rubric(result, sheet)
    assert item(rubric, "7b")["score"] == 0
    # one problem line per finding family, worded by the worse (repeated) rule
    lines = [p for p in rubric["problems"] if p.startswith("化解冲突能力")]
    assert lines == ["化解冲突能力：多次使用严重服务忌语，与客户争执"]
    assert any("严禁使用" in s for s in rubric["suggestions"])


def test_a_minor_phrase_caps_7b_at_5_and_is_not_fatal(sheet):
    result = good_call()
    result["findings"].append(phrase(20.0, "3-5", "我不知道"))
    rubric = fill_rubric(result, sheet)
    assert item(rubric, "7b")["score"] == 5 and item(rubric, "7b")["status"] == "auto"
    assert "fatal" not in rubric["flags"]
    assert fill_rubric(good_call(), sheet)["flags"] == []


def test_dead_air_caps_7b_at_11_but_a_hold_does_not(sheet):
    silence = {"start": 18.0, "end": 24.6, "role": "none", "duration": 6.6}
    dead = with_finding(good_call(), "silence", **silence, hold_notice=False)
    hold = with_finding(good_call(), "silence", **silence, hold_notice=True, hold_notice_text="请您稍等")
    dead_item = item(fill_rubric(dead, sheet), "7b")
    assert dead_item["score"] == 11 and dead_item["status"] == "auto"
    assert "冷场" in dead_item["band"]  # the overlapping 9-11 band is the one the cap names
    assert item(fill_rubric(hold, sheet), "7b")["score"] == 12
    assert item(fill_rubric(hold, sheet), "7b")["status"] == "suggested"


def test_low_role_confidence_needs_review_and_demotes_auto(sheet):
    result = good_call(roles={"method": "cues", "confidence": 0.55})
    rubric = fill_rubric(result, sheet)
    assert "needs_review" in rubric["flags"]
    assert item(rubric, "1b")["status"] == "suggested" and item(rubric, "1b")["demoted_from"] == "auto"
    assert item(rubric, "1b")["confidence"] < 0.6
    assert "needs_review" not in fill_rubric(good_call(), sheet)["flags"]


def test_a_doubtful_greeting_match_needs_review(sheet):
    result = good_call()
    result["findings"][1]["evidence"][0]["score"] = 0.5
    rubric = fill_rubric(result, sheet)
    assert item(rubric, "1b")["confidence"] == 0.5
    assert "needs_review" in rubric["flags"]


def test_markdown_table_and_footer(sheet):
    result = good_call()
    result["findings"].append(phrase(20.0, "0-2", "你问我我问谁"))
    text = render_rubric_markdown(fill_rubric(result, sheet))
    assert "| 序号 | 项目 | 分值 | 得分 |" in text
    for item_id in ITEM_IDS:
        assert f"| {item_id} |" in text
    assert "**合计 " in text and "该坐席存在的主要问题" in text and "改善建议" in text
    assert "fatal" in text and "[00:20.0]" in text


# ------------------------------------------------------------------ malformed sheets name file and line

BAD_SHEETS = [
    ("items:\n  - id: X\n    name: n\n    points: 2\n    status: auto\n    base: 0\n"
     "    bands:\n      - {min: 0, max: 3, text: t}\n", 8, "within 0-2"),
    ("items:\n  - id: X\n    name: n\n    points: 2\n    status: sometimes\n    base: 0\n"
     "    bands: [{min: 0, max: 2, text: t}]\n", 5, "status"),
    ("items:\n  - id: X\n    name: n\n    points: 2\n    status: auto\n    base: 0\n"
     "    bands: [{min: 0, max: 2, text: t}]\n    rules:\n      - when: {phrases: nosuch}\n        set: 2\n",
     9, "nosuch"),
    ("items:\n  - id: X\n    name: n\n    points: 2\n    status: auto\n    base: 0\n"
     "    bands: [{min: 0, max: 2, text: t}]\n    rules:\n      - when: {rule: greeting}\n        cap: 9\n",
     10, "cap"),
    ("items:\n  - id: X\n    name: n\n    points: 2\n    status: auto\n    base: 0\n    colour: red\n"
     "    bands: [{min: 0, max: 2, text: t}]\n", 7, "colour"),
    ("items:\n  - id: X\n    name: n\n    status: auto\n    base: 0\n"
     "    bands: [{min: 0, max: 2, text: t}]\n", 2, "points"),
    ("items:\n  - id: X\n    name: n\n   points: 2\n", 4, "invalid YAML"),
]


@pytest.mark.parametrize(("text", "line", "reason"), BAD_SHEETS)
def test_malformed_sheet_is_rejected_with_file_and_line(tmp_path, text, line, reason):
    path = tmp_path / "rubric.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RuleFileError) as info:
        parse_rubric(path)
    assert info.value.line == line
    assert f"rubric.yaml:{line}" in str(info.value)
    assert reason in str(info.value)


def test_load_rubric_reads_a_rules_folder(tmp_path):
    (tmp_path / "rubric.yaml").write_text("items: []\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match="rubric.yaml:1"):
        load_rubric(tmp_path)


# ------------------------------------------------------------------ the truth sheets


def test_every_sample_call_has_a_complete_truth_sheet(sheet):
    points = {i.id: i.points for i in sheet.items}
    calls = sorted(p.name.removesuffix(".truth.json") for p in SAMPLE_CALLS.glob("*.truth.json"))
    assert calls
    for name in calls:
        data = json.loads((SAMPLE_CALLS / f"{name}.sheet.json").read_text(encoding="utf-8"))
        assert data["call"] == name
        assert set(data["items"]) == set(ITEM_IDS)
        assert all(0 <= data["items"][i] <= points[i] for i in ITEM_IDS), name
