"""Words to speakers, and speakers' words to turns (WhisperX's rule: the largest time overlap wins).

The ASR gives words with times; VAD (stereo) or the diarizer (mono) gives who speaks when. This
module joins them: each word goes to the speaker whose speech overlaps it most
(:func:`speaker_for_span`), words Whisper timed into the silence before an utterance are moved onto
it (:func:`snap_orphan_words`), and each speaker's words are grouped into turns (:func:`build_turns`).
"""

from __future__ import annotations

import bisect

from qa_audio.schema import SpeechInterval, Turn, Word

SENTENCE_END = ("。", "？", "！", "?", "!")
LEAK_SHARE = 0.5
"""a word this much past the end of its speech, into another speaker's next, belongs to that speaker"""


def build_turns(words: list[tuple[str, Word]], roles: dict, max_gap: float) -> list[Turn]:
    """Group each speaker's words into turns, sorted by start.

    A speaker's turn ends at a pause longer than ``max_gap``, or where another speaker says
    something that fits entirely inside the pause (a reply, not a talk-over). Turns of different
    speakers may overlap: that is talk-over, and the rules measure it.
    """
    by_speaker: dict[str, list[Word]] = {}
    for speaker, word in words:
        by_speaker.setdefault(speaker, []).append(word)
    turns: list[Turn] = []
    for speaker, own in by_speaker.items():
        own.sort(key=lambda w: w.start)
        others = sorted((w for s, w in words if s != speaker), key=lambda w: w.start)
        other_starts = [w.start for w in others]
        group: list[Word] = [own[0]]
        for word in own[1:]:
            gap_start, gap_end = group[-1].end, word.start
            # only the other speakers' words starting inside the gap can fit in it: bisect to them
            # instead of scanning every word for every gap (quadratic on a long call)
            first = bisect.bisect_left(other_starts, gap_start)
            last = bisect.bisect_right(other_starts, gap_end)
            replied = any(o.end <= gap_end for o in others[first:last])
            if gap_end - gap_start > max_gap or replied:
                turns.append(_turn(speaker, roles, group))
                group = []
            group.append(word)
        turns.append(_turn(speaker, roles, group))
    turns.sort(key=lambda t: (t.start, t.speaker))
    return turns


def wordless_turns(turns: list[Turn], speech: list[SpeechInterval], roles: dict, min_duration: float) -> list[Turn]:
    """Speech of at least ``min_duration`` s that no turn of its speaker overlaps, as turns without text.

    The ASR writes nothing for some short replies (再见 in 0.5 s, 没有了) and for unclear speech,
    even on a second look; the speech is still there, and the turn-taking, the greeting's end and
    who spoke last read turns. They come back marked ``unintelligible``.
    """
    out = []
    for interval in speech:
        if interval.end - interval.start < min_duration:
            continue
        if any(t.speaker == interval.speaker and t.start < interval.end and interval.start < t.end for t in turns):
            continue
        out.append(Turn(speaker=interval.speaker, role=roles.get(interval.speaker, "customer"),
                        start=interval.start, end=interval.end, text="", words=[], unintelligible=True))
    return out


def snap_orphan_words(words: list[Word], speech: list[SpeechInterval], min_inside: float = 0.3) -> list[Word]:
    """Move words that Whisper timed into silence onto the speech they belong to.

    faster-whisper joins the VAD's speech chunks before decoding; the first word after a pause is
    often timed at the join, i.e. in the silence right after the previous utterance ("退费" heard
    as "推" at the end of one turn and "废" at the start of the next). Such a word (less than
    ``min_inside`` of it inside any speech interval) whose next word lies in a later interval is
    moved to the start of that interval. So is a word that starts a sentence (the word before it
    ends with 。？！) and runs past the end of its interval while the next word is in a later one,
    and a word more than half of which lies past the end of its interval while the next word is in
    another speaker's later one: base times the first word of a reply early, into the end of the
    question (h02's 祝 of 祝您生活愉快 at the end of the customer's 看看, call07's 感谢). Measured on
    the 26 mono calls of sample_calls/, personal_data/ and hard/: that last rule moved 12 words to
    the other party, 9 to the party whose truth turn holds them, 1 wrongly, 2 undecided.
    """
    if not speech:
        return words
    intervals = sorted(speech, key=lambda s: s.start)
    out: list[Word] = []
    for index, word in enumerate(words):
        duration = max(word.end - word.start, 1e-3)
        inside = sum(max(0.0, min(word.end, s.end) - max(word.start, s.start)) for s in intervals)
        following = words[index + 1] if index + 1 < len(words) else None
        if following is None:
            out.append(word)
            continue
        sentence_start = index > 0 and words[index - 1].text[-1:] in SENTENCE_END
        runs_past = any(s.start <= word.start < s.end < word.end - 0.1 and following.start >= s.end
                        for s in intervals)
        home = next((s for s in intervals if s.start <= word.start < s.end), None)
        # ...but not over speech in between: that speech's speaker takes the word by overlap (pd05:
        # the agent's 好的 between the customer's two pieces of a number)
        leaks = (home is not None and (word.end - home.end) / duration > LEAK_SHARE and following.start >= home.end
                 and not any(home.end <= s.start and s.end <= following.start for s in intervals))
        orphan = inside / duration < min_inside or sentence_start and runs_past
        if not orphan and not leaks:
            out.append(word)
            continue
        # the interval the next word is in (or the first after it), as long as it starts after this
        # word does: a word that straddles its interval's start moves to that start, not past the
        # next word into a later interval
        target = next((s for s in intervals if s.end > following.start and s.start > word.start), None)
        if target is None or not orphan and target.speaker == home.speaker:
            out.append(word)  # a leak into the same speaker's next interval changes nothing
            continue
        # no later than the next word, even where that one was timed a little before the speech
        # (call12: 我 of 我根本 snapped past 根 and read 根我本)
        start = min(target.start, following.start)
        end = max(start + 0.01, min(following.start, start + duration))
        out.append(Word(start=round(start, 3), end=round(end, 3), text=word.text, probability=word.probability))
    return out


def _turn(speaker: str, roles: dict, words: list[Word]) -> Turn:
    return Turn(speaker=speaker, role=roles.get(speaker, "customer"), start=words[0].start,
                end=words[-1].end, text="".join(w.text for w in words), words=list(words))


def speaker_for(word: Word, speech: list[SpeechInterval]) -> str:
    return speaker_for_span(word.start, word.end, speech)


def speaker_for_span(start: float, end: float, speech: list[SpeechInterval]) -> str:
    """The speaker whose speech overlaps the span most; else the nearest one (WhisperX's rule)."""
    best, best_overlap = None, 0.0
    for interval in speech:
        overlap = min(end, interval.end) - max(start, interval.start)
        if overlap > best_overlap:
            best, best_overlap = interval.speaker, overlap
    if best is not None:
        return best
    middle = (start + end) / 2
    nearest = min(speech, key=lambda s: min(abs(middle - s.start), abs(middle - s.end)))
    return nearest.speaker
