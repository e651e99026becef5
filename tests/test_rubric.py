"""The pre-filled rubric: each mapping of rules/rubric.yaml, the caps, the flags, the file checks.

Fast: hand-built analyze results (the findings' shapes are those of rules/FINDINGS.md), no audio.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from qa_audio.report.markdown import render_rubric_markdown
from qa_audio.rubric import fill_rubric_from_result, load_rubric, parse_rubric
from qa_audio.rule_files import DEFAULT_RULES_DIR, RuleFileError
from tests.helpers import good_call, phrase, turn, with_finding

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CALLS = ROOT / "sample_calls"
ITEM_IDS = ["1a", "1b", "1c", "1d", "1e", "2a", "2b", "3", "4", "5", "6", "7a", "7b"]


@pytest.fixture(scope="module")
def sheet():
    return load_rubric()


def fill(result: dict[str, Any], sheet) -> dict[str, Any]:
    """The sheet filled from a hand-made result, as the JSON has it."""
    return fill_rubric_from_result(result, sheet).to_dict()


def item(rubric: dict[str, Any], item_id: str) -> dict[str, Any]:
    return next(i for i in rubric["items"] if i["id"] == item_id)


def score(result: dict[str, Any], item_id: str, sheet) -> float | None:
    return item(fill(result, sheet), item_id)["score"]


# ------------------------------------------------------------------ the sheet as data


def test_shipped_sheet_has_the_inspectors_items(sheet):
    assert [i.id for i in sheet.items] == ITEM_IDS
    assert sheet.max_total == 100
    assert {i.id for i in sheet.items if i.status == "inspector"} == {"6", "7a"}


def test_clean_call_prefill_and_contract(sheet):
    rubric = fill(good_call(), sheet)
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
    rubric = fill(good_call(), custom)
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


def test_a_severe_phrase_caps_7b_at_2_and_is_fatal(sheet):
    result = good_call()
    result["findings"].append(phrase(20.0, "0-2", "你问我我问谁"))
    rubric = fill(result, sheet)
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
    rubric = fill(result, sheet)
    assert item(rubric, "7b")["score"] == 0
    # one problem line per finding family, worded by the worse (repeated) rule
    lines = [p for p in rubric["problems"] if p.startswith("化解冲突能力")]
    assert lines == ["化解冲突能力：多次使用严重服务忌语，与客户争执"]
    assert any("严禁使用" in s for s in rubric["suggestions"])


def test_a_minor_phrase_caps_7b_at_5_and_is_not_fatal(sheet):
    result = good_call()
    result["findings"].append(phrase(20.0, "3-5", "我不知道"))
    rubric = fill(result, sheet)
    assert item(rubric, "7b")["score"] == 5 and item(rubric, "7b")["status"] == "auto"
    assert "fatal" not in rubric["flags"]
    assert fill(good_call(), sheet)["flags"] == []


def test_dead_air_caps_7b_at_11_but_a_hold_does_not(sheet):
    silence = {"start": 18.0, "end": 24.6, "role": "none", "duration": 6.6}
    dead = with_finding(good_call(), "silence", **silence, hold_notice=False)
    hold = with_finding(good_call(), "silence", **silence, hold_notice=True, hold_notice_text="请您稍等")
    dead_item = item(fill(dead, sheet), "7b")
    assert dead_item["score"] == 11 and dead_item["status"] == "auto"
    assert "冷场" in dead_item["band"]  # the overlapping 9-11 band is the one the cap names
    assert item(fill(hold, sheet), "7b")["score"] == 12
    assert item(fill(hold, sheet), "7b")["status"] == "suggested"


def test_low_role_confidence_needs_review_and_demotes_auto(sheet):
    result = good_call(roles={"method": "cues", "confidence": 0.55})
    rubric = fill(result, sheet)
    assert "needs_review" in rubric["flags"]
    assert item(rubric, "1b")["status"] == "suggested" and item(rubric, "1b")["demoted_from"] == "auto"
    assert item(rubric, "1b")["confidence"] < 0.6
    assert "needs_review" not in fill(good_call(), sheet)["flags"]


def test_a_doubtful_greeting_match_needs_review(sheet):
    result = good_call()
    result["findings"][1]["evidence"][0]["score"] = 0.5
    rubric = fill(result, sheet)
    assert item(rubric, "1b")["confidence"] == 0.5
    assert "needs_review" in rubric["flags"]


def test_markdown_table_and_footer(sheet):
    result = good_call()
    result["findings"].append(phrase(20.0, "0-2", "你问我我问谁"))
    text = render_rubric_markdown(fill_rubric_from_result(result, sheet))
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
    shutil.copytree(DEFAULT_RULES_DIR, tmp_path / "rules")
    (tmp_path / "rules" / "rubric.yaml").write_text("items: []\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match="rubric.yaml:1"):
        load_rubric(tmp_path / "rules")


def test_a_rules_folder_without_the_sheet_is_refused_not_replaced(tmp_path):
    shutil.copytree(DEFAULT_RULES_DIR, tmp_path / "rules")
    (tmp_path / "rules" / "rubric.yaml").unlink()
    with pytest.raises(RuleFileError) as info:
        load_rubric(tmp_path / "rules")
    assert info.value.path == tmp_path / "rules" and "rubric.yaml is missing" in info.value.reason


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
