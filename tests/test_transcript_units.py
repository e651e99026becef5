"""Units of the transcript stages that need no model: hallucination removal, turns, roles."""

from __future__ import annotations

import pytest

from qa_audio.schema import SpeechInterval, Word
from qa_audio.speech.asr import drop_hallucinations
from qa_audio.speech.attribution import build_turns, speaker_for_span
from qa_audio.speech.roles import assign_by_channel, assign_by_cues, load_role_cues


def words(text: str, start: float, step: float = 0.2) -> list[Word]:
    return [Word(start + i * step, start + (i + 1) * step, ch, 0.9) for i, ch in enumerate(text)]


def test_decoding_loop_is_dropped_and_reported():
    heard = words("谢谢您的来电", 10.0) + words("祈" * 12, 12.0, 0.05)
    kept, dropped = drop_hallucinations(heard)
    assert "".join(w.text for w in kept) == "谢谢您的来电"
    assert len(dropped) == 1
    assert dropped[0].text == "祈" * 12
    assert dropped[0].start == 12.0
    assert "x12" in dropped[0].reason


def test_real_backchannel_and_repeated_phrase_loops():
    kept, dropped = drop_hallucinations(words("对对对对好的", 0.0))
    assert dropped == [] and len(kept) == 6
    loop = [Word(i * 0.5, i * 0.5 + 0.4, "谢谢", 0.5) for i in range(6)]
    kept, dropped = drop_hallucinations(words("好的", 0.0) + [Word(w.start + 2, w.end + 2, w.text, 0.5)
                                                             for w in loop])
    assert "".join(w.text for w in kept) == "好的"
    assert dropped[0].text == "谢谢" * 6


def test_stock_subtitle_phrase_is_dropped():
    heard = words("好的再见", 0.0) + [Word(5.0, 7.0, "字幕由Amara.org社区提供", 0.3)]
    kept, dropped = drop_hallucinations(heard)
    assert "".join(w.text for w in kept) == "好的再见"
    assert dropped[0].reason.startswith("Whisper stock")


def test_turns_split_on_reply_and_long_pause_but_keep_talk_over():
    roles = {"A": "agent", "C": "customer"}
    spoken = (
        [("A", w) for w in words("您好请讲", 0.0)]          # 0.0-0.8
        + [("C", w) for w in words("我要查话费", 1.2)]       # 1.2-2.2: a reply inside A's 1.5 s pause
        + [("A", w) for w in words("好的", 2.3)]             # 2.3-2.7
        + [("A", w) for w in words("请稍等", 6.0)]           # after a 3.3 s pause: new turn
        + [("C", w) for w in words("等一下我还没说完", 6.2)]  # talk-over, overlaps A
    )
    turns = build_turns(spoken, roles, max_gap=1.5)
    assert [(t.speaker, t.text) for t in turns] == [
        ("A", "您好请讲"), ("C", "我要查话费"), ("A", "好的"), ("A", "请稍等"), ("C", "等一下我还没说完"),
    ]
    assert turns[3].end > turns[4].start  # overlap kept, not cut
    assert all(t.role == roles[t.speaker] for t in turns)


def test_word_goes_to_speaker_with_largest_overlap_else_nearest():
    speech = [SpeechInterval("S0", 0.0, 2.0), SpeechInterval("S1", 1.8, 4.0)]
    assert speaker_for_span(1.7, 2.1, speech) == "S0"
    assert speaker_for_span(1.9, 2.5, speech) == "S1"
    assert speaker_for_span(4.3, 4.6, speech) == "S1"


def test_roles_by_cues_pick_the_agent_even_with_asr_homophones():
    cues = load_role_cues()
    texts = {
        "SPEAKER_00": "喂你好我想问一下我的话费怎么这么多",
        "SPEAKER_01": "您好星河通信功耗一零二四为您服务请问有什么可以帮您",
    }
    result = assign_by_cues(texts, first_speaker="SPEAKER_00", cues=cues)
    assert result.roles == {"SPEAKER_00": "customer", "SPEAKER_01": "agent"}
    assert result.confidence > 0.8
    assert "工号" in result.evidence["SPEAKER_01"]


