"""The rule checks on hand-built transcripts: each check's positive and negative case."""

from __future__ import annotations

import json

import pytest

from qa_audio.checks.rulebook import Rulebook, load_rulebook
from qa_audio.checks.script import run_checks
from qa_audio.phrase_match import normalise
from qa_audio.schema import Finding, SpeechInterval, Transcript, Turn, Word

GREETING_2 = "您好，星河通信，工号1024为您服务，请问有什么可以帮您？"
CLOSING_2 = "感谢您的来电，祝您生活愉快，再见！"


@pytest.fixture(scope="module")
def rb() -> Rulebook:
    return load_rulebook()


def turn(role: str, start: float, end: float, text: str, speaker: str | None = None) -> Turn:
    """A turn whose words are its characters spread evenly, as in the bench's oracle mode."""
    chars = [c for c in text if normalise(c)]
    step = (end - start) / len(chars)
    words = [Word(start + i * step, start + (i + 1) * step, c, 0.9) for i, c in enumerate(chars)]
    return Turn(speaker=speaker or role, role=role, start=start, end=end, text=text, words=words)


def call(turns: list[Turn], speech: list[SpeechInterval] | None = None, duration: float | None = None,
         roles: dict[str, str] | None = None) -> Transcript:
    """Speech intervals default to the turns themselves (what stereo VAD gives for clean turns)."""
    if speech is None:
        speech = [SpeechInterval(t.speaker, t.start, t.end) for t in turns]
    return Transcript(duration=duration or max(t.end for t in turns) + 1.0, turns=turns, speech=speech,
                      roles=roles or {"agent": "agent", "customer": "customer"})


def of(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def one(findings: list[Finding], rule: str) -> Finding:
    (f,) = of(findings, rule)
    return f


def standard(middle: list[Turn], greeting: str = GREETING_2, closing: str = CLOSING_2) -> list[Turn]:
    """A call: greeting at 1-6 s, ``middle`` turns, closing at 60-64 s."""
    return [turn("agent", 1.0, 6.0, greeting), turn("customer", 7.0, 9.0, "我的宽带断了"),
            *middle, turn("agent", 60.0, 64.0, closing)]


# -- greeting / answer delay ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "level", "missing"), [
    (GREETING_2, 2, []),
    ("您好，心和通信，功耗幺零二四为您服务，请问有什么可疑帮您？", 2, []),  # ASR homophones
    ("您好，星河通信，请问有什么可以帮您？", 1, ["agent_id"]),
    ("您好。", 0, ["company", "agent_id", "offer_help"]),
])
def test_greeting_levels(rb: Rulebook, text: str, level: int, missing: list[str]) -> None:
    g = one(run_checks(call(standard([], greeting=text)), rb), "greeting")
    assert g.details.level == level
    assert g.details.parts_missing == missing


@pytest.mark.parametrize(("probability", "level"), [(0.18, 2), (0.9, 0)])
def test_greeting_through_an_extra_character_whisper_doubted(rb: Rulebook, probability: float, level: int) -> None:
    """h03 and h12: 您好 said, base wrote 您也好 with 也 at p 0.18 and 0.26 (matching.yaml's unsure_below)."""
    g = turn("agent", 1.0, 6.0, "您也好，星河通信，工号1024为您服务，请问有什么可以帮您？")
    g.words[1] = Word(g.words[1].start, g.words[1].end, "也", probability)
    found = one(run_checks(call([g, *standard([])[1:]]), rb), "greeting")
    assert found.details.level == level
    assert ("greeting" in found.details.parts_missing) == (level == 0)


def test_greeting_agent_id_from_digits_alone(rb: Rulebook) -> None:
    g = one(run_checks(call(standard([], greeting="您好星河通信，1024号为您服务，请问有什么可以帮您")), rb),
            "greeting")
    assert g.details.level == 2
    assert g.details.agent_id_digits == "1024"


