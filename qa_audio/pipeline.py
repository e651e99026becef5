"""One call from file to speaker-attributed transcript: audio → speech/diarize → asr → transcript → roles.

Stages talk through the dataclasses of ``transcript.py``; this module only wires them. The models
are loaded once per :class:`Analyzer`, so a batch analyses many calls with one load.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qa_audio import privacy
from qa_audio.acoustic import Acoustics, acoustic_findings, analyze_acoustics, load_acoustic_bands
from qa_audio.asr import AsrOptions, DroppedText, Transcriber
from qa_audio.audio import MODEL_SAMPLE_RATE, Audio, AudioError, load_audio
from qa_audio.checks import run_checks
from qa_audio.roles import RoleAssignment, assign_by_channel, assign_by_cues, load_role_cues
from qa_audio.rubric import RubricSheet, load_rubric
from qa_audio.rulebook import load_rulebook
from qa_audio.transcript import SpeechInterval, Transcript, Turn, Word

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
"""progress(stage, fraction done of that stage)"""

SENTENCE_END = ("。", "？", "！", "?", "!")
# Channels this alike are one signal written twice (a mono call saved as stereo): diarize it.
DUPLICATE_CHANNEL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class SpeechOptions:
    """Silero VAD settings for the stereo speech intervals (the diarizer gives mono ones).

    Tighter than the ASR's own VAD: these intervals are what dead air and talk-over are measured
    on, so their edges must be speech edges.
    """

    threshold: float = 0.5
    min_silence_ms: int = 300
    speech_pad_ms: int = 60
    min_speech_ms: int = 150


@dataclass(frozen=True)
class AnalyzeOptions:
    asr: AsrOptions = field(default_factory=AsrOptions)
    speech: SpeechOptions = field(default_factory=SpeechOptions)
    num_speakers: int | None = None
    """mono only: the number of voices, when known (the default lets the diarizer decide, 1-3)"""
    agent_channel: int = 0
    """stereo only: the channel that holds the agent"""
    rules_dir: Path | None = None
    threads: int = 0
    """CPU threads for the diarizer (0: half the cores, as it runs beside ASR); a batch gives each
    worker cores / workers"""
    max_turn_gap: float = 1.5
    """a pause longer than this inside one speaker's words starts a new turn"""


@dataclass
class CallAnalysis:
    audio: Audio
    transcript: Transcript
    roles: RoleAssignment
    dropped: list[tuple[str, DroppedText]]
    settings: dict
    timings: dict[str, float]
    acoustics: Acoustics | None = None
    findings: list = field(default_factory=list)
    """rule findings (``checks.Finding``) and acoustic findings, sorted by start; each has ``to_dict()``"""
    rubric_sheet: RubricSheet | None = None
    """the inspector's sheet (rules/rubric.yaml) that ``output.to_json_dict`` pre-fills"""


