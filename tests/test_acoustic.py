"""The acoustic layer against audio whose answers are known by construction (see bench/acoustic.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from qa_audio.acoustic.bands import load_acoustic_bands
from qa_audio.acoustic.measure import analyze_acoustics, count_chars
from qa_audio.checks.acoustic import acoustic_findings, judged_rate
from qa_audio.rule_files import DEFAULT_RULES_DIR, RuleFileError

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_acoustic", ROOT / "bench" / "acoustic.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)  # type: ignore[union-attr]

CLIP = "rapidasr_asr_example_zh.wav"


@pytest.fixture(scope="module")
def bands():
    return load_acoustic_bands()


def test_count_chars_counts_hanzi_and_digits_not_punctuation():
    assert count_chars("您好，工号1234为您服务！") == 12
    assert count_chars("ok?。") == 0


def test_bad_band_names_file_and_line(tmp_path):
    text = (DEFAULT_RULES_DIR / "acoustic.yaml").read_text(encoding="utf-8")
    bad = text.replace("agent_band_cpm: [150, 380]", "agent_band_cpm: [380, 150]")
    assert bad != text
    (tmp_path / "acoustic.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(RuleFileError) as err:
        load_acoustic_bands(tmp_path)
    line = next(i for i, s in enumerate(bad.splitlines(), 1) if "agent_band_cpm" in s)
    assert err.value.line == line


@pytest.mark.parametrize("hz", [90, 150, 240])
@pytest.mark.parametrize("channel", ["clean", "phone"])
def test_pitch_median_of_tone_within_a_semitone(bands, hz, channel):
    y = bench.synth_tone(hz, hz, dur=1.5)
    y = bench.telephone(y) if channel == "phone" else y
    t = analyze_acoustics({"A": y}, bench.one_turn(y, ""), bands).turns[0]
    assert abs(12 * np.log2(t.pitch_median_hz / hz)) < 1.0


def test_glide_range_and_std_in_semitones(bands):
    y = bench.telephone(bench.synth_tone(100, 200, dur=2.0))  # one octave, linear in semitones
    t = analyze_acoustics({"A": y}, bench.one_turn(y, ""), bands).turns[0]
    assert t.pitch_std_st == pytest.approx(12 / np.sqrt(12), abs=0.5)
    assert t.pitch_range_st == pytest.approx(12 * 0.9, abs=1.0)
    # A monotone voice is flat by the band, the glide is not.
    assert t.pitch_std_st > bands.flat_max_semitone_std


@pytest.fixture(scope="module")
def clip_cases(bands):
    """The FunASR sentence (19 chars) at three tempos through the telephone channel."""
    text = bench.transcripts()[CLIP]
    v0 = bench.voiced_truth(CLIP, bands)
    cases = {}
    for x in (0.7, 1.0, 1.6):
        y = bench.telephone(bench.tempo_fixture(CLIP, x))
        cases[x] = (y, text, count_chars(text) / (v0 / x) * 60)
    return cases


@pytest.mark.parametrize("x", [0.7, 1.0, 1.6])
def test_speech_rate_within_ten_percent_of_truth(bands, clip_cases, x):
    y, text, truth = clip_cases[x]
    t = analyze_acoustics({"A": y}, bench.one_turn(y, text), bands).turns[0]
    assert t.char_rate_cpm == pytest.approx(truth, rel=0.10)
    # The acoustic syllable rate does not read the text: looser, but it must track the tempo.
    assert t.syllable_rate_spm == pytest.approx(truth, rel=0.30)


def test_fast_turn_flagged_normal_not(bands, clip_cases):
    flagged = {}
    for x in (1.0, 1.6):
        y, text, _ = clip_cases[x]
        tr = bench.one_turn(y, text)
        flagged[x] = [f for f in acoustic_findings(analyze_acoustics({"A": y}, tr, bands), tr, bands)
                      if f.rule == "speech_rate"]
    assert flagged[1.0] == []
    assert [f.details.direction for f in flagged[1.6]] == ["too_fast"]
    d = flagged[1.6][0].to_dict()
    assert {"rule", "role", "start", "end", "text", "confidence"} <= d.keys() and 0 < d["confidence"] <= 1
    assert d["value"] > d["band"]["max"]


def test_garbled_transcript_cannot_fake_a_normal_rate(bands, clip_cases):
    y, text, _ = clip_cases[1.6]
    # An ASR that dropped two syllables in three: its character rate would look moderate.
    short = text[::3]
    tr = bench.one_turn(y, short)
    t = analyze_acoustics({"A": y}, tr, bands).turns[0]
    _, _, truth = clip_cases[1.6]
    assert t.char_rate_cpm < 0.6 * truth  # the garbled ASR figure is far too low
    rate, source = judged_rate(t, bands)
    # The judged pace falls back on the syllable count, which does not read the text.
    assert source == "acoustic" and rate == pytest.approx(truth, rel=0.30)


def _call(raise_db: float, raise_st: float, bands):
    """Agent tone, then customer turns: two calm ones, then one raised by the given amounts."""
    sr = 16000
    seg = []
    t = 0.3
    turns = []
    for role, hz, gain in [("agent", 200, 1.0), ("customer", 120, 1.0), ("agent", 200, 1.0),
                           ("customer", 120, 1.0), ("agent", 200, 1.0),
                           ("customer", 120 * 2 ** (raise_st / 12), 10 ** (raise_db / 20))]:
        y = bench.telephone(bench.synth_tone(hz, hz * 1.2, dur=3.0) * gain)
        turns.append((role, t, t + 3.0, "您好请问有什么可以帮您"))
        seg.append((role, int(t * sr), y))
        t += 3.5
    n = int((t + 0.5) * sr)
    chans = {"agent": np.zeros(n, np.float32), "customer": np.zeros(n, np.float32)}
    for role, i, y in seg:
        chans[role][i : i + y.size] += y
    return chans, bench.oracle_transcript(turns, n / sr)


def test_customer_agitation_flagged_when_louder_and_higher(bands):
    chans, tr = _call(8.0, 4.0, bands)
    a = analyze_acoustics(chans, tr, bands)
    hot = [f for f in acoustic_findings(a, tr, bands) if f.rule == "customer_agitation"]
    assert len(hot) == 1 and hot[0].start == pytest.approx(tr.turns[5].start)
    assert hot[0].details.detail["loudness_delta_db"] == pytest.approx(8.0, abs=1.5)
    assert hot[0].details.detail["pitch_delta_st"] == pytest.approx(4.0, abs=0.7)


def test_calm_customer_not_flagged_and_json(bands):
    chans, tr = _call(0.0, 0.0, bands)
    a = analyze_acoustics(chans, tr, bands)
    assert not [f for f in acoustic_findings(a, tr, bands) if f.rule == "customer_agitation"]
    d = json.loads(json.dumps(a.to_dict()))
    assert set(d["parties"]) == {"agent", "customer"} and len(d["turns"]) == 6
    assert d["parties"]["customer"]["baseline_pitch_hz"] == pytest.approx(120 * 1.2**0.5, rel=0.06)
    assert d["mono"] is False


def test_mono_uses_only_own_intervals(bands):
    chans, tr = _call(0.0, 0.0, bands)
    mix = (chans["agent"] + chans["customer"]).astype(np.float32)
    a = analyze_acoustics({"agent": mix, "customer": mix}, tr, bands)
    assert a.mono
    by_role = {p.role: p.pitch_median_hz for p in a.parties.values()}
    assert by_role["agent"] == pytest.approx(200 * 1.2**0.5, rel=0.06)
    assert by_role["customer"] == pytest.approx(120 * 1.2**0.5, rel=0.06)
