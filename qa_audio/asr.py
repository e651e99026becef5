"""Mandarin speech recognition with faster-whisper: words with times, in simplified Chinese.

The default model is Whisper base (int8 on CPU) from the packaged weights (see ``models.py``).
``AsrOptions.model`` also takes any faster-whisper model name or a local CTranslate2 folder, for
users with bigger models; only those may touch the model hub, and only if the user names them.

What base does on telephone Mandarin, and what this module does about it:
- it mixes traditional and simplified characters: every word goes through OpenCC ``t2s``;
- its segments span long pauses (speech, 7 s of dead air, more speech in one segment), so only
  word times are kept and passed on, never segment edges;
- it hallucinates runs of one repeated character or phrase, mostly at the end of a file
  ("祈祈祈祈…"): such runs are dropped and reported in ``AsrResult.dropped``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from qa_audio import models
from qa_audio.transcript import Word

logger = logging.getLogger(__name__)

# Whisper's own stock phrases from its subtitle training data, never said on a service line.
PHANTOM_PHRASES = ("字幕由", "请不吝点赞", "订阅转发", "打赏支持", "明镜与点点栏目", "中文字幕")
# A unit of 1-4 characters said this many times in a row is a decoding loop, not speech:
# real backchannels ("对对对对") stop at four.
REPEAT_RUN_MIN = 5
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
        from faster_whisper import WhisperModel  # heavy import, only when a model is needed

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
        import opencc

        self._to_simplified = opencc.OpenCC("t2s").convert

    def settings(self) -> dict:
        import faster_whisper

        return {**asdict(self.options), "model_version": self.model_version,
                "faster_whisper": faster_whisper.__version__}

    def transcribe(
        self, samples: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> AsrResult:
        """Words with times (seconds from the start of ``samples``, 16 kHz mono float32)."""
        opts = self.options
        segments, info = self._model.transcribe(
            samples,
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
        words: list[Word] = []
        for segment in segments:
            if progress and info.duration:
                progress(min(1.0, segment.end / info.duration))
            heard = [(w.word, self._to_simplified(w.word.strip()).translate(FULL_WIDTH), w)
                     for w in segment.words or []]
            heard = [h for h in heard if h[1]]
            for index, (_, text, w) in enumerate(heard):
                following = heard[index + 1][0] if index + 1 < len(heard) else None
                words.append(Word(start=round(w.start, 3), end=round(w.end, 3), text=_punctuate(text, following),
                                  probability=round(w.probability, 4)))
        kept, dropped = drop_hallucinations(words)
        if dropped:
            logger.info("dropped %d hallucinated span(s): %s", len(dropped), [d.text for d in dropped])
        return AsrResult(words=kept, dropped=dropped)


def _punctuate(text: str, following_raw: str | None) -> str:
    """Whisper separates Chinese phrases with a space and ends a segment at a pause, without
    punctuation when unprompted: a comma before a spaced phrase, a full stop at a segment's end."""
    if _is_punctuation(text[-1]):
        return text
    if following_raw is None:
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