class Analyzer:
    """Holds the loaded models; ``analyze`` is one call."""

    def __init__(self, options: AnalyzeOptions | None = None):
        privacy.keep_data_local()
        self.options = options or AnalyzeOptions()
        self._transcriber: Transcriber | None = None
        self._diarizer = None
        # Rule files are read up front so a malformed one stops the run before any audio is touched.
        self._role_cues = load_role_cues(self.options.rules_dir)
        self._rulebook = load_rulebook(self.options.rules_dir)
        self._acoustic_bands = load_acoustic_bands(self.options.rules_dir)
        self._rubric_sheet = load_rubric(self.options.rules_dir)  # a bad sheet fails here, before any audio

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:
            self._transcriber = Transcriber(self.options.asr)
        return self._transcriber

    @property
    def diarizer(self):
        # pyannote.audio takes ~8 s to import: only pay for it when a mono call needs diarizing.
        if self._diarizer is None:
            from qa_audio.diarize import DiarizationOptions, Diarizer

            # It runs beside the ASR (see ``analyze``), so by default it takes half the cores.
            threads = self.options.threads or max(1, (os.cpu_count() or 2) // 2)
            self._diarizer = Diarizer(DiarizationOptions(num_speakers=self.options.num_speakers,
                                                         num_threads=threads))
        return self._diarizer

    def analyze(self, path: Path | str, progress: Progress | None = None) -> CallAnalysis:
        report = progress or (lambda stage, fraction: None)
        timings: dict[str, float] = {}
        started = time.perf_counter()

        audio = load_audio(path)
        timings["decode"] = time.perf_counter() - started
        report("decode", 1.0)

        stereo = audio.channel_count == 2 and not _duplicate_channels(audio)
        if stereo and self.options.agent_channel not in (0, 1):
            raise ValueError(f"agent channel must be 0 or 1, not {self.options.agent_channel}")

        words: list[tuple[str, Word]] = []
        dropped: list[tuple[str, DroppedText]] = []
        if stereo:
            mark = time.perf_counter()
            speakers = [f"CH{c}" for c in range(2)]
            speech = []
            for speaker, samples in zip(speakers, audio.channels, strict=True):
                speech += _speech_intervals(samples, speaker, self.options.speech)
            speech.sort(key=lambda s: (s.start, s.speaker))
            speaker_settings = {"method": "channels", "agent_channel": self.options.agent_channel,
                                "vad": asdict(self.options.speech)}
            timings["speakers"] = time.perf_counter() - mark
            if not speech:
                raise AudioError(audio.path, "no speech found (only noise or silence)")
            mark = time.perf_counter()
            # Each party is decoded on its own channel, so talk-over costs neither party its words.
            # (Measured: decoding both channels end to end in one batched pass was ~1.5x faster, but
            # lost whole customer turns at chunk ends that only the second pass brought back.)
            for index, (speaker, samples) in enumerate(zip(speakers, audio.channels, strict=True)):
                own_speech = [s for s in speech if s.speaker == speaker]
                if not own_speech:
                    continue  # a silent channel: nothing to transcribe
                result = self.transcriber.transcribe(
                    samples, progress=lambda f, i=index: report("asr", (i + f) / 2),
                    speech=[(s.start, s.end) for s in own_speech])
                words += [(speaker, w) for w in snap_orphan_words(result.words, own_speech)]
                dropped += [(speaker, d) for d in result.dropped]
            timings["asr"] = time.perf_counter() - mark
        else:
            mixed = audio.mono()
            diarizer, transcriber = self.diarizer, self.transcriber  # loaded here, not in the thread
            report("diarize", 0.0)
            # Diarization runs in a thread beside the ASR: faster-whisper's decoding leaves part of
            # the cores idle, and diarizing there added ~10% to the ASR's time on a 3-minute call
            # instead of ~40% one after the other (measured, 2 cores).  torch and CTranslate2 both
            # release the GIL while they compute.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize") as pool:
                diarized = pool.submit(_timed, diarizer, mixed, MODEL_SAMPLE_RATE,
                                       progress=lambda stage, f: report("diarize", f))
                mark = time.perf_counter()
                heard = transcriber.decode(mixed, progress=lambda f: report("asr", f))
                speech, timings["speakers"] = diarized.result()
            speaker_settings = {"method": "diarization", **diarizer.settings()}
            if not speech:
                raise AudioError(audio.path, "no speech found (only noise or silence)")
            # the diarizer's speech says where the ASR's second pass should look
            result = transcriber.finish(transcriber.fill_gaps(mixed, heard, [(s.start, s.end) for s in speech]))
            timings["asr"] = time.perf_counter() - mark
            words = [(_speaker_for(w, speech), w) for w in snap_orphan_words(result.words, speech)]
            dropped = [(_speaker_for_span(d.start, d.end, speech), d) for d in result.dropped]
        report("asr", 1.0)

        mark = time.perf_counter()
        if stereo:
            agent = f"CH{self.options.agent_channel}"
            roles = assign_by_channel(speakers, agent)
        else:
            text_by_speaker: dict[str, str] = {}
            for speaker, word in words:
                text_by_speaker[speaker] = text_by_speaker.get(speaker, "") + word.text
            for interval in speech:
                text_by_speaker.setdefault(interval.speaker, "")
            roles = assign_by_cues(text_by_speaker, speech[0].speaker, self._role_cues)
        turns = build_turns(words, roles.roles, self.options.max_turn_gap)
        transcript = Transcript(duration=audio.duration, turns=turns, speech=speech, roles=roles.roles)
        timings["transcript"] = time.perf_counter() - mark

        mark = time.perf_counter()
        if stereo:
            party_audio = dict(zip(speakers, audio.channels, strict=True))
        else:
            party_audio = {speaker: mixed for speaker in {s.speaker for s in speech}}
        acoustics = analyze_acoustics(party_audio, transcript, self._acoustic_bands, MODEL_SAMPLE_RATE)
        timings["acoustics"] = time.perf_counter() - mark
        mark = time.perf_counter()
        findings = run_checks(transcript, self._rulebook)
        findings += acoustic_findings(acoustics, transcript, self._acoustic_bands)
        findings.sort(key=lambda f: (f.start, f.rule))
        timings["rules"] = time.perf_counter() - mark
        timings["total"] = time.perf_counter() - started

        settings = {
            "asr": self.transcriber.settings(),
            "speakers": speaker_settings,
            "max_turn_gap": self.options.max_turn_gap,
            "rules_dir": str(self.options.rules_dir) if self.options.rules_dir else "rules/ (shipped)",
        }
        return CallAnalysis(audio=audio, transcript=transcript, roles=roles, dropped=dropped,
                            settings=settings, timings={k: round(v, 3) for k, v in timings.items()},
                            acoustics=acoustics, findings=findings, rubric_sheet=self._rubric_sheet)


def analyze_file(path: Path | str, options: AnalyzeOptions | None = None) -> CallAnalysis:
    """Analyse one call with freshly loaded models (a batch should keep one :class:`Analyzer`)."""
    return Analyzer(options).analyze(path)


def _timed(function: Callable, *args, **kwargs) -> tuple:
    started = time.perf_counter()
    return function(*args, **kwargs), time.perf_counter() - started


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


def snap_orphan_words(words: list[Word], speech: list[SpeechInterval], min_inside: float = 0.3) -> list[Word]:
    """Move words that Whisper timed into silence onto the speech they belong to.

    faster-whisper joins the VAD's speech chunks before decoding; the first word after a pause is
    often timed at the join, i.e. in the silence right after the previous utterance ("退费" heard
    as "推" at the end of one turn and "废" at the start of the next). Such a word (less than
    ``min_inside`` of it inside any speech interval) whose next word lies in a later interval is
    moved to the start of that interval. So is a word that starts a sentence (the word before it
    ends with 。？！) and runs past the end of its interval while the next word is in a later one.
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
        if inside / duration >= min_inside and not (sentence_start and runs_past):
            out.append(word)
            continue
        # the interval the next word is in (or the first after it), as long as it starts after this
        # word does: a word that straddles its interval's start moves to that start, not past the
        # next word into a later interval
        target = next((s for s in intervals if s.end > following.start and s.start > word.start), None)
        if target is None:
            out.append(word)
            continue
        start = target.start
        end = max(start + 0.01, min(following.start, start + duration))
        out.append(Word(start=round(start, 3), end=round(end, 3), text=word.text, probability=word.probability))
    return out


def _turn(speaker: str, roles: dict, words: list[Word]) -> Turn:
    return Turn(speaker=speaker, role=roles.get(speaker, "customer"), start=words[0].start,
                end=words[-1].end, text="".join(w.text for w in words), words=list(words))


def _speech_intervals(samples: np.ndarray, speaker: str, options: SpeechOptions) -> list[SpeechInterval]:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(
        samples,
        VadOptions(threshold=options.threshold, min_silence_duration_ms=options.min_silence_ms,
                   speech_pad_ms=options.speech_pad_ms, min_speech_duration_ms=options.min_speech_ms),
    )
    return [SpeechInterval(speaker, round(s["start"] / MODEL_SAMPLE_RATE, 3),
                           round(s["end"] / MODEL_SAMPLE_RATE, 3)) for s in stamps]


def _duplicate_channels(audio: Audio) -> bool:
    left, right = audio.channels
    return float(np.max(np.abs(left - right))) < DUPLICATE_CHANNEL_TOLERANCE


def _speaker_for(word: Word, speech: list[SpeechInterval]) -> str:
    return _speaker_for_span(word.start, word.end, speech)


def _speaker_for_span(start: float, end: float, speech: list[SpeechInterval]) -> str:
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
