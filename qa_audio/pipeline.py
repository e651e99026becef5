"""One call from file to pre-filled sheet: audio → speech → redact → acoustic → checks → rubric.

The stages talk through the dataclasses of :mod:`qa_audio.schema`; this module only wires them
(``docs/architecture.md`` draws the path of one call). The models are loaded once per
:class:`Analyzer`, so a batch analyses many calls with one load, and every rule file is read when
the Analyzer is made, so a malformed one stops the run before any audio is touched.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from qa_audio import privacy
from qa_audio.acoustic.bands import load_acoustic_bands
from qa_audio.acoustic.measure import Acoustics, analyze_acoustics
from qa_audio.audio import MODEL_SAMPLE_RATE, Audio, AudioError, load_audio
from qa_audio.call_metadata import CallMetadata, combine, from_file_name
from qa_audio.checks.acoustic import acoustic_findings
from qa_audio.checks.rulebook import load_rulebook
from qa_audio.checks.script import greeting_finding, greeting_window, near_greeting, run_checks
from qa_audio.devices import choose_device
from qa_audio.phrase_match import load_segmenter
from qa_audio.redact import load_personal_data_rules, redact_call
from qa_audio.rubric.fill import fill_rubric
from qa_audio.rubric.sheet import load_rubric
from qa_audio.schema import (
    Finding,
    OpeningRedecode,
    PersonalDataSpan,
    ProgressHook,
    RubricResult,
    ScriptDetails,
    Transcript,
    VocabularyCorrection,
    Word,
    no_progress,
)
from qa_audio.speech.asr import AsrOptions, DroppedText, Transcriber
from qa_audio.speech.attribution import (
    build_turns,
    snap_orphan_words,
    speaker_for,
    speaker_for_span,
    wordless_turns,
)
from qa_audio.speech.opening import opening_span, splice
from qa_audio.speech.roles import RoleAssignment, assign_by_channel, assign_by_cues, load_role_cues
from qa_audio.speech.vad import SpeechOptions, speech_intervals
from qa_audio.speech.vocabulary import correct_transcript, load_vocabulary

logger = logging.getLogger(__name__)

# Channels this alike are one signal written twice (a mono call saved as stereo): diarize it.
DUPLICATE_CHANNEL_TOLERANCE = 1e-3


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
    wordless_turn_min_s: float = 0.3
    """speech at least this long with no word in it (a 再见 the ASR missed) is still a turn, marked
    unintelligible"""
    device: str = "auto"
    """auto, cpu or cuda: where faster-whisper and the diarizer run (``qa_audio/devices.py``)"""
    compute_type: str = "default"
    """CTranslate2's compute type; default: int8 on the CPU, float16 on a GPU"""
    vocabulary: bool = True
    """rewrite near-homophones of the deployment's words (rules/vocabulary.yaml) and list each rewrite;
    False: ``--no-vocabulary``, the transcript as Whisper wrote it"""
    redact: bool = True
    """mask customers' personal data (rules/personal_data.yaml) before anything sees the words;
    False only to measure the masking itself (bench/redaction.py): no command turns it off"""


@dataclass
class CallAnalysis:
    """Everything one call gave, stage by stage; ``qa_audio.report`` serialises and shows it."""

    audio: Audio
    transcript: Transcript
    roles: RoleAssignment
    dropped: list[tuple[str, DroppedText]]
    settings: dict
    """the options every stage ran with, echoed into every output"""
    timings: dict[str, float]
    acoustics: Acoustics | None
    findings: list[Finding]
    """the script, timing and acoustic checks' findings, sorted by start"""
    rubric: RubricResult
    """the inspector's sheet of the rules the call was analysed with, pre-filled"""
    personal_data: list[PersonalDataSpan] = field(default_factory=list)
    """what was masked in ``transcript`` and ``dropped`` (both hold only the masked text)"""
    metadata: CallMetadata = field(default_factory=CallMetadata)
    """who took the call: from the file name (rules/deployment.yaml) or the 工号 heard"""
    vocabulary_corrections: list[VocabularyCorrection] = field(default_factory=list)
    """near-homophones of the deployment's words that ``transcript`` shows rewritten as the words"""
    opening: OpeningRedecode | None = None
    """the greeting's stretch, decoded again with the deployment's words as hotwords (None: not done)"""


