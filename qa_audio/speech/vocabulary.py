"""The deployment's vocabulary (热词): its own words written right, and every rewrite said.

Whisper base has never heard of 星河通信. On the 23 greetings of the sample and personal-data calls
it wrote the name 心和通信, 心何通信 or 心合通信 in 5 and 工号 as 宫号, 公号, 功耗 or 公好 in 21, each
time with the right sounds (or nearly: xin for xing) and a low word probability (0.19-0.57 on the
misheard characters, where a word it is sure of scores 0.9 or more). So after decoding and masking,
a stretch of one turn that sounds like a listed word (toneless pinyin, scored as the checks score
phrases, ``rules/matching.yaml``), has as many characters as the word, and holds a character
Whisper was unsure of (probability below ``max_probability``) is rewritten as the word, character
for character, so the words keep their times. Each rewrite is a :class:`VocabularyCorrection` in
the output (who, when, heard, written, the pinyin score and Whisper's probability); none is silent,
and ``--no-vocabulary`` turns the list off so the two can be compared (``bench/vocabulary.py``).

Where the list also biases decoding (faster-whisper's ``hotwords``) is ``hotwords`` in the rule
file: by default only the greeting, when the first pass does not hold all of it, is decoded again
told the deployment's words (``speech/opening.py``); ``bench/hotwords.py`` measured the bias over
whole calls, and it costs more there than it gives: see ``rules/vocabulary.yaml``.

The list is ``rules/vocabulary.yaml``'s words plus the company name, its aliases and the 工号
keywords of ``rules/deployment.yaml`` (the pipeline passes those in, so no rule is written twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qa_audio.phrase_match import (
    Heard,
    HeardChar,
    MatchSettings,
    Phrase,
    PhraseIndex,
    best_per_span,
    char_readings,
    compile_phrase,
    normalise,
)
from qa_audio.rule_files import RuleFileError, load_rule_file, number_between, only_keys, require, rule_file
from qa_audio.schema import Transcript, Turn, VocabularyCorrection, Word

VOCABULARY_FILE = "vocabulary.yaml"
HOTWORD_PLACES = ("none", "opening", "everywhere")
"""where faster-whisper's decoder is biased toward the words (see rules/vocabulary.yaml)"""
RULE = "vocabulary"


@dataclass
class Vocabulary:
    """The words recognition must get right, and how the transcript is corrected toward them."""

    words: tuple[str, ...]
    """the deployment's words first (company name, aliases, 工号 keywords), then the QA lead's"""
    deployment_words: tuple[str, ...] = ()
    """the company name, aliases and 工号 keywords alone: the opening's hotwords"""
    hotwords: str = "none"
    """none, opening or everywhere: where faster-whisper's decoder is biased toward the words"""
    min_score: float = 0.8
    """pinyin likeness (0-1, rules/matching.yaml's scoring) a stretch needs to be rewritten"""
    max_probability: float = 0.8
    """...and Whisper must have been less sure than this of one of its characters"""
    phrases: tuple[Phrase, ...] = field(default=(), repr=False, compare=False)
    match_settings: MatchSettings = field(default_factory=MatchSettings, repr=False, compare=False)
    _index: PhraseIndex | None = field(default=None, repr=False, compare=False)

    def settings(self, enabled: bool = True) -> dict[str, Any]:
        # the file itself is settings.rules_dir's vocabulary.yaml: no path here, so a result does not
        # depend on where qa-audio is installed
        return {"enabled": enabled, "words": list(self.words), "hotwords": self.hotwords if enabled else "none",
                "min_score": self.min_score, "max_probability": self.max_probability}

    def hotword_text(self, deployment_only: bool = False) -> str:
        """The words as faster-whisper's ``hotwords`` prompt (space-separated); ``deployment_only``:
        the company name, aliases and 工号 keywords alone (the opening's: with the plan names too,
        base wrote 宽带 and 五G套餐 into greetings that never said them)."""
        return " ".join(self.deployment_words if deployment_only else self.words)

    @property
    def index(self) -> PhraseIndex:
        """The words compiled for the pinyin matcher, built on first use and kept (as the rulebook's)."""
        if self._index is None:
            self._index = PhraseIndex(self.phrases, self.match_settings, user_words=[p.chars for p in self.phrases])
        return self._index


