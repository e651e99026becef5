"""Mandarin speech recognition with faster-whisper: words with times, in simplified Chinese.

The default model is Whisper base (int8 on CPU) from the packaged weights (see ``models.py``).
``AsrOptions.model`` also takes any faster-whisper model name or a local CTranslate2 folder, for
users with bigger models; only those may touch the model hub, and only if the user names them.

What base does on telephone Mandarin, and what this module does about it:
- it mixes traditional and simplified characters: every word goes through OpenCC ``t2s``;
- its segments span long pauses (speech, 7 s of dead air, more speech in one segment), so only
  word times are kept and passed on, never segment edges;
- decoding one 30-s window after another leaves half of two cores idle: by default the speech
  (Silero VAD) is packed into chunks of up to 30 s that are decoded in batches
  (``BatchedInferencePipeline``), measured 2.3x faster on a dense 3-minute call at the same CER;
- a batched chunk is decoded in one go, and base sometimes ends it early: call01's closing customer
  turn ("那当然是有更好的帮助", the last 2 s of the chunk) was simply missing.  So speech that no
  word covers (``GAP_MIN_S`` or longer) is decoded again, each stretch on its own, and so is every
  short utterance that no word touches (``SHORT_REPLY_MIN_S``: a 再见 of 0.5 s).
- it hallucinates runs of one repeated character or phrase, mostly at the end of a file
  ("祈祈祈祈…"): such runs are dropped and reported in ``AsrResult.dropped``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from qa_audio import models
from qa_audio.schema import ProgressHook, Word, no_progress
from qa_audio.speech.speech_joins import FRAME_S, JoinedSpeech, across_join, joined_speech

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what faster-whisper decodes
CHUNK_S = 30  # the window Whisper decodes: batched decoding joins speech into chunks this long

# Whisper's own stock phrases from its subtitle training data, never said on a service line.
PHANTOM_PHRASES = ("字幕由", "请不吝点赞", "订阅转发", "打赏支持", "明镜与点点栏目", "中文字幕")
# A unit of 1-4 characters said this many times in a row is a decoding loop, not speech:
# real backchannels ("对对对对") stop at four.
REPEAT_RUN_MIN = 5
# A word longer than this per character is a decoding collapse, not speech: on h01 (a fast Kokoro
# greeting) base timed 帮 over 3.4 s and 您 over 8.7 s, covering a customer's whole reply and the
# agent's next sentence, which it never wrote. Such words cover nothing: the second pass decodes
# their stretch, and they give way to what it hears there.
STRETCHED_S_PER_CHAR = 1.2
# Speech (Silero VAD, the ASR's settings) this long with no word in it is decoded a second time...
GAP_MIN_S = 0.8
# ...and so is a whole stretch of speech this long that no word touches at all: a short reply (再见 in
# 0.5 s, 没有了 in 0.65 s). Measured on the sample calls: decoding every 0.3-s gap instead, also those
# between the words of a sentence, heard nothing there but junk (子, 灯, then) and raised the CER of
# four calls by up to 0.08.
SHORT_REPLY_MIN_S = 0.3
# ...and what the second pass hears there is kept only if Whisper is this sure it is speech.
GAP_MAX_NO_SPEECH_PROB = 0.6
# A pause this long between two words ends a sentence (a breath between phrases is shorter).
SENTENCE_PAUSE_S = 0.7
# Whisper writes ASCII punctuation inside Chinese; people read full-width.
FULL_WIDTH = str.maketrans({",": "，", "?": "？", "!": "！", ":": "：", ";": "；"})


@dataclass(frozen=True)
class AsrOptions:
    """Settings of the ASR stage; echoed into every output so a result says what made it."""

    model: str = models.DEFAULT_ASR_MODEL
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    """0: faster-whisper's default (all cores)"""
    language: str = "zh"
    beam_size: int = 5
    # No prompt by default: measured on sample_calls/, any Chinese prompt makes base emit one
    # 30-s segment without timestamp tokens, and the word alignment then collapses (a customer turn
    # lost inside a 10-s "word"). Without one it writes traditional characters and spaces instead
    # of punctuation, which OpenCC and `_punctuate` repair.
    initial_prompt: str | None = None
    hotwords: str | None = None
    condition_on_previous_text: bool = False
    """off: on phone audio, conditioning on a misheard sentence spreads the error and causes loops"""
    vad_min_silence_ms: int = 500
    vad_speech_pad_ms: int = 200
    batch_size: int = 8
    """speech chunks decoded together (faster-whisper's batched pipeline); 0: one window after another"""