class Analyzer:
    """Holds the loaded models; ``analyze`` is one call."""

    def __init__(self, options: AnalyzeOptions | None = None):
        privacy.keep_data_local()
        options = options or AnalyzeOptions()
        # a device that cannot be used stops here (DeviceError), before a model or any audio is loaded
        self.device = choose_device(options.device, options.compute_type)
        self.options = replace(options, asr=replace(options.asr, device=self.device.device,
                                                    compute_type=self.device.compute_type))
        self._transcriber: Transcriber | None = None
        self._diarizer = None
        # Rule files are read up front so a malformed one stops the run before any audio is touched.
        self._role_cues = load_role_cues(self.options.rules_dir)
        self._rulebook = load_rulebook(self.options.rules_dir)
        self._acoustic_bands = load_acoustic_bands(self.options.rules_dir)
        self._rubric_sheet = load_rubric(self.options.rules_dir)  # a bad sheet fails here, before any audio
        self._personal_data = load_personal_data_rules(self.options.rules_dir)
        deployment = self._rulebook.deployment
        self._vocabulary = load_vocabulary(
            self.options.rules_dir,
            [deployment.company_name, *deployment.company_aliases, *deployment.agent_id_keywords],
            self._rulebook.settings)
        if (self.options.vocabulary and self._vocabulary.hotwords == "everywhere"
                and self.options.asr.hotwords is None):
            self.options = replace(self.options, asr=replace(self.options.asr,
                                                             hotwords=self._vocabulary.hotword_text()))

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:
            self._transcriber = Transcriber(self.options.asr)
        return self._transcriber

    @property
    def diarizer(self):
        # pyannote.audio takes ~8 s to import: only pay for it when a mono call needs diarizing.
        if self._diarizer is None:
            from qa_audio.speech.diarize import DiarizationOptions, Diarizer

            # It runs beside the ASR (see ``analyze``), so by default it takes half the cores.
            threads = self.options.threads or max(1, (os.cpu_count() or 2) // 2)
            self._diarizer = Diarizer(DiarizationOptions(num_speakers=self.options.num_speakers,
                                                         num_threads=threads, device=self.device.device))
        return self._diarizer

    def analyze(self, path: Path | str, progress: ProgressHook = no_progress) -> CallAnalysis:
        """Analyse one recording; ``progress`` hears about decoding, ASR and diarization as they go."""
        timings: dict[str, float] = {}
        started = time.perf_counter()

        audio = load_audio(path)
        timings["decode"] = time.perf_counter() - started
        # jieba's dictionary (~1 s, once per process) is built here, after the audio passed and
        # like the models outside any stage's timing: the first call's greeting check carried it
        load_segmenter()
        progress("decode", completed=1, total=1)

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
                speech += speech_intervals(samples, speaker, self.options.speech)
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
                    samples, progress=_channel_progress(progress, index, len(speakers)),
                    speech=[(s.start, s.end) for s in own_speech])
                words += [(speaker, w) for w in snap_orphan_words(result.words, own_speech)]
                dropped += [(speaker, d) for d in result.dropped]
            timings["asr"] = time.perf_counter() - mark
        else:
            mixed = audio.mono()
            diarizer, transcriber = self.diarizer, self.transcriber  # loaded here, not in the thread
            progress("diarize", completed=0, total=1)
            # Diarization runs in a thread beside the ASR: faster-whisper's decoding leaves part of
            # the cores idle, and diarizing there added ~10% to the ASR's time on a 3-minute call
            # instead of ~40% one after the other (measured, 2 cores).  torch and CTranslate2 both
            # release the GIL while they compute.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diarize") as pool:
                diarized = pool.submit(_timed, diarizer.diarize, mixed, MODEL_SAMPLE_RATE, progress=progress)
                mark = time.perf_counter()
                heard = transcriber.decode(mixed, progress=progress)
                diarization, timings["speakers"] = diarized.result()
            speaker_settings = {"method": "diarization", **diarizer.settings()}
            if not diarization.speech:
                raise AudioError(audio.path, "no speech found (only noise or silence)")
            # the diarizer's speech says where the ASR's second pass should look
            result = transcriber.finish(transcriber.fill_gaps(mixed, heard,
                                                              [(s.start, s.end) for s in diarization.speech]))
            timings["asr"] = time.perf_counter() - mark
            # the words' pauses show changes the segmentation missed (a short reply glued to a question)
            mark = time.perf_counter()
            speech = diarizer.relabel(mixed, diarization, [(w.start, w.end) for w in result.words],
                                      threads=self.options.threads or min(os.cpu_count() or 1, 4))
            timings["speakers"] += time.perf_counter() - mark
            words = [(speaker_for(w, speech), w) for w in snap_orphan_words(result.words, speech)]
            dropped = [(speaker_for_span(d.start, d.end, speech), d) for d in result.dropped]
            progress("diarize", completed=1, total=1)
        progress("asr", completed=1, total=1)

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
        transcript = self._transcript(words, speech, roles.roles, audio.duration)
        timings["transcript"] = time.perf_counter() - mark

        # The greeting decides rubric 1b-1e and holds the words Whisper has never heard: where the
        # first pass does not hold all of it, it is decoded again, the decoder told the deployment's
        # words first (speech/opening.py).
        opening: OpeningRedecode | None = None
        if self.options.vocabulary and self._vocabulary.hotwords == "opening":
            mark = time.perf_counter()
            samples = audio.channels[self.options.agent_channel] if stereo else mixed
            words, transcript, opening = self._redecode_opening(samples, stereo, words, transcript)
            timings["opening"] = time.perf_counter() - mark

        # Masked before any check, sheet or report sees the words: nothing downstream can leak
        # what it never had (the evidence quotes are cut from the masked text).
        mark = time.perf_counter()
        personal_data: list[PersonalDataSpan] = []
        if self.options.redact:
            transcript, dropped, personal_data = redact_call(transcript, dropped, self._personal_data)
        timings["redaction"] = time.perf_counter() - mark

        # After the masks, so a rewrite's "heard" text can never hold what they hid.
        mark = time.perf_counter()
        corrections: list[VocabularyCorrection] = []
        if self.options.vocabulary:
            transcript, corrections = correct_transcript(transcript, self._vocabulary)
        timings["vocabulary"] = time.perf_counter() - mark

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
        metadata = combine(from_file_name(audio.path, self._rulebook.deployment.file_pattern), "file_name",
                           heard_agent_id(findings))
        mark = time.perf_counter()
        rubric = fill_rubric(transcript, roles, findings, acoustics, self._rubric_sheet)
        timings["rubric"] = time.perf_counter() - mark
        timings["total"] = time.perf_counter() - started

        settings = {
            "device": self.device.settings(),
            "asr": self.transcriber.settings(),
            "speakers": speaker_settings,
            "max_turn_gap": self.options.max_turn_gap,
            "vocabulary": self._vocabulary.settings(self.options.vocabulary),
            "rules_dir": str(self.options.rules_dir) if self.options.rules_dir else "rules/ (shipped)",
            "personal_data": {**self._personal_data.settings(), "audio": asdict(self._personal_data.tone),
                              "redacted": self.options.redact},
        }
        return CallAnalysis(audio=audio, transcript=transcript, roles=roles, dropped=dropped,
                            settings=settings, timings={k: round(v, 3) for k, v in timings.items()},
                            acoustics=acoustics, findings=findings, rubric=rubric, personal_data=personal_data,
                            metadata=metadata, vocabulary_corrections=corrections, opening=opening)

    def _redecode_opening(self, samples: np.ndarray, stereo: bool, words: list[tuple[str, Word]],
                          transcript: Transcript) -> tuple[list[tuple[str, Word]], Transcript, OpeningRedecode | None]:
        """The words and transcript with the greeting decoded again where that hears more of it."""
        span = opening_span(transcript, greeting_window(transcript, self._rulebook),
                            self.options.asr.vad_speech_pad_ms / 1000)
        if span is None:
            return words, transcript, None
        first_pass = self._greeting(transcript)
        # all of it heard: nothing to gain; none of it heard: a first turn that is no greeting (h05,
        # a dialogue with none), not one misheard, so the 1-3 s of a second decoding are spared
        if first_pass.level == max(self._rulebook.greeting.levels) or not first_pass.parts_found:
            return words, transcript, None
        hotwords = self._vocabulary.hotword_text(deployment_only=True)
        # not snapped as the first pass's words are: a stretch decoded on its own has no chunk joins
        # to mistime words at (snapping sent h01's 工 of 0.02 s to the next turn)
        heard = self.transcriber.decode_stretch(samples, *span, hotwords)
        speech = transcript.speech
        if stereo:
            agent = f"CH{self.options.agent_channel}"
            spliced = splice(words, heard, lambda s: s == agent, lambda w: agent)
        else:
            spliced = splice(words, heard, lambda s: True, lambda w: speaker_for(w, speech))
        # kept only where it hears more of the greeting: elsewhere the first pass, which no word list
        # biased, stands (h08: no more of the greeting, agent CER +0.03)
        redecoded = self._transcript(spliced, speech, transcript.roles, transcript.duration)
        opening = OpeningRedecode(start=round(span[0], 3), end=round(span[1], 3), hotwords=hotwords,
                                  changed=self._greeting(redecoded).level > first_pass.level)
        return (spliced, redecoded, opening) if opening.changed else (words, transcript, opening)

    def _greeting(self, transcript: Transcript) -> ScriptDetails:
        """What the greeting check hears once the vocabulary has rewritten the turns it reads (only those)."""
        near = near_greeting(transcript, self._rulebook)
        details = greeting_finding(correct_transcript(near, self._vocabulary)[0], self._rulebook).details
        assert isinstance(details, ScriptDetails)
        return details

    def _transcript(self, words: list[tuple[str, Word]], speech: list, roles: dict, duration: float) -> Transcript:
        turns = build_turns(words, roles, self.options.max_turn_gap)
        turns = sorted(turns + wordless_turns(turns, speech, roles, self.options.wordless_turn_min_s),
                       key=lambda t: (t.start, t.speaker))
        return Transcript(duration=duration, turns=turns, speech=speech, roles=roles)


def heard_agent_id(findings: list[Finding]) -> str | None:
    """The 工号 digits of the greeting, when the deployment's number of them was heard."""
    for finding in findings:
        details = finding.details
        if finding.rule == "greeting" and isinstance(details, ScriptDetails) and details.agent_id_complete:
            return details.agent_id_digits or None
    return None


def _channel_progress(progress: ProgressHook, index: int, channels: int) -> ProgressHook:
    """The ASR of one channel of a stereo call, reported as its share of the whole call's ASR."""

    def hook(step: str, *, completed: float, total: float) -> None:
        progress(step, completed=(index + (completed / total if total else 1.0)) / channels, total=1.0)

    return hook


def _timed(function: Callable, *args, **kwargs) -> tuple:
    started = time.perf_counter()
    return function(*args, **kwargs), time.perf_counter() - started


def _duplicate_channels(audio: Audio) -> bool:
    left, right = audio.channels
    return float(np.max(np.abs(left - right))) < DUPLICATE_CHANNEL_TOLERANCE