def load_vocabulary(rules_dir: Path | str | None, deployment_words: Sequence[str],
                    settings: MatchSettings) -> Vocabulary:
    """Read ``rules/vocabulary.yaml``; ``deployment_words`` are the company name, aliases and 工号
    keywords of ``deployment.yaml``; ``settings`` the pinyin scoring of ``matching.yaml``."""
    path = rule_file(rules_dir, VOCABULARY_FILE)
    data = load_rule_file(path)
    if not isinstance(data, dict):
        raise RuleFileError(path, getattr(data, "line", 1), "the file must be a mapping")
    only_keys(data, {"words", "hotwords", "correction"}, path, VOCABULARY_FILE)
    listed = require(data, "words", list, path)
    own: list[str] = []
    for item, line in zip(listed, listed.item_lines, strict=True):
        if not isinstance(item, str) or not normalise(item):
            raise RuleFileError(path, line, f"each word must be text with at least one character, not {item!r}")
        if len(normalise(item)) < 2:
            raise RuleFileError(path, line, f"{item!r} is one character: the pinyin matcher cannot place a "
                                            "single syllable safely, so it would rewrite ordinary words")
        own.append(item.strip())
    hotwords = require(data, "hotwords", str, path)
    if hotwords not in HOTWORD_PLACES:
        raise RuleFileError(path, data.line_of("hotwords"),
                            f"'hotwords' must be one of {', '.join(HOTWORD_PLACES)}, not {hotwords!r}")
    correction = require(data, "correction", dict, path)
    only_keys(correction, {"min_score", "max_probability"}, path, "correction")
    min_score = number_between(correction, "min_score", 0.0, 1.0, path, lo_open=True)
    max_probability = number_between(correction, "max_probability", 0.0, 1.0, path)
    words: list[str] = []
    for word in [*deployment_words, *own]:
        if normalise(word) not in {normalise(w) for w in words}:
            words.append(word)
    phrases = tuple(compile_phrase(w, RULE, settings, group=w, min_score=min_score, source=str(path))
                    for w in words)
    return Vocabulary(words=tuple(words), deployment_words=tuple(w for w in deployment_words if normalise(w)),
                      hotwords=hotwords, min_score=min_score,
                      max_probability=max_probability, phrases=phrases,
                      match_settings=settings)


def correct_transcript(transcript: Transcript, vocabulary: Vocabulary) -> tuple[Transcript, list[VocabularyCorrection]]:
    """The transcript with near-homophones of listed words rewritten as the words, and the rewrites."""
    index = vocabulary.index
    turns: list[Turn] = []
    corrections: list[VocabularyCorrection] = []
    for turn in transcript.turns:
        fixed, made = _correct_turn(turn, index, vocabulary.max_probability)
        turns.append(fixed)
        corrections += made
    return replace(transcript, turns=turns), corrections


def _as_written(phrase: Phrase) -> str:
    """The word's characters as the matcher compares them, but Latin letters in the QA lead's case
    (五G套餐, not 五g套餐)."""
    return "".join(ch if ch.isascii() else normalise(ch) for ch in phrase.text if normalise(ch))


def _correct_turn(turn: Turn, index: PhraseIndex, max_probability: float) -> tuple[Turn, list[VocabularyCorrection]]:
    # one entry per character the matcher hears: (word index, position in the word's text, character);
    # ``flat`` is its position in the turn's text, so a stretch can be checked for contiguity (a
    # mask or a pause's punctuation between two characters ends a stretch)
    places: list[tuple[int, int, str]] = []
    flat: list[int] = []
    times: list[tuple[float, float]] = []
    offset = 0
    for wi, word in enumerate(turn.words):
        kept = [(ci, normalise(ch)) for ci, ch in enumerate(word.text)]
        kept = [(ci, n) for ci, n in kept if len(n) == 1]
        step = max(word.end - word.start, 0.0) / max(len(kept), 1)
        for k, (ci, n) in enumerate(kept):
            places.append((wi, ci, n))
            flat.append(offset + ci)
            times.append((word.start + k * step, word.start + (k + 1) * step))
        offset += len(word.text)
    if not places:
        return turn, []
    text = "".join(ch for _, _, ch in places)
    chars = [HeardChar(ch, rd, round(s, 3), round(e, 3))
             for ch, rd, (s, e) in zip(text, char_readings(text), times, strict=True)]
    heard = Heard(role=turn.role, chars=chars, text=text)
    texts = [list(w.text) for w in turn.words]
    corrections: list[VocabularyCorrection] = []
    for hit in best_per_span(index.find(heard)):
        word = _as_written(hit.phrase)
        span = range(hit.first, hit.last + 1)
        if len(span) != len(word) or hit.heard == hit.phrase.chars:
            continue  # not the same number of syllables, or already right
        if any(flat[i + 1] != flat[i] + 1 for i in span[:-1]):
            continue  # the stretch runs across a mask or punctuation
        changed = [i for i in span if text[i] != hit.phrase.chars[i - hit.first]]
        probability = min(turn.words[places[i][0]].probability for i in changed)
        if probability >= max_probability:
            continue  # Whisper was sure of what it wrote: leave it
        written_before = "".join(turn.words[places[i][0]].text[places[i][1]] for i in span)
        for i in span:  # all of it, so a Latin letter takes the listed case too
            wi, ci, _ = places[i]
            texts[wi][ci] = word[i - hit.first]
        corrections.append(VocabularyCorrection(
            speaker=turn.speaker, role=turn.role, start=hit.start, end=hit.end, heard=written_before,
            written=word, score=hit.score, probability=round(probability, 3)))
    if not corrections:
        return turn, []
    words = [Word(w.start, w.end, "".join(t), w.probability) for w, t in zip(turn.words, texts, strict=True)]
    return replace(turn, words=words, text="".join(w.text for w in words)), corrections