@pytest.mark.parametrize(("text", "digits", "level"), [
    ("你好，星河通信，宫后午三零七位您服务，请问有什么可以帮您", "5307", 2),  # call14: 午 for 五, keyword off
    ("你好，星河通信，宫后午就三零七位您服务，请问有什么可以帮您", "", 1),    # two homophones: not a number
    ("你好，星河通信，宫后一午三零七位您服务，请问有什么可以帮您", "", 1),    # five digits: not a 工号
    ("你好，播号302要为您服务，请问有什么可以帮您", "3021", 0),              # h02: 要 for 幺, last
])
def test_greeting_agent_id_with_one_digit_misheard(rb: Rulebook, text: str, digits: str, level: int) -> None:
    g = one(run_checks(call(standard([], greeting=text)), rb), "greeting")
    assert (g.details.agent_id_digits, g.details.level) == (digits, level)


def test_greeting_homophone_digits_after_keyword(rb: Rulebook) -> None:
    g = one(run_checks(call(standard([], greeting="您好星河通信功耗要零二久为您服务请问有什么可以帮您")), rb),
            "greeting")
    assert g.details.agent_id_digits == "1029"
    assert g.details.agent_id_complete is True


def test_answer_delay_uses_speech_intervals_not_segment_edges(rb: Rulebook) -> None:
    turns = standard([])
    turns[0] = turn("agent", 0.2, 6.0, GREETING_2)  # the ASR segment starts early (line noise)
    speech = [SpeechInterval(t.speaker, t.start, t.end) for t in turns[1:]]
    speech.append(SpeechInterval("agent", 2.5, 6.0))
    d = one(run_checks(call(turns, speech), rb), "answer_delay")
    assert d.details.seconds == pytest.approx(2.5)
    assert d.details.within_limit is True


def test_late_answer_is_over_the_limit(rb: Rulebook) -> None:
    turns = [turn("agent", 20.0, 25.0, GREETING_2), turn("customer", 26.0, 28.0, "好的谢谢")]
    d = one(run_checks(call(turns), rb), "answer_delay")
    assert d.details.within_limit is False


# -- closing / anything else / last speaker --------------------------------------------------------


@pytest.mark.parametrize(("text", "level"), [
    (CLOSING_2, 2),
    ("祝您生活愉快，再见。", 1),
    ("好的，再见。", 0),
    ("嗯。", 0),
])
def test_closing_levels(rb: Rulebook, text: str, level: int) -> None:
    assert one(run_checks(call(standard([], closing=text)), rb), "closing").details.level == level


def test_closing_split_over_two_asr_segments(rb: Rulebook) -> None:
    turns = standard([], closing="感谢您的来电")
    turns.append(turn("agent", 64.3, 66.0, "祝您生活愉快再见"))
    assert one(run_checks(call(turns), rb), "closing").details.level == 2


def test_anything_else_asked_before_close(rb: Rulebook) -> None:
    turns = standard([turn("agent", 40.0, 43.0, "请问还有什么可以帮您？"),
                      turn("customer", 44.0, 45.0, "没有了")])
    a = one(run_checks(call(turns), rb), "anything_else")
    assert a.details.asked is True
    assert a.details.before_close is True
    assert a.start == pytest.approx(40.0)


def test_opening_offer_is_not_the_anything_else_question(rb: Rulebook) -> None:
    a = one(run_checks(call(standard([])), rb), "anything_else")
    assert a.details.asked is False


def test_last_speaker(rb: Rulebook) -> None:
    agent_last = run_checks(call(standard([])), rb)
    customer_last = run_checks(call([*standard([]), turn("customer", 64.5, 65.5, "再见")]), rb)
    assert one(agent_last, "last_speaker").role == "agent"
    assert one(customer_last, "last_speaker").details.last_speaker == "customer"


# -- forbidden phrases -------------------------------------------------------------------------------


def test_agent_forbidden_phrases_with_severity(rb: Rulebook) -> None:
    turns = standard([turn("agent", 10.0, 13.0, "这个我不知道。"), turn("customer", 14.0, 16.0, "那怎么办"),
                      turn("agent", 17.0, 20.0, "你问我，我问谁？")])
    hits = of(run_checks(call(turns), rb), "forbidden_phrase")
    assert [(h.details.phrase, h.details.severity) for h in hits] == [("我不知道", "3-5"), ("你问我，我问谁", "0-2")]
    assert all(h.role == "agent" for h in hits)
    assert hits[0].start == pytest.approx(10.0 + 2 * 3.0 / 6)  # from the words of 我不知道
    assert hits[0].details.score == hits[0].confidence == 1.0