def test_customer_cues_decide_a_call_whose_greeting_was_only_nin_hao():
    # the diarizer glued the agent's short 您好 onto the customer's first turn (call03's failure)
    cues = load_role_cues()
    texts = {"SPEAKER_00": "您好我想查一下我这个月话费对我上周去了一趟日本",
             "SPEAKER_01": "您的手机号码是多少您这个月除了月租五十八元好的再见"}
    result = assign_by_cues(texts, first_speaker="SPEAKER_00", cues=cues)
    assert result.roles["SPEAKER_01"] == "agent"
    assert "-我想" in result.evidence["SPEAKER_00"]


def test_roles_without_cues_fall_back_to_first_speaker_with_low_confidence():
    cues = load_role_cues()
    result = assign_by_cues({"X": "嗯好的", "Y": "是的是的"}, first_speaker="Y", cues=cues)
    assert result.roles["Y"] == "agent"
    assert result.confidence < cues.low_confidence


def test_channel_map():
    result = assign_by_channel(["CH0", "CH1"], "CH1")
    assert result.roles == {"CH0": "customer", "CH1": "agent"}
    assert result.method == "channel_map"


def test_sentence_initial_word_timed_into_silence_moves_to_its_speech():
    from qa_audio.speech.attribution import snap_orphan_words

    speech = [SpeechInterval("A", 38.4, 41.9), SpeechInterval("A", 46.1, 50.6)]
    heard = [Word(41.2, 41.42, "坏", 0.9), Word(41.42, 41.6, "的。", 0.9), Word(41.6, 42.2, "退", 0.6),
             Word(46.2, 46.4, "费", 0.8), Word(46.4, 46.6, "要", 0.9)]
    snapped = snap_orphan_words(heard, speech)
    assert [w.text for w in snapped] == ["坏", "的。", "退", "费", "要"]
    assert snapped[2].start == 46.1 and snapped[2].end <= 46.2
    assert snapped[:2] == heard[:2] and snapped[3:] == heard[3:]
    # a word that ends its own sentence stays, even if Whisper stretched its end into the pause
    last = [Word(41.2, 41.42, "坏", 0.9), Word(41.42, 42.3, "的。", 0.9), Word(46.2, 46.4, "费", 0.8)]
    assert snap_orphan_words(last, speech) == last


def test_word_straddling_its_speech_start_stays_before_the_next_word():
    """call12: Whisper timed 非常 at 15.76-15.98, the speech starts at 15.94 and 抱 at 15.98; the word
    must move to 15.94, not into the next interval after 抱歉... (which read 请非常您稍后)."""
    from qa_audio.speech.attribution import snap_orphan_words

    speech = [SpeechInterval("CH0", 15.94, 19.036), SpeechInterval("CH0", 19.3, 22.78)]
    heard = [Word(15.76, 15.98, "非常", 0.4), Word(15.98, 16.22, "抱", 0.9), Word(16.22, 16.42, "歉", 0.9),
             Word(18.78, 19.46, "请", 0.7), Word(19.46, 19.66, "您", 0.9)]
    snapped = snap_orphan_words(heard, speech)
    assert [w.text for w in sorted(snapped, key=lambda w: w.start)] == ["非常", "抱", "歉", "请", "您"]
    assert snapped[0].start == 15.94 and snapped[0].end <= 15.98


def test_a_snapped_word_stays_before_a_next_word_timed_before_the_speech():
    """call12: 我 of 我根本不知情 came back at 36.312-36.376 s, the speech starts at 36.388 s and
    Whisper timed 根 at 36.38 s; snapped to the speech's start, 我 read after 根 (根我本)."""
    from qa_audio.speech.attribution import snap_orphan_words

    speech = [SpeechInterval("CH1", 7.6, 15.3), SpeechInterval("CH1", 36.388, 39.3)]
    heard = [Word(15.08, 15.24, "了。", 0.9), Word(36.312, 36.376, "我", 0.6), Word(36.38, 36.6, "根", 0.99),
             Word(36.6, 36.78, "本", 0.99)]
    snapped = snap_orphan_words(heard, speech)
    assert [w.text for w in sorted(snapped, key=lambda w: (w.start, w.end))] == ["了。", "我", "根", "本"]
    assert snapped[1].start == 36.38


