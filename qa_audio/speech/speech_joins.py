"""Words that cross a join of faster-whisper's VAD, given back to the speech they were said in.

Before the first pass faster-whisper cuts the silence out: the speech segments its Silero VAD finds
are joined end to end (batched decoding packs them into chunks of up to 30 s) and Whisper hears
them as one stretch, with only the two segments' padding where a pause of any length was. Word
times come back on that joined timeline, and ``restore_speech_timestamps`` puts each word back in
the recording by the segment that holds the word's middle. A word that crosses a join is
ambiguous, and Whisper's timing tips the midpoint to the wrong side: it starts the first word after
a pause early, in the quiet before it (faster-whisper issue #125). On h04 the agent's 谁 of
谁跟你讲的，你找谁去 (said at 24.5 s) came back at 19.00-19.18 s, the tail of the sentence before,
5 s earlier: the 0-2 phrase lost its first syllable and was not found.

Measured over the first pass of the 27 calls of ``sample_calls/`` and ``hard/`` (int8, Zen 4):
98 words crossed a join. Put in the later segment, 77 lay more inside the reference speech than in
the earlier one, 7 less (by 0.01-0.27 s) and 14 alike; the midpoint had put 36 of them in the
earlier one. So here a word that crosses a join by more than one of Whisper's 20-ms frames goes to
the segment that holds its end, and starts no earlier than that segment does. Joins between two
decoded chunks are left alone: each chunk is decoded on its own, so no word spans them.
"""

from __future__ import annotations

from dataclasses import dataclass

# the step of Whisper's word times (asr.py's too): a word ending within a frame of a join has not crossed it
FRAME_S = 0.02
ROUNDING_S = 0.01  # faster-whisper rounds restored times to 10 ms


@dataclass(frozen=True)
class JoinedSpeech:
    """faster-whisper's joined timeline: for each VAD segment, in order, where it ends on the
    timeline (seconds), how much silence was cut before it (seconds), and which decoded chunk holds it."""

    ends: tuple[float, ...]
    silence_before: tuple[float, ...]
    chunk: tuple[int, ...]


def joined_speech(segments: list[dict], sampling_rate: int, max_chunk_s: float = float("inf")) -> JoinedSpeech:
    """The timeline faster-whisper builds from VAD ``segments`` (its ``{"start", "end"}`` in samples),
    joined as its ``collect_chunks`` joins them: ``max_chunk_s`` 30 for batched decoding."""
    from faster_whisper.vad import SpeechTimestampsMap  # heavy: only when a first pass runs

    # the very map faster-whisper restores the words' times with, so the two timelines cannot differ
    timeline = SpeechTimestampsMap(segments, sampling_rate)
    chunk: list[int] = []
    chunk_index = chunk_samples = 0
    for segment in segments:
        length = segment["end"] - segment["start"]
        if chunk_samples + length > max_chunk_s * sampling_rate:
            chunk_index += 1
            chunk_samples = 0
        chunk_samples += length
        chunk.append(chunk_index)
    return JoinedSpeech(tuple(end / sampling_rate for end in timeline.chunk_end_sample),
                        tuple(timeline.total_silence_before), tuple(chunk))


def across_join(start: float, end: float, joined: JoinedSpeech) -> tuple[float, float] | None:
    """New times for a word that faster-whisper restored to ``start``-``end`` (seconds in the
    recording) but that crosses a join into later speech; None where it crosses none."""
    if len(joined.ends) < 2:
        return None
    index = _restored_by(start, end, joined)
    if index is None:
        return None
    offset = joined.silence_before[index]
    timeline_start, timeline_end = start - offset, end - offset
    later = index
    while (later + 1 < len(joined.ends) and joined.chunk[later + 1] == joined.chunk[index]
           and timeline_end > joined.ends[later] + FRAME_S):
        later += 1
    if later == index or joined.silence_before[later] == offset:
        return None  # no join crossed, or one where no silence was cut (the times stay the same)
    offset = joined.silence_before[later]
    segment_start = joined.ends[later - 1] + offset
    return round(max(timeline_start + offset, segment_start), 3), round(timeline_end + offset, 3)


def _restored_by(start: float, end: float, joined: JoinedSpeech) -> int | None:
    """The segment whose offset faster-whisper gave the word: the one whose part of the timeline
    holds the word's middle (``SpeechTimestampsMap.get_chunk_index``), up to its rounding."""
    middle = (start + end) / 2
    for index, offset in enumerate(joined.silence_before):
        on_timeline = middle - offset
        segment_start = joined.ends[index - 1] if index else 0.0
        if segment_start - ROUNDING_S <= on_timeline < joined.ends[index] + ROUNDING_S:
            return index
    return None