@dataclass
class DroppedText:
    start: float
    end: float
    text: str
    reason: str


@dataclass
class AsrResult:
    words: list[Word]
    dropped: list[DroppedText] = field(default_factory=list)


class Transcriber:
    """A loaded Whisper model (loaded once: a batch reuses it for every call)."""

    def __init__(self, options: AsrOptions | None = None):
        from faster_whisper import BatchedInferencePipeline, WhisperModel  # heavy: only when a model is needed

        self.options = options or AsrOptions()
        opts = self.options
        if opts.model == models.DEFAULT_ASR_MODEL:
            self.model_version = models.whisper_base_version()
            self._model = WhisperModel(
                "base", device=opts.device, compute_type=opts.compute_type, cpu_threads=opts.cpu_threads,
                files=models.whisper_base_files(),
            )
        else:
            self.model_version = opts.model
            self._model = WhisperModel(
                opts.model, device=opts.device, compute_type=opts.compute_type, cpu_threads=opts.cpu_threads,
            )
        # batched decoding (batch_size > 0) and the second pass over uncovered speech use it
        self._batched = BatchedInferencePipeline(self._model)
        import opencc

        self._to_simplified = opencc.OpenCC("t2s").convert

    def settings(self) -> dict:
        import faster_whisper

        return {**asdict(self.options), "model_version": self.model_version,
                "faster_whisper": faster_whisper.__version__}

    def transcribe(
        self,
        samples: np.ndarray,
        progress: ProgressHook = no_progress,
        speech: list[tuple[float, float]] | None = None,
    ) -> AsrResult:
        """Words with times (seconds from the start of ``samples``, 16 kHz mono float32).

        ``speech``: where someone speaks (seconds), when the caller knows already; it only decides
        which stretches the second pass looks at (default: Silero VAD with the ASR's settings).
        """
        return self.finish(self.fill_gaps(samples, self.decode(samples, progress), speech))

    def decode(self, samples: np.ndarray, progress: ProgressHook = no_progress) -> list[Word]:
        """The first pass: faster-whisper over the whole signal, with its own VAD; a word that
        crosses one of that VAD's joins is given to the speech after it (``speech_joins.py``)."""
        segments, info = self.faster_whisper(samples)
        return self._words(self._words_after_joins(segments, self.joined_speech(samples)), info, progress)

    def joined_speech(self, samples: np.ndarray) -> JoinedSpeech:
        """How the first pass joins ``samples``' speech: faster-whisper's VAD run again with the same
        settings (~2 ms per second of audio), since its ``transcribe`` does not return the segments."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        batched = self.options.batch_size > 0
        # what BatchedInferencePipeline and WhisperModel.transcribe each build from vad_parameters
        vad = VadOptions(**self.decode_settings()["vad_parameters"],
                         **({"max_speech_duration_s": CHUNK_S} if batched else {}))
        return joined_speech(get_speech_timestamps(samples, vad), SAMPLE_RATE, CHUNK_S if batched else float("inf"))

    @staticmethod
    def _words_after_joins(segments, joined: JoinedSpeech):
        moved = 0
        for segment in segments:
            for word in segment.words or []:
                times = across_join(word.start, word.end, joined)
                if times:
                    logger.debug("%r at %.2f-%.2f s crosses a VAD join: %.2f-%.2f s", word.word,
                                 word.start, word.end, *times)
                    word.start, word.end = times
                    moved += 1
            yield segment
        if moved:
            logger.info("gave %d word(s) that cross a join of the VAD's speech to the speech after it", moved)

    def faster_whisper(self, audio: np.ndarray | str, batched: bool | None = None) -> tuple:
        """faster-whisper's own ``(segments, info)`` for ``audio`` (samples or a file) with these decoding
        settings and nothing of qa-audio's after it: the first pass, and the baseline ``bench/`` times.

        ``batched`` None follows the options (``batch_size`` 0 is faster-whisper's sequential decoding).
        """
        if batched is None:
            batched = self.options.batch_size > 0
        if batched:
            return self._batched.transcribe(audio, batch_size=max(1, self.options.batch_size), **self.decode_settings())
        return self._model.transcribe(audio, **self.decode_settings())

    def fill_gaps(self, samples: np.ndarray, words: list[Word],
                  speech: list[tuple[float, float]] | None = None) -> list[Word]:
        """Decode again, each on its own, the stretches of ``speech`` that ``words`` leave empty
        (batched decoding can end a chunk early); keep what Whisper hears there as speech."""
        opts = self.options
        if speech is None:
            from faster_whisper.vad import VadOptions, get_speech_timestamps

            vad = VadOptions(min_silence_duration_ms=opts.vad_min_silence_ms, speech_pad_ms=opts.vad_speech_pad_ms)
            speech = [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in get_speech_timestamps(samples, vad)]
        end_of_audio = samples.size / SAMPLE_RATE
        pad = opts.vad_speech_pad_ms / 1000
        stretched = [w for w in words if w.end - w.start > STRETCHED_S_PER_CHAR * max(1, _spoken_chars(w.text))]
        covering = [w for w in words if w not in stretched]
        long_gaps = _uncovered(speech, covering, GAP_MIN_S)
        # a short reply inside a long gap's reach is decoded with it, not again on its own: the same
        # audio decoded twice gives its words twice, interleaved (h05: 尊敬大家 inside 最真实的东西)
        short = [(a, b) for a, b in _untouched(speech, covering, SHORT_REPLY_MIN_S)
                 if not any(a < d + 2 * pad and c - 2 * pad < b for c, d in long_gaps)]
        stretches = sorted(set(long_gaps) | set(short))
        gaps = [(max(0.0, start - pad), min(end + pad, start + CHUNK_S, end_of_audio)) for start, end in stretches]
        if not gaps:
            return words
        segments, info = self._batched.transcribe(
            samples, batch_size=max(1, opts.batch_size),
            clip_timestamps=[{"start": start, "end": end} for start, end in gaps],
            **{**self.decode_settings(), "vad_filter": False})
        found = [w for w in self._words(segments, info, None, GAP_MAX_NO_SPEECH_PROB)
                 if any(start <= w.start and w.end <= end for start, end in gaps)
                 and not any(w.start < o.end and o.start < w.end for o in covering)]
        kept = [w for w in stretched if not any(w.start < f.end and f.start < w.end for f in found)]
        logger.info("decoded %d uncovered stretch(es) of speech again: %s -> %r (replacing %d stretched word(s))",
                    len(gaps), [(round(a, 2), round(b, 2)) for a, b in gaps], "".join(w.text for w in found),
                    len(stretched) - len(kept))
        return sorted(covering + kept + found, key=lambda w: (w.start, w.end))

    def decode_stretch(self, samples: np.ndarray, start: float, end: float, hotwords: str | None) -> list[Word]:
        """The words of ``start``-``end`` (seconds) decoded on their own, the decoder biased toward
        ``hotwords``; decoding loops and stock phrases dropped (the stretch is the caller's choice,
        so there is nothing to report them against)."""
        segments, info = self._batched.transcribe(
            samples, batch_size=1, clip_timestamps=[{"start": start, "end": end}],
            **{**self.decode_settings(), "vad_filter": False, "hotwords": hotwords})
        # word times fall on 20-ms frames: a word at the very start may begin just before ``start``
        words = [w for w in self._words(segments, info, None, GAP_MAX_NO_SPEECH_PROB)
                 if start - FRAME_S <= w.start and w.end <= end + FRAME_S]
        return drop_hallucinations(words)[0]

    def finish(self, words: list[Word]) -> AsrResult:
        """Drop decoding loops and stock phrases, and say what was dropped."""
        kept, dropped = drop_hallucinations(words)
        if dropped:
            # times and reasons only: the text may hold a customer's number, masked only later
            logger.info("dropped %d hallucinated span(s): %s", len(dropped),
                        [f"{d.start:.2f}-{d.end:.2f} s: {d.reason}" for d in dropped])
        return AsrResult(words=kept, dropped=dropped)

    def decode_settings(self) -> dict:
        """faster-whisper ``transcribe`` keywords for these options (``bench/`` decodes with them too)."""
        opts = self.options
        return dict(
            language=opts.language,
            beam_size=opts.beam_size,
            word_timestamps=True,
            vad_filter=True,
            vad_parameters={"min_silence_duration_ms": opts.vad_min_silence_ms,
                            "speech_pad_ms": opts.vad_speech_pad_ms},
            initial_prompt=opts.initial_prompt,
            hotwords=opts.hotwords,
            condition_on_previous_text=opts.condition_on_previous_text,
        )

    def _words(self, segments, info, progress: ProgressHook | None,
               max_no_speech_prob: float = 1.0) -> list[Word]:
        words: list[Word] = []
        for segment in segments:
            if progress and info.duration:
                progress("asr", completed=min(segment.end, info.duration), total=info.duration)
            if segment.no_speech_prob > max_no_speech_prob:
                continue
            heard = [(w.word, self._to_simplified(w.word.strip()).translate(FULL_WIDTH), w)
                     for w in segment.words or []]
            heard = [h for h in heard if h[1]]
            for index, (_, text, w) in enumerate(heard):
                following = heard[index + 1] if index + 1 < len(heard) else None
                text = _punctuate(text, following[0] if following else None,
                                  following[2].start - w.end if following else 0.0)
                words.append(Word(start=round(w.start, 3), end=round(w.end, 3), text=text,
                                  probability=round(w.probability, 4)))
        return words


def _uncovered(regions: list[tuple[float, float]], words: list[Word], min_length: float) -> list[tuple[float, float]]:
    """Stretches of at least ``min_length`` seconds inside ``regions`` that no word overlaps."""
    spans = sorted((w.start, w.end) for w in words)
    out = []
    for start, end in regions:
        cursor = start
        for w_start, w_end in spans:
            if w_end <= cursor or w_start >= end:
                continue
            if w_start - cursor >= min_length:
                out.append((cursor, w_start))
            cursor = max(cursor, w_end)
        if end - cursor >= min_length:
            out.append((cursor, end))
    return out


def _spoken_chars(text: str) -> int:
    return sum(1 for ch in text if not _is_punctuation(ch))


def _untouched(regions: list[tuple[float, float]], words: list[Word], min_length: float) -> list[tuple[float, float]]:
    """Regions of at least ``min_length`` seconds that no word overlaps at all."""
    return [(start, end) for start, end in regions
            if end - start >= min_length and not any(w.start < end and start < w.end for w in words)]


def _punctuate(text: str, following_raw: str | None, pause: float = 0.0) -> str:
    """Whisper separates Chinese phrases with a space and, unprompted, writes no punctuation: a
    full stop at a segment's end or before a sentence pause (batched segments hold a whole chunk of
    up to 30 s, so their ends alone would leave run-on sentences), a comma before a spaced phrase."""
    if _is_punctuation(text[-1]):
        return text
    if following_raw is None or pause >= SENTENCE_PAUSE_S:
        return text + "。"
    return text + "，" if following_raw.startswith(" ") else text


def drop_hallucinations(words: list[Word]) -> tuple[list[Word], list[DroppedText]]:
    """Remove decoding loops and Whisper's stock subtitle phrases; say what was removed."""
    dropped: list[DroppedText] = []
    keep = [True] * len(words)
    chars: list[str] = []
    owner: list[int] = []  # character index -> word index
    for i, w in enumerate(words):
        for ch in w.text:
            if not _is_punctuation(ch):
                chars.append(ch)
                owner.append(i)
    text = "".join(chars)
    pos = 0
    while pos < len(text):
        run = _repeat_run_at(text, pos)
        if run:
            unit, count = run
            first, last = owner[pos], owner[pos + len(unit) * count - 1]
            for i in range(first, last + 1):
                keep[i] = False
            dropped.append(DroppedText(words[first].start, words[last].end, unit * count,
                                       f"repeated {unit!r} x{count} (decoding loop)"))
            pos += len(unit) * count
        else:
            pos += 1
    for i, w in enumerate(words):
        if keep[i] and any(p in w.text for p in PHANTOM_PHRASES):
            keep[i] = False
            dropped.append(DroppedText(w.start, w.end, w.text, "Whisper stock subtitle phrase"))
    kept = [w for i, w in enumerate(words) if keep[i]]
    dropped.sort(key=lambda d: d.start)
    return kept, dropped


def _repeat_run_at(text: str, pos: int) -> tuple[str, int] | None:
    for size in range(1, 5):
        unit = text[pos:pos + size]
        if len(unit) < size:
            break
        count = 1
        while text[pos + count * size:pos + (count + 1) * size] == unit:
            count += 1
        if count >= REPEAT_RUN_MIN:
            return unit, count
    return None


def _is_punctuation(ch: str) -> bool:
    return not (ch.isalnum() or "\u4e00" <= ch <= "\u9fff")