def test_punctuate_ends_sentences_at_pauses_and_segment_ends() -> None:
    from qa_audio.speech.asr import SENTENCE_PAUSE_S, _punctuate

    assert _punctuate("您好", " 星河", 0.1) == "您好，"  # a spaced phrase, no pause: comma
    assert _punctuate("您好", "星河", 0.1) == "您好"  # one phrase split into two tokens
    assert _punctuate("再见", None) == "再见。"  # the segment's last word
    assert _punctuate("查询一下", " 好的", SENTENCE_PAUSE_S + 0.1) == "查询一下。"  # a sentence pause
    assert _punctuate("对吗？", " 是的", 2.0) == "对吗？"  # Whisper's own punctuation is kept


def test_uncovered_finds_speech_that_no_word_covers() -> None:
    from qa_audio.speech.asr import _uncovered

    heard = words("您好请问", 1.0, 0.25)  # 1.0-2.0 s
    # a region fully covered, one with its last 1.5 s empty, one with nothing heard at all
    regions = [(0.9, 2.1), (3.0, 6.0), (8.0, 8.5), (10.0, 11.2)]
    heard += words("好的", 3.0, 0.75)  # 3.0-4.5 s
    assert _uncovered(regions, heard, 0.8) == [(4.5, 6.0), (10.0, 11.2)]  # 8.0-8.5 is too short
    assert _uncovered(regions, heard, 2.0) == []


def test_speech_without_words_is_still_a_turn_marked_unintelligible() -> None:
    from qa_audio.speech.attribution import wordless_turns

    roles = {"CH0": "agent", "CH1": "customer"}
    words = [("CH0", Word(0.5, 0.9, "请问", 0.9)), ("CH0", Word(0.9, 1.6, "还有什么可以帮您？", 0.9)),
             ("CH1", Word(2.0, 2.6, "没有了。", 0.8))]
    turns = build_turns(words, roles, 1.5)
    speech = [SpeechInterval("CH0", 0.45, 1.65), SpeechInterval("CH1", 1.95, 2.65),
              SpeechInterval("CH1", 3.40, 3.88),   # 再见: heard by the VAD, no word
              SpeechInterval("CH0", 3.95, 4.10),   # a click: too short to be a turn
              SpeechInterval("CH0", 1.0, 1.4)]     # inside the agent's own turn: already there
    added = wordless_turns(turns, speech, roles, 0.3)
    assert [(t.speaker, t.role, t.start, t.end, t.text, t.words, t.unintelligible) for t in added] == [
        ("CH1", "customer", 3.40, 3.88, "", [], True)]
    assert not any(t.unintelligible for t in turns)


def test_an_unintelligible_turn_survives_the_json() -> None:
    from qa_audio.schema import Turn, transcript_from_result

    turn = Turn("CH1", "customer", 3.4, 3.88, "", [], unintelligible=True)
    back = transcript_from_result({"turns": [turn.to_dict()], "speech": []}).turns[0]
    assert back == turn and turn.to_dict()["unintelligible"] is True
    legacy = {**turn.to_dict(), "unintelligible": None}  # a result from before schema 1.6
    assert transcript_from_result({"turns": [legacy]}).turns[0].unintelligible is False


