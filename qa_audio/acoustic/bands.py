"""The acoustic bands: the numbers of ``rules/acoustic.yaml`` (pitch search range, pause length, pace
band, flat-tone and agitation thresholds), read and checked so a bad value names its file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_audio.rule_files import RuleFileError, load_rule_file, only_keys, require, rule_file

ACOUSTIC_FILE = "acoustic.yaml"
SECTION_KEYS = {
    "analysis": {"pitch_fmin_hz", "pitch_fmax_hz", "pitch_hop_s", "pitch_max_s_per_turn",
                 "octave_fold_above_st", "pause_min_s", "gate_below_peak_db", "syllable_prominence_db"},
    "speech_rate": {"agent_band_cpm", "syllables_per_char", "min_voiced_s", "min_chars",
                    "asr_acoustic_disagreement"},
    "flat_tone": {"max_semitone_std", "min_voiced_s"},
    "customer_agitation": {"baseline_voiced_s", "loudness_rise_db", "pitch_rise_st", "min_arousal",
                           "min_turn_voiced_s"},
}
"""Every key acoustic.yaml may hold, by section; any other is a typo and an error."""


@dataclass(frozen=True)
class AcousticBands:
    """The numbers from ``rules/acoustic.yaml``; see that file for where each comes from."""

    path: Path
    pitch_fmin_hz: float = 65.0
    pitch_fmax_hz: float = 500.0
    pitch_hop_s: float = 0.03
    fold_above_st: float = 9.0
    pause_min_s: float = 0.25
    gate_below_peak_db: float = 30.0
    syllable_prominence_db: float = 3.0
    syllables_per_char: float = 1.0
    pitch_max_s_per_turn: float = 4.0
    agent_rate_min_cpm: float = 180.0
    agent_rate_max_cpm: float = 330.0
    rate_min_voiced_s: float = 1.5
    rate_min_chars: int = 6
    rate_disagreement: float = 0.3
    flat_max_semitone_std: float = 2.0
    flat_min_voiced_s: float = 8.0
    baseline_voiced_s: float = 6.0
    loudness_rise_db: float = 6.0
    pitch_rise_st: float = 3.0
    min_arousal: float = 1.0
    arousal_min_voiced_s: float = 1.0


def _number(section: Any, key: str, path: Path, lo: float | None = None, hi: float | None = None) -> float:
    value = float(require(section, key, (int, float), path))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise RuleFileError(path, section.line_of(key), f"{key!r} must be between {lo} and {hi}, not {value}")
    return value


def _band(section: Any, key: str, path: Path) -> tuple[float, float]:
    value = require(section, key, list, path)
    line = section.line_of(key)
    if len(value) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise RuleFileError(path, line, f"{key!r} must be [min, max] numbers, not {list(value)!r}")
    lo, hi = float(value[0]), float(value[1])
    if not 0 < lo < hi:
        raise RuleFileError(path, line, f"{key!r} needs 0 < min < max, not [{lo}, {hi}]")
    return lo, hi


def load_acoustic_bands(rules_dir: Path | None = None) -> AcousticBands:
    """Read and check ``rules/acoustic.yaml``; a bad value raises :class:`RuleFileError` at its line."""
    path = rule_file(rules_dir, ACOUSTIC_FILE)
    data = load_rule_file(path)
    only_keys(data, set(SECTION_KEYS), path, "acoustic.yaml")
    analysis = require(data, "analysis", dict, path)
    rate = require(data, "speech_rate", dict, path)
    flat = require(data, "flat_tone", dict, path)
    agit = require(data, "customer_agitation", dict, path)
    for section, keys in SECTION_KEYS.items():
        only_keys(data[section], keys, path, section)
    fmin = _number(analysis, "pitch_fmin_hz", path, 40, 200)
    fmax = _number(analysis, "pitch_fmax_hz", path, 200, 1000)
    if fmax <= fmin * 2:
        raise RuleFileError(path, analysis.line_of("pitch_fmax_hz"), "pitch_fmax_hz must exceed 2 x pitch_fmin_hz")
    rate_lo, rate_hi = _band(rate, "agent_band_cpm", path)
    return AcousticBands(
        path=path,
        pitch_fmin_hz=fmin,
        pitch_fmax_hz=fmax,
        pitch_hop_s=_number(analysis, "pitch_hop_s", path, 0.005, 0.05),
        fold_above_st=_number(analysis, "octave_fold_above_st", path, 6, 12),
        pause_min_s=_number(analysis, "pause_min_s", path, 0.05, 2.0),
        gate_below_peak_db=_number(analysis, "gate_below_peak_db", path, 10, 60),
        syllable_prominence_db=_number(analysis, "syllable_prominence_db", path, 0.5, 12),
        syllables_per_char=_number(rate, "syllables_per_char", path, 0.5, 2.0),
        pitch_max_s_per_turn=_number(analysis, "pitch_max_s_per_turn", path, 1, 600),
        agent_rate_min_cpm=rate_lo,
        agent_rate_max_cpm=rate_hi,
        rate_min_voiced_s=_number(rate, "min_voiced_s", path, 0.3, 30),
        rate_min_chars=int(_number(rate, "min_chars", path, 1, 100)),
        rate_disagreement=_number(rate, "asr_acoustic_disagreement", path, 0.05, 2.0),
        flat_max_semitone_std=_number(flat, "max_semitone_std", path, 0.1, 12),
        flat_min_voiced_s=_number(flat, "min_voiced_s", path, 1, 600),
        baseline_voiced_s=_number(agit, "baseline_voiced_s", path, 1, 120),
        loudness_rise_db=_number(agit, "loudness_rise_db", path, 0.5, 40),
        pitch_rise_st=_number(agit, "pitch_rise_st", path, 0.5, 24),
        min_arousal=_number(agit, "min_arousal", path, 0.1, 10),
        arousal_min_voiced_s=_number(agit, "min_turn_voiced_s", path, 0.1, 60),
    )
