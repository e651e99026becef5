"""The rule files: the shipped ones load, and every kind of mistake names its file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa_audio.checks.rulebook import RULE_TYPES, load_rulebook
from qa_audio.checks.script import run_checks
from qa_audio.rule_files import DEFAULT_RULES_DIR, RuleFileError
from qa_audio.schema import SpeechInterval, Transcript, Turn, Word
from tests.helpers import edit


def broken(rules: Path) -> RuleFileError:
    with pytest.raises(RuleFileError) as err:
        load_rulebook(rules)
    return err.value


def test_shipped_rules_load() -> None:
    rb = load_rulebook()
    assert rb.deployment.company_name == "星河通信"
    assert rb.deployment.agent_id_digits == 4
    assert {p.group for p in rb.forbidden} == {"3-5", "0-2"}
    assert rb.thresholds.silence_min_s == 5.0
    assert set(rb.files) == set(RULE_TYPES)


def test_every_rule_file_starts_with_comments_for_a_qa_lead() -> None:
    for kind, path in load_rulebook().files.items():
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# "), f"{path.name} ({kind}) does not start with a comment"


def test_malformed_yaml(rules: Path) -> None:
    line = edit(rules / "greeting.yaml", "  greeting: [您好, 你好]", "  greeting: [您好, 你好")
    err = broken(rules)
    assert err.path.name == "greeting.yaml"
    assert err.line is not None and err.line >= line
    assert "invalid YAML" in err.reason


def test_unknown_rule_type(rules: Path) -> None:
    line = edit(rules / "fillers.yaml", "type: fillers", "type: filler_words")
    err = broken(rules)
    assert (err.path.name, err.line) == ("fillers.yaml", line)
    assert "unknown rule type 'filler_words'" in err.reason


@pytest.mark.parametrize(("old", "new", "words"), [
    ("  min_duration_s: 5.0", "  min_duration_s: -5", "more than 0"),
    ("  min_duration_s: 5.0", "  min_duration_s: five", "must be int or float"),
    ("  min_overlap_s: 0.5", "  min_overlap_s: 120", "at most 60"),
    ("  max_s: 15", "  max_s: true", "must be a number"),
])
def test_bad_threshold(rules: Path, old: str, new: str, words: str) -> None:
    line = edit(rules / "thresholds.yaml", old, new)
    err = broken(rules)
    assert (err.path.name, err.line) == ("thresholds.yaml", line)
    assert words in err.reason


def test_bad_unsure_insertion_setting_and_an_older_matching_file(rules: Path) -> None:
    line = edit(rules / "matching.yaml", "unsure_below: 0.5", "unsure_below: 50")
    err = broken(rules)
    assert (err.path.name, err.line) == ("matching.yaml", line)
    assert "'unsure_below' must be at least 0.0 and at most 1.0" in err.reason
    # a site's copy from before the setting: an extra character costs the same, however unsure
    text = (rules / "matching.yaml").read_text(encoding="utf-8")
    (rules / "matching.yaml").write_text("\n".join(x for x in text.splitlines() if not x.startswith("unsure_")),
                                         encoding="utf-8")
    settings = load_rulebook(rules).index.settings
    assert (settings.unsure_insertion_penalty, settings.unsure_below) == (settings.insertion_penalty, 0.0)


def test_bad_min_score_on_one_phrase(rules: Path) -> None:
    line = edit(rules / "forbidden_phrases.yaml", "    - 我不清楚\n",
                "    - {phrase: 我不清楚, min_score: 1.5}\n")
    err = broken(rules)
    assert (err.path.name, err.line) == ("forbidden_phrases.yaml", line)
    assert "min_score" in err.reason


def test_unknown_key_is_a_typo_not_ignored(rules: Path) -> None:
    line = edit(rules / "thresholds.yaml", "  include_call_edges: false", "  include_call_edge: false")
    err = broken(rules)
    assert (err.path.name, err.line) == ("thresholds.yaml", line)
    assert "unknown key 'include_call_edge'" in err.reason


def test_level_needing_an_undefined_part(rules: Path) -> None:
    line = edit(rules / "closing.yaml", "  1: [wish, goodbye]", "  1: [wishes, goodbye]")
    err = broken(rules)
    assert (err.path.name, err.line) == ("closing.yaml", line)
    assert "'wishes'" in err.reason


def test_unknown_severity(rules: Path) -> None:
    line = edit(rules / "forbidden_phrases.yaml", '  "0-2":', '  "1-2":')
    err = broken(rules)
    assert (err.path.name, err.line) == ("forbidden_phrases.yaml", line)
    assert "severity" in err.reason


def test_phrase_with_no_characters(rules: Path) -> None:
    line = edit(rules / "politeness.yaml", "  - 谢谢\n", "  - \"，！\"\n")
    err = broken(rules)
    assert (err.path.name, err.line) == ("politeness.yaml", line)
    assert "no characters" in err.reason


def test_unclosed_bracket(rules: Path) -> None:
    line = edit(rules / "closing.yaml", "  - 请问[还]有什么可以帮您\n", "  - 请问[还有什么可以帮您\n")
    err = broken(rules)
    assert (err.path.name, err.line) == ("closing.yaml", line)
    assert "never closed" in err.reason


def test_missing_and_duplicate_rule_files(rules: Path) -> None:
    (rules / "hold_notice.yaml").unlink()
    err = broken(rules)
    assert err.path == rules and "hold_notice" in err.reason
    shutil.copy(DEFAULT_RULES_DIR / "hold_notice.yaml", rules / "hold_notice.yaml")
    shutil.copy(DEFAULT_RULES_DIR / "hold_notice.yaml", rules / "hold_notice_copy.yaml")
    err = broken(rules)
    assert err.path.name == "hold_notice_copy.yaml" and "second 'hold_notice'" in err.reason


def test_files_of_other_components_are_left_alone(rules: Path) -> None:
    (rules / "acoustic.yaml").write_text("analysis:\n  pitch_fmin_hz: 65\n", encoding="utf-8")
    assert load_rulebook(rules).deployment.company_name == "星河通信"


def test_deployment_override_changes_company_and_agent_id(rules: Path, tmp_path: Path) -> None:
    dep = tmp_path / "site_b.yaml"
    text = (rules / "deployment.yaml").read_text(encoding="utf-8")
    dep.write_text(text.replace("name: 星河通信", "name: 蓝海电信").replace("digits: 4", "digits: 6"),
                   encoding="utf-8")
    rb = load_rulebook(rules, deployment=dep)
    text = "您好蓝海电信工号一二三四五六为您服务请问有什么可以帮您"
    step = 0.2
    words = [Word(1 + i * step, 1 + (i + 1) * step, c, 0.9) for i, c in enumerate(text)]
    end = 1 + len(text) * step
    tr = Transcript(duration=end + 1, turns=[Turn("a", "agent", 1.0, end, text, words)],
                    speech=[SpeechInterval("a", 1.0, end)], roles={"a": "agent"})
    (g,) = [f for f in run_checks(tr, rb) if f.rule == "greeting"]
    assert g.details.level == 2
    assert g.details.agent_id_digits == "123456"
    default = [f for f in run_checks(tr, load_rulebook()) if f.rule == "greeting"][0]
    assert "company" in default.details.parts_missing  # 星河通信 was not said


def test_rules_dir_that_does_not_exist(tmp_path: Path) -> None:
    err = broken(tmp_path / "nope")
    assert "not found" in err.reason
