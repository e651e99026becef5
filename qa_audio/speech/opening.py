"""The agent's greeting decoded a second time, the decoder told the deployment's words first.

Whisper base has never heard 星河通信 or 工号, and the greeting is where rubric 1b-1e are decided.
Told the words beforehand (faster-whisper's ``hotwords``), it writes them right far more often:
on the first agent turn of the 27 sample and hard calls, decoded on its own, the greetings' CER
summed 5.0 without and 2.8 with "星河通信 工号 ..." (h11's 薰和空序 became 星河通信, h01's lost
帮您 came back). Over a whole call the same bias costs more than it gives (``bench/hotwords.py``:
greetings dropped, words invented, CER up by 0.1-0.2 on four calls), so only the opening is
decoded again, the stretch the greeting check reads (:func:`qa_audio.checks.script.greeting_window`).

Told the words, base sometimes starts decoding at the first of them and drops what comes before:
"您好，星河通信" became "星河通信" on 5 of the 27. So the new words replace the first pass's only
between the first and the last new word; what the first pass heard outside that stays
(:func:`splice`). And the second decoding is kept only where the greeting check hears more of
the greeting in it than in the first: elsewhere the first pass, which no word list biased, stands
(h08: the second decoding heard no more of the greeting and raised the agent's CER by 0.03).
Measured over the 27 calls (``bench/prescores.py``): greeting level right on 26 instead of 22, no
listed word invented, the greeting decoded again on the 12 calls whose first pass heard part of it
but not all (1.0-2.9 s each on two cores: one 30-s window of Whisper), never on the others. Not
where the first pass heard none of it: a first turn with no 您好, company, 工号 or offer of help is
no greeting misheard (h05, a dialogue that has none, spent 1.0 s there for nothing). Decoding the
stretch with beam 1 instead of 5 saved only 0.1-0.7 s of it (the 30-s window's encoder is most of
the cost) and dropped h08's 您好 and garbled h01's 工号 digits, so the stretch keeps the ASR's beam.
Nor is the window shortened, though CTranslate2 encodes fewer than 3000 frames (10 s in 0.17 s,
30 s in 0.99 s, saving about 1 s a call): base then hears otherwise, h10's 星河通信 became 金和同线
with a 10-s window and 金河通信 with 20 s, and h07's and h11's first 您好 became 你好, timed 0.25 s
late. Nor can the first pass's encoder output serve: the batched pass encodes chunks of VAD-packed
speech, not the stretch, and decoding a whole chunk of up to 30 s again would spend more on
generating (h13's 17-s stretch: 1.7 s) than the encoding it spares (0.9-1.1 s).
"""

from __future__ import annotations

from collections.abc import Callable

from qa_audio.schema import Transcript, Word


def opening_span(transcript: Transcript, window: tuple[float, float] | None, pad: float) -> tuple[float, float] | None:
    """The agent's first turn inside the greeting ``window``, to the end of the agent's speech
    that holds it (a chunk end can drop the greeting's last words, h01's 帮您), ``pad`` either side."""
    if window is None:
        return None
    start, end = window
    first = next((t for t in sorted(transcript.turns, key=lambda t: t.start)
                  if t.role == "agent" and not t.unintelligible and start <= t.start < end), None)
    if first is None:
        return None
    last = max([first.end] + [s.end for s in transcript.speech
                              if transcript.roles.get(s.speaker) == "agent" and s.start < first.end
                              and first.start < s.end])
    return max(0.0, first.start - pad), min(last, end, transcript.duration) + pad


def splice(words: list[tuple[str, Word]], redecoded: list[Word], replaced: Callable[[str], bool],
           speaker_of: Callable[[Word], str]) -> list[tuple[str, Word]]:
    """``words`` (speaker, word) with those of speakers that ``replaced`` names that lie between
    the first and the last ``redecoded`` word given way to the redecoded ones, each given to
    ``speaker_of`` it; unchanged when nothing was redecoded."""
    if not redecoded:
        return words
    low, high = redecoded[0].start, redecoded[-1].end
    kept = [(s, w) for s, w in words if not (replaced(s) and w.start < high and low < w.end)]
    return sorted(kept + [(speaker_of(w), w) for w in redecoded], key=lambda sw: (sw[1].start, sw[1].end))