def test_customer_saying_i_dont_know_is_not_a_violation(rb: Rulebook) -> None:
    turns = standard([turn("customer", 10.0, 13.0, "我不知道啊，你问我我问谁")])
    assert of(run_checks(call(turns), rb), "forbidden_phrase") == []


def test_agent_saying_i_know_is_not_a_violation(rb: Rulebook) -> None:
    turns = standard([turn("agent", 10.0, 13.0, "我知道了，您的投诉我们会处理")])
    assert of(run_checks(call(turns), rb), "forbidden_phrase") == []


# -- silence -----------------------------------------------------------------------------------------


def test_silence_from_speech_intervals_inside_one_asr_segment(rb: Rulebook) -> None:
    # One Whisper segment spans 10-25 s; VAD says the agent spoke 10-12 and 20-25: 8 s of dead air.
    long_turn = turn("agent", 10.0, 25.0, "好的我看一下这个问题已经帮您处理了")
    turns = standard([long_turn])
    speech = [SpeechInterval(t.speaker, t.start, t.end) for t in turns if t is not long_turn]
    speech += [SpeechInterval("agent", 10.0, 12.0), SpeechInterval("agent", 20.0, 25.0),
               SpeechInterval("customer", 26.0, 59.0)]
    (s,) = of(run_checks(call(turns, speech), rb), "silence")
    assert (s.start, s.end) == (12.0, 20.0)
    assert s.role == "none"
    assert s.details.hold_notice is False


def test_silence_after_hold_notice(rb: Rulebook) -> None:
    turns = standard([turn("agent", 10.0, 13.0, "好的，请您稍等，我帮您查询一下"),
                      turn("agent", 21.0, 24.0, "让您久等了"), turn("customer", 25.0, 58.0, "好的")])
    (s,) = of(run_checks(call(turns), rb), "silence")
    assert (s.start, s.end) == (13.0, 21.0)
    assert s.details.hold_notice is True
    assert s.details.phrase in {"请您稍等", "我帮您查询一下"}


def test_short_gaps_and_one_sided_silence_are_not_dead_air(rb: Rulebook) -> None:
    # 3 s gap: under the threshold. 20-40: the agent is quiet but the customer talks.
    turns = standard([turn("agent", 12.0, 20.0, "好的您说"), turn("customer", 20.5, 40.0, "是这样的" * 5),
                      turn("agent", 41.0, 58.0, "明白了")])
    assert of(run_checks(call(turns), rb), "silence") == []


# -- interruption ---------------------------------------------------------------------------------


def test_agent_talking_over_the_customer(rb: Rulebook) -> None:
    turns = standard([turn("customer", 10.0, 16.0, "我跟你说我这个宽带已经断了三天了"),
                      turn("agent", 14.0, 18.0, "您先听我说")])
    (i,) = of(run_checks(call(turns), rb), "interruption")
    assert (i.start, i.end) == (14.0, 16.0)
    assert i.role == "agent"


def test_mono_diarizer_labels_work_the_same(rb: Rulebook) -> None:
    turns = standard([turn("customer", 10.0, 16.0, "我跟你说我这个宽带已经断了三天了"),
                      turn("agent", 14.0, 18.0, "您先听我说")])
    labels = {"agent": "SPEAKER_01", "customer": "SPEAKER_00"}
    turns = [Turn(labels[t.role], t.role, t.start, t.end, t.text, t.words) for t in turns]
    tr = call(turns, roles={"SPEAKER_01": "agent", "SPEAKER_00": "customer"})
    assert len(of(run_checks(tr, rb), "interruption")) == 1


def test_no_interruption_for_turn_taking_or_backchannel(rb: Rulebook) -> None:
    turns = standard([turn("customer", 10.0, 16.0, "我这个宽带已经断了三天了"),
                      turn("agent", 12.0, 12.3, "嗯"),  # backchannel, shorter than min_overlap_s
                      turn("agent", 16.5, 18.0, "好的明白")])  # after the customer stopped
    assert of(run_checks(call(turns), rb), "interruption") == []


