"""The speaker-attributed transcript: the contract every stage after ASR reads.

Times are seconds from the start of the recording. ``Turn.words`` keep their own times because
Whisper segments span pauses (one segment can cover speech, dead air and more speech): segment
edges are not speech edges, word edges and the ``speech`` intervals are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["agent", "customer"]


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class SpeechInterval:
    """A stretch where one speaker is talking, from VAD (stereo) or the diarizer (mono)."""

    speaker: str
    start: float
    end: float


@dataclass
class Turn:
    speaker: str
    role: Role
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    duration: float
    turns: list[Turn]
    speech: list[SpeechInterval]
    roles: dict[str, Role]
    """speaker label -> role"""

    def speech_of(self, role: Role) -> list[SpeechInterval]:
        return [s for s in self.speech if self.roles.get(s.speaker) == role]
