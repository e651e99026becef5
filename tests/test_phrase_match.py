"""The pinyin matcher: homophones that ASR produces match, phrases that mean something else do not."""

from __future__ import annotations

import pytest

from qa_audio.phrase_match import (
    Heard,
    MatchSettings,
    PhraseIndex,
    SyllableScorer,
    compile_phrase,
    normalise,
)

SETTINGS = MatchSettings()


def heard(text: str, role: str = "agent", start: float = 0.0, per_char: float = 0.25) -> Heard:
    """One word per character, ``per_char`` seconds each, like a Whisper word list for Chinese."""
    chars = [c for c in text if normalise(c)]
    return Heard.from_pieces(role, [(c, start + i * per_char, start + (i + 1) * per_char)
                                    for i, c in enumerate(chars)])


def find(phrase: str, text: str, **kw) -> list:
    p = compile_phrase(phrase, "test", SETTINGS, **kw)
    return PhraseIndex([p], SETTINGS).find(heard(text))


@pytest.mark.parametrize(("phrase", "asr_text"), [
    ("工号", "您好功耗幺零二四为您服务"),
    ("星河通信", "您好心和通信"),
    ("请问有什么可以帮您", "请问有什么可疑帮您"),
    ("感谢您的来电", "感谢您的来店"),
    ("再见", "好的在建"),
])
def test_homophones_written_by_asr_still_match(phrase: str, asr_text: str) -> None:
    hits = find(phrase, asr_text)
    assert len(hits) == 1
    assert hits[0].phrase.text == phrase
    assert hits[0].heard != phrase  # it really was a different spelling
    assert hits[0].score >= SETTINGS.min_score


def test_near_homophone_scores_below_exact_but_passes() -> None:
    (hit,) = find("星河通信", "心和通信")  # xin for xing: a confusable final
    assert SETTINGS.min_score <= hit.score < 1.0


@pytest.mark.parametrize(("phrase", "text"), [
    ("我不知道", "我知道了您说的情况"),
    ("我不清楚", "我清楚您的意思"),
    ("你投诉都没用的", "您的投诉我们会处理"),
    ("你问我，我问谁", "我问一下同事再回复您"),
    ("无法跟你沟通", "我马上跟您沟通"),
    ("我不知道", "今天天气很好"),
])
def test_different_meaning_does_not_match(phrase: str, text: str) -> None:
    assert find(phrase, text) == []


def test_negation_must_be_heard_but_another_negation_word_counts() -> None:
    assert find("无法跟你沟通", "我没法跟你沟通")  # 没 for 无: still a refusal
    assert not find("我不知道", "我也知道")


def test_phrase_after_a_negation_is_not_the_phrase() -> None:
    assert find("可以帮您", "这个可以帮您办")
    assert not find("可以帮您", "这个不可以帮您办")


def test_one_extra_or_missing_character_is_tolerated_with_a_lower_score() -> None:
    (extra,) = find("我不知道", "这个我也不知道")
    (missing,) = find("你投诉都没用的", "你投诉没用的")
    assert extra.heard == "我也不知道"
    assert 0.8 < extra.score < 1.0
    assert 0.8 < missing.score < 1.0


def test_an_extra_character_whisper_doubted_costs_less() -> None:
    settings = MatchSettings(unsure_insertion_penalty=0.25, unsure_below=0.5)
    phrase = compile_phrase("您好", "test", settings, min_score=0.85)
    index = PhraseIndex([phrase], settings)

    def said(probability: float) -> Heard:
        return Heard.from_pieces("agent", [("您", 0.5, 0.84, 0.7), ("也", 0.84, 0.92, probability),
                                           ("好", 0.92, 1.2, 0.97)])

    (hit,) = index.find(said(0.18))
    assert hit.score == pytest.approx((2 - 0.25) / 2)
    assert (hit.start, hit.end) == (0.5, 1.2)
    assert index.find(said(0.6)) == []  # a sure 也 is said: (2 - 0.5) / 2 is below the pass mark
    assert PhraseIndex([phrase], SETTINGS).find(said(0.18)) == []  # without the setting: as before


def test_bracketed_character_is_required() -> None:
    assert not find("请问[还]有什么可以帮您", "您好请问有什么可以帮您")
    (hit,) = find("请问[还]有什么可以帮您", "请问还有什么可以帮您")
    assert hit.phrase.text == "请问还有什么可以帮您"


def test_short_phrase_must_be_a_whole_word() -> None:
    assert find("谢谢", "好的谢谢您")
    assert not find("请", "我帮您申请一下")


def test_text_method_is_exact() -> None:
    assert find("啥", "你说啥", method="text")
    assert not find("啥", "你傻了", method="text")


def test_digits_and_numerals_are_the_same_sound() -> None:
    (hit,) = find("1024", "工号幺零两四")
    assert hit.score == 1.0
    assert hit.heard == "幺零两四"


def test_hit_times_come_from_the_matched_words() -> None:
    (hit,) = find("我不知道", "嗯嗯我不知道啊")  # 0.25 s per character
    assert hit.start == pytest.approx(0.5)
    assert hit.end == pytest.approx(1.5)


def test_every_occurrence_is_found() -> None:
    hits = find("我不知道", "我不知道真的我不知道")
    assert [h.start for h in hits] == pytest.approx([0.0, 1.5])


def test_normalise_simplifies_and_strips_punctuation() -> None:
    assert normalise("謝謝您，來電！ＡＢ１２") == "谢谢您来电ab12"


def test_syllable_scores() -> None:
    s = SyllableScorer(SETTINGS)
    assert s.score("xing", "xing") == 1.0
    assert s.score("xing", "xin") == pytest.approx(0.85)
    assert s.score("zhi", "zi") == pytest.approx(0.85)
    assert s.score("zhi", "bu") == 0.0
    assert s.score("ta", "na") == pytest.approx(SETTINGS.half_match)
    assert s.coarse("zhi") == s.coarse("zi")
    assert s.coarse("zhi") != s.coarse("bu")