def test_a_reply_word_timed_into_the_end_of_the_question_goes_to_the_replier() -> None:
    """h02: base timed the agent's 祝 (of 祝您生活愉快) 36.93-37.55, the customer's speech ends at 37.13."""
    from qa_audio.speech.attribution import snap_orphan_words

    speech = [SpeechInterval("SPEAKER_01", 33.95, 37.13), SpeechInterval("SPEAKER_00", 38.04, 40.16)]
    heard = [Word(36.47, 36.93, "看看", 0.98), Word(36.93, 37.55, "祝", 0.98), Word(38.24, 38.4, "您", 0.9),
             Word(38.4, 38.8, "生活", 0.9)]
    snapped = snap_orphan_words(heard, speech)
    assert [speaker_for_span(w.start, w.end, speech) for w in snapped] == [
        "SPEAKER_01", "SPEAKER_00", "SPEAKER_00", "SPEAKER_00"]
    assert (snapped[1].start, snapped[1].end) == (38.04, 38.24), "at the start of the reply, before its next word"
    # speech in between keeps the word by overlap (pd05: the agent's 好的 between two customer pieces)
    between = [*speech[:1], SpeechInterval("SPEAKER_00", 37.2, 37.5), SpeechInterval("SPEAKER_01", 38.04, 40.16)]
    assert snap_orphan_words(heard, between)[1] == heard[1]
    # the end of a sentence stretched into the pause before the same speaker goes on stays put
    same = [SpeechInterval("A", 33.95, 37.13), SpeechInterval("A", 38.04, 40.16)]
    assert snap_orphan_words(heard, same)[1] == heard[1]


# ------------------------------------------------------------------ the opening decoded again


def test_the_opening_is_the_agents_first_turn_to_the_end_of_its_speech():
    from qa_audio.schema import Transcript
    from qa_audio.speech.opening import opening_span

    speech = [SpeechInterval("A", 0.3, 5.2), SpeechInterval("B", 6.0, 8.0), SpeechInterval("A", 9.0, 12.0)]
    said = [("A", w) for w in words("您好星河通信请问有什么可以", 0.3)] + [("B", w) for w in words("我想问", 6.0)]
    turns = build_turns(said, {"A": "agent", "B": "customer"}, 1.5)
    transcript = Transcript(duration=12.0, turns=turns, speech=speech, roles={"A": "agent", "B": "customer"})
    # the words end at 2.9 s, the agent's speech at 5.2 s (what a chunk end dropped is decoded too)
    assert opening_span(transcript, (0.3, 6.0), 0.2) == (pytest.approx(0.1), pytest.approx(5.4))
    # never past the greeting's window
    assert opening_span(transcript, (0.3, 2.0), 0.2) == (pytest.approx(0.1), pytest.approx(2.2))
    assert opening_span(transcript, None, 0.2) is None
    customer_first = Transcript(duration=12.0, turns=[t for t in turns if t.role == "customer"], speech=speech,
                                roles=transcript.roles)
    assert opening_span(customer_first, (0.3, 6.0), 0.2) is None


def test_the_redecoded_words_replace_only_between_their_first_and_last():
    from qa_audio.speech.opening import splice

    first_pass = ([("A", w) for w in words("您好心和通信", 0.0)] + [("B", w) for w in words("喂", 0.6)]
                  + [("A", w) for w in words("请问", 3.0)])
    # told the words, the decoder started at 星 and dropped 您好: the first pass keeps them
    redecoded = words("星河通信", 0.4)
    spliced = splice(first_pass, redecoded, lambda s: s == "A", lambda w: "A")
    assert "".join(w.text for s, w in spliced if s == "A") == "您好星河通信请问"
    assert [w.text for s, w in spliced if s == "B"] == ["喂"], "another speaker's words are not replaced"
    assert [w.start for _, w in spliced] == sorted(w.start for _, w in spliced)
    assert splice(first_pass, [], lambda s: True, lambda w: "A") == first_pass


def test_a_third_voice_that_spoke_once_is_sized_by_its_speech_not_its_embedded_seconds():
    """h11: the second caller spoke 4.3 s in one turn, of which 2.5 s are embedded."""
    from types import SimpleNamespace

    import numpy as np

    from qa_audio.speech.diarize import DiarizationOptions, Diarizer

    rng = np.random.default_rng(0)
    axes = np.eye(3, 16)
    voices = [0] * 6 + [1] * 4 + [2]
    x = np.stack([axes[v] + 0.05 * rng.standard_normal(16) for v in voices])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    embedded = np.full(len(voices), 2.5)
    speech = embedded.copy()
    speech[-1] = 4.3
    diarizer = SimpleNamespace(options=DiarizationOptions())
    three = Diarizer._choose_clusters(diarizer, x, embedded, speech)
    assert len(set(three.tolist())) == 3 and len(set(three[:6].tolist())) == 1
    assert three[-1] not in set(three[:10].tolist())
    # a voice with less speech than third_speaker_min_duration joins its nearest party
    speech[-1] = 3.0
    assert len(set(Diarizer._choose_clusters(diarizer, x, embedded, speech).tolist())) == 2


