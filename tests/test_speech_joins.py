"""Words that cross a join of faster-whisper's VAD (speech/speech_joins.py): units on the timeline
faster-whisper builds, with the times h04's first pass gave, then the first pass on h04 itself."""

from __future__ import annotations

import pytest

from qa_audio.speech.speech_joins import across_join, joined_speech

RATE = 16000


def seconds(*spans: tuple[float, float]) -> list[dict]:
    return [{"start": round(a * RATE), "end": round(b * RATE)} for a, b in spans]


# The first pass's VAD segments of h04's agent channel (speech_pad_ms 200): 我不知道进度 ends at
# 18.83 s, 谁跟你讲的 starts at 24.47 s.
H04 = seconds((0.44, 8.392), (15.416, 19.112), (24.504, 26.984))


def test_the_timeline_is_the_speech_with_the_silence_cut_out():
    joined = joined_speech(seconds((1.0, 3.0), (5.0, 6.0), (10.0, 12.0)), RATE)
    assert joined.ends == (2.0, 3.0, 5.0)
    assert joined.silence_before == (1.0, 3.0, 7.0)
    assert joined.chunk == (0, 0, 0)


def test_batched_decoding_starts_a_new_chunk_where_30_s_would_be_passed():
    joined = joined_speech(seconds((0.0, 20.0), (21.0, 31.0), (32.0, 40.0)), RATE, max_chunk_s=30)
    assert joined.chunk == (0, 0, 1)  # 20 + 10 s fill one chunk, the next 8 s start another


def test_a_word_across_a_join_goes_to_the_speech_after_it():
    """The midpoint put h04's 谁 (heard as 会) at 19.00-19.18, 5 s before it was said."""
    joined = joined_speech(H04, RATE)
    start, end = across_join(19.00, 19.18, joined)
    assert (start, end) == (24.504, 24.572)  # starts no earlier than the speech after the join


def test_words_inside_one_segment_keep_their_times():
    joined = joined_speech(H04, RATE)
    assert across_join(17.64, 18.00, joined) is None  # 我不知道
    assert across_join(24.58, 24.88, joined) is None  # 跟你, after the join
    assert across_join(18.90, 19.11, joined) is None  # ends on the join: has not crossed it
    assert across_join(18.95, 19.13, joined) is None  # within one 20-ms frame of it


def test_a_word_ending_in_the_next_chunk_is_left_alone():
    """Each batched chunk is decoded on its own: no word spans two of them."""
    joined = joined_speech(seconds((0.0, 20.0), (25.0, 36.0)), RATE, max_chunk_s=30)
    assert joined.chunk == (0, 1)
    assert across_join(19.7, 20.2, joined) is None
    assert across_join(19.7, 20.2, joined_speech(seconds((0.0, 20.0), (25.0, 36.0)), RATE)) == (25.0, 25.2)


def test_a_join_where_no_silence_was_cut_changes_nothing():
    joined = joined_speech(seconds((0.0, 2.0), (2.0, 4.0)), RATE)
    assert across_join(1.9, 2.2, joined) is None


@pytest.mark.slow
def test_h04s_first_pass_puts_no_word_in_the_agents_long_pause(analyzer):
    """h04's agent is silent from 18.83 s to 24.47 s; the customer speaks on the other channel."""
    from bench.metrics import load_truths
    from qa_audio.audio import load_audio
    from tests.helpers import SAMPLE_CALLS

    truth = next(t for t in load_truths(SAMPLE_CALLS / "hard") if t["name"] == "h04_low_male_blend_stereo")
    agent = load_audio(truth["audio_path"]).channels[truth["agent_channel"]]
    words = analyzer.transcriber.decode(agent)
    assert words, "the agent channel has speech"
    in_pause = [w for w in words if w.start > 18.83 + 0.1 and w.end < 24.47 - 0.1]
    assert in_pause == [], in_pause
    assert any(24.5 <= w.start < 25.0 for w in words), "the turn after the pause starts with its own words"