def test_customer_interrupting_the_agent_is_not_an_agent_interruption(rb: Rulebook) -> None:
    turns = standard([turn("agent", 10.0, 16.0, "根据规定这个需要您本人来办理"),
                      turn("customer", 13.0, 17.0, "凭什么")])
    assert of(run_checks(call(turns), rb), "interruption") == []


# -- counts ----------------------------------------------------------------------------------------


def test_politeness_and_fillers_are_counted_with_evidence(rb: Rulebook) -> None:
    turns = standard([turn("agent", 10.0, 15.0, "嗯嗯，那个那个，您说啥？不好意思，麻烦您再说一遍")])
    found = run_checks(call(turns), rb)
    polite, fillers = one(found, "politeness"), one(found, "fillers")
    assert polite.details.per_phrase["不好意思"] == 1
    assert polite.details.per_phrase["麻烦您"] == 1
    assert fillers.details.per_phrase == {"嗯嗯": 1, "那个那个": 1, "啥": 1}
    assert fillers.details.count == len(fillers.details.evidence) == 3


def test_fillers_are_not_found_in_ordinary_words(rb: Rulebook) -> None:
    turns = standard([turn("agent", 10.0, 15.0, "您这个月的金额是多少")])
    assert one(run_checks(call(turns), rb), "fillers").details.count == 0


def test_empathy_after_complaint(rb: Rulebook) -> None:
    answered = standard([turn("customer", 10.0, 13.0, "你们服务太差了，我要投诉"),
                         turn("agent", 14.0, 17.0, "非常抱歉给您带来不便")])
    ignored = standard([turn("customer", 10.0, 13.0, "你们服务太差了"),
                        turn("agent", 14.0, 17.0, "根据规定就是这样")])
    a = one(run_checks(call(answered), rb), "empathy_after_complaint")
    b = one(run_checks(call(ignored), rb), "empathy_after_complaint")
    assert a.details.count == 2 and a.details.unanswered == 0
    assert b.details.count == 1 and b.details.unanswered == 1


# -- contract ----------------------------------------------------------------------------------------


def test_findings_follow_the_json_contract(rb: Rulebook) -> None:
    turns = standard([turn("agent", 10.0, 13.0, "我不知道，请您稍等"), turn("customer", 22.0, 30.0, "好吧"),
                      turn("agent", 28.0, 32.0, "请问还有什么可以帮您")])
    found = run_checks(call(turns), rb)
    assert [f.start for f in found] == sorted(f.start for f in found)
    rules = {f.rule for f in found}
    assert {"answer_delay", "greeting", "closing", "anything_else", "last_speaker", "forbidden_phrase",
            "silence", "interruption", "politeness", "fillers", "empathy_after_complaint"} <= rules
    for f in found:
        d = json.loads(json.dumps(f.to_dict(), ensure_ascii=False))
        assert {"rule", "role", "start", "end", "text"} <= d.keys()
        assert d["role"] in {"agent", "customer", "none"}
        assert isinstance(d["start"], float | int) and isinstance(d["end"], float | int)
        assert d["start"] <= d["end"]
        if d["rule"] == "forbidden_phrase":
            assert d["severity"] in {"3-5", "0-2"} and d["phrase"] and 0 < d["score"] <= 1
        if d["rule"] in {"greeting", "closing"}:
            assert d["level"] in {0, 1, 2}


def test_empty_transcript_still_gives_valid_findings(rb: Rulebook) -> None:
    found = run_checks(Transcript(duration=10.0, turns=[], speech=[], roles={}), rb)
    assert one(found, "greeting").details.level == 0
    assert one(found, "closing").details.level == 0
    assert of(found, "silence") == []  # no speech at all: nothing to call dead air between


def test_one_turn_holding_the_whole_call_still_gets_greeting_and_closing(rb: Rulebook) -> None:
    # Failed mono diarization: everything is one long "agent" turn.
    text = GREETING_2 + "我想查一下话费。好的，这个月是五十八元。请问还有什么可以帮您？没有了。" + CLOSING_2
    found = run_checks(call([turn("agent", 0.5, 60.0, text)]), rb)
    assert one(found, "greeting").details.level == 2
    assert one(found, "closing").details.level == 2
    assert one(found, "anything_else").details.asked is True
