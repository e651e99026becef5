"""Applying the detector's masks to a call: turn texts, word texts and dropped texts, in place of
the original characters (same length, so every offset and time stays true)."""

from __future__ import annotations

from dataclasses import replace

from qa_audio.redact.detect import Detector, Piece, pieces_of_turns
from qa_audio.redact.rules import PersonalDataRules
from qa_audio.schema import PersonalDataSpan, Transcript, Turn, Word
from qa_audio.speech.asr import DroppedText

Masks = dict[tuple[str, int], dict[int, str]]


def redact_call(transcript: Transcript, dropped: list[tuple[str, DroppedText]], rules: PersonalDataRules
                ) -> tuple[Transcript, list[tuple[str, DroppedText]], list[PersonalDataSpan]]:
    """The transcript and dropped texts with personal data masked, and what was masked where."""
    pieces = pieces_of_turns(transcript.turns)
    for index, (speaker, text) in enumerate(dropped):
        pieces.append(Piece("dropped", index, speaker, transcript.roles.get(speaker, "customer"), text.text,
                            text.start, text.end))
    masks: Masks = {}
    spans = Detector(rules).find(pieces, masks)
    turns = [_mask_turn(turn, masks.get(("turns", i), {}), rules.mask_char) for i, turn in enumerate(transcript.turns)]
    masked_dropped = [(speaker, replace(d, text=_apply(d.text, masks.get(("dropped", i), {}))))
                      for i, (speaker, d) in enumerate(dropped)]
    return replace(transcript, turns=turns), masked_dropped, spans


def redact_text(text: str, rules: PersonalDataRules, role: str = "customer") -> tuple[str, list[PersonalDataSpan]]:
    """One text on its own (a test, a bench, a note typed by someone): masked, and what was found."""
    masks: Masks = {}
    spans = Detector(rules).find([Piece("turns", 0, "", role, text, 0.0, 0.0)], masks)
    return _apply(text, masks.get(("turns", 0), {})), spans


def _apply(text: str, shown: dict[int, str]) -> str:
    if not shown:
        return text
    return "".join(shown.get(i, ch) for i, ch in enumerate(text))


def _mask_turn(turn: Turn, shown: dict[int, str], mask_char: str) -> Turn:
    if not shown:
        return turn
    text = _apply(turn.text, shown)
    if "".join(w.text for w in turn.words) == turn.text:
        words, offset = [], 0
        for word in turn.words:
            words.append(Word(word.start, word.end, text[offset:offset + len(word.text)], word.probability))
            offset += len(word.text)
    else:
        # Words that do not make the text (a hand-edited or legacy result): mask every word that
        # holds any masked character's time, whole, rather than risk showing a digit.
        words = []
        piece = pieces_of_turns([turn])[0]
        hidden = [piece.time_of(i, i + 1) for i in shown]
        for word in turn.words:
            covered = any(word.start < end and word.end > start for start, end in hidden)
            words.append(Word(word.start, word.end, mask_char * len(word.text), word.probability) if covered else word)
    return replace(turn, text=text, words=words)