def _one_voice_turns(rng, n: int = 6, spread_deg: float = 20.0):
    """n turn embeddings of one voice: half on either side of it, ``spread_deg`` degrees off."""
    import numpy as np

    voice, side = np.eye(2, 16)
    angle = np.deg2rad(spread_deg)
    x = np.stack([np.cos(angle) * voice + (1 if i % 2 else -1) * np.sin(angle) * side
                  + 0.01 * rng.standard_normal(16) for i in range(n)])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_one_voice_is_not_cut_in_two_when_no_turn_lies_apart_from_it():
    """h13: the agent alone among the shaping turns (callers spoke < 1 s) was split at 0.178, and its
    greeting became the customer; the split's sides pass the distance test, no turn is far from the
    voice."""
    from types import SimpleNamespace

    import numpy as np

    from qa_audio.speech.diarize import DiarizationOptions, Diarizer

    x = _one_voice_turns(np.random.default_rng(1))
    seconds = np.full(len(x), 2.5)
    one_voice = SimpleNamespace(options=DiarizationOptions())
    assert set(Diarizer._choose_clusters(one_voice, x, seconds, seconds).tolist()) == {0}
    # without the one-voice test the same turns are split (sides 40 degrees apart: distance 0.23)
    no_test = SimpleNamespace(options=DiarizationOptions(one_voice_max_distance=0.0))
    assert len(set(Diarizer._choose_clusters(no_test, x, seconds, seconds).tolist())) == 2
    # turns 45 degrees off the centroid of all (distance 0.29) are two voices
    wider = _one_voice_turns(np.random.default_rng(1), spread_deg=45.0)
    assert len(set(Diarizer._choose_clusters(one_voice, wider, seconds, seconds).tolist())) == 2
    # two voices of one turn each, 0.40 apart (h12's caller and relative): each lies only 0.11 from
    # the centroid of both, yet they are two
    pair = _one_voice_turns(np.random.default_rng(1), n=2, spread_deg=26.6)
    assert 1.0 - float(pair[0] @ pair[1]) > 0.35
    assert len(set(Diarizer._choose_clusters(one_voice, pair, seconds[:2], seconds[:2]).tolist())) == 2


def test_a_voice_heard_only_in_short_turns_is_a_speaker_of_its_own():
    """h13: a second caller's 0.9-s 砸自己的脚 lies 0.36 from the agent, the only voice that shapes the
    clusters; a short turn of the agent's own voice joins it."""
    import numpy as np

    from qa_audio.speech.diarize import DiarizationOptions, Diarizer, _Turn

    rng = np.random.default_rng(2)
    x = _one_voice_turns(rng, spread_deg=5.0)
    turns = [_Turn(i * 100, i * 100 + 80, embedding=e, weight=2.5, speech_s=3.0) for i, e in enumerate(x)]
    near, far = x[0], np.eye(3, 16)[2]
    turns.append(_Turn(700, 745, embedding=near, weight=0.9, speech_s=0.9))
    turns.append(_Turn(800, 845, embedding=far, weight=0.9, speech_s=0.9))
    diarizer = Diarizer.__new__(Diarizer)
    diarizer.options = DiarizationOptions()
    no_chunks = (np.zeros((0, 1, 3)), np.zeros(0, dtype=int))
    diarizer._cluster(turns, no_chunks)
    assert len({t.label for t in turns[:7]}) == 1
    assert turns[-1].label != turns[0].label
    # told there is one voice, it stays one
    diarizer.options = DiarizationOptions(max_speakers=1)
    for t in turns:
        t.label = -1
    diarizer._cluster(turns, no_chunks)
    assert {t.label for t in turns} == {0}
