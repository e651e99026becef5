"""Judging how each party sounds: the acoustic figures against the bands of ``rules/acoustic.yaml``.

Keys ``rule``, ``role``, ``speaker``, ``start``, ``end``, ``text``, ``confidence`` (0-1), ``value``,
``unit``, ``band`` (``{"min": .., "max": ..}``, either may be null), ``direction`` (null unless
``speech_rate``) and ``detail`` (figures behind the call). Rules:

- ``speech_rate``: an agent turn whose pace is outside ``speech_rate.agent_band_cpm``;
  ``direction`` is ``too_fast`` or ``too_slow``; ``detail.source`` says whether the ASR character
  rate or the acoustic syllable rate was judged (the latter when they disagree).
- ``flat_tone``: the agent's pitch variability (semitone std over the whole call) below
  ``flat_tone.max_semitone_std``; start/end span the agent's turns.
- ``customer_agitation``: a run of consecutive customer turns whose arousal index is at least
  ``customer_agitation.min_arousal``; ``value`` is the highest index in the run.
"""

from __future__ import annotations

from qa_audio.acoustic.bands import AcousticBands
from qa_audio.acoustic.measure import Acoustics, PartyAcoustics, TurnAcoustics
from qa_audio.schema import AcousticDetails, Finding, Transcript


def _confidence(margin: float, full_at: float) -> float:
    """0.5 at the band edge rising to 1.0 at ``full_at`` beyond it (relative)."""
    return float(min(1.0, 0.5 + 0.5 * max(0.0, margin) / full_at))


def judged_rate(turn: TurnAcoustics, bands: AcousticBands) -> tuple[float | None, str]:
    """The pace to judge a turn by, and its source ("asr" or "acoustic").

    The ASR character rate is the finer figure (within 1 % of truth on clean text), but ASR drops
    syllables in rushed speech, which makes a rushed greeting look normal. The syllable counter
    errs the other way (merges syllables above ~6/s: -20 % at tempo 1.6). So when the two disagree
    by more than the tolerance, the higher one is judged: each can only under-count.
    """
    acoustic = (
        turn.syllable_rate_spm / bands.syllables_per_char if turn.syllable_rate_spm is not None else None
    )
    asr = turn.char_rate_cpm
    if asr is None:
        return acoustic, "acoustic"
    if acoustic is None or abs(asr / acoustic - 1) <= bands.rate_disagreement or asr >= acoustic:
        return asr, "asr"
    return acoustic, "acoustic"


def acoustic_findings(acoustics: Acoustics, transcript: Transcript, bands: AcousticBands) -> list[Finding]:
    """Pace outliers of agent turns, a flat agent tone and customer agitation, as findings."""
    findings: list[Finding] = []
    texts = {i: t.text for i, t in enumerate(transcript.turns)}
    lo, hi = bands.agent_rate_min_cpm, bands.agent_rate_max_cpm

    for t in acoustics.turns:
        if t.role != "agent" or t.voiced_s < bands.rate_min_voiced_s:
            continue
        if max(t.chars, t.syllables) < bands.rate_min_chars:
            continue
        rate, source = judged_rate(t, bands)
        if rate is None or lo <= rate <= hi:
            continue
        direction = "too_fast" if rate > hi else "too_slow"
        margin = rate / hi - 1 if rate > hi else 1 - rate / lo
        conf = _confidence(margin, 0.25)
        if source == "acoustic":
            conf *= 0.8  # the syllable count is the coarser estimate (±15 % on real speech)
        findings.append(
            Finding(
                rule="speech_rate",
                role=t.role,
                start=t.start,
                end=t.end,
                text=texts.get(t.turn_index, ""),
                confidence=conf,
                details=AcousticDetails(
                    speaker=t.speaker,
                    value=rate,
                    unit="字/分钟",
                    band={"min": lo, "max": hi},
                    direction=direction,
                    detail={
                    "source": source,
                    "char_rate_cpm": t.char_rate_cpm,
                    "syllable_rate_spm": t.syllable_rate_spm,
                    "voiced_s": t.voiced_s,
                    "chars": t.chars,
                },
                ),
            )
        )

    for p in acoustics.parties.values():
        if p.role != "agent" or p.pitch_std_st is None or p.voiced_s < bands.flat_min_voiced_s:
            continue
        if p.pitch_std_st >= bands.flat_max_semitone_std:
            continue
        own = [t for t in acoustics.turns if t.speaker == p.speaker]
        margin = 1 - p.pitch_std_st / bands.flat_max_semitone_std
        findings.append(
            Finding(
                rule="flat_tone",
                role=p.role,
                start=min(t.start for t in own),
                end=max(t.end for t in own),
                text=f"语调平淡：音高标准差 {p.pitch_std_st:.1f} 半音",
                confidence=_confidence(margin, 0.5) * min(1.0, p.voiced_s / (2 * bands.flat_min_voiced_s) + 0.5),
                details=AcousticDetails(
                    speaker=p.speaker,
                    value=p.pitch_std_st,
                    unit="semitones (std)",
                    band={"min": bands.flat_max_semitone_std, "max": None},
                    detail={"pitch_range_st": p.pitch_range_st, "pitch_median_hz": p.pitch_median_hz,
                        "voiced_s": p.voiced_s},
                ),
            )
        )

    for p in acoustics.parties.values():
        if p.role != "customer":
            continue
        run: list[TurnAcoustics] = []
        own = [t for t in acoustics.turns if t.speaker == p.speaker]
        for t in [*own, None]:
            hot = (
                t is not None
                and t.arousal is not None
                and t.voiced_s >= bands.arousal_min_voiced_s
                and t.arousal >= bands.min_arousal
            )
            if hot:
                run.append(t)
                continue
            if t is not None and t.arousal is None:
                continue  # too short to measure: does not break a run
            if run:
                findings.append(_agitation(run, p, texts, bands))
                run = []
    findings.sort(key=lambda f: (f.start, f.rule))
    return findings


def _agitation(
    run: list[TurnAcoustics], p: PartyAcoustics, texts: dict[int, str], bands: AcousticBands
) -> Finding:
    peak = max(run, key=lambda t: t.arousal or 0.0)
    value = float(peak.arousal or 0.0)
    return Finding(
        rule="customer_agitation",
        role="customer",
        start=run[0].start,
        end=run[-1].end,
        text=" / ".join(texts.get(t.turn_index, "") for t in run),
        confidence=_confidence(value / bands.min_arousal - 1, 1.0) * (0.8 if len(run) == 1 else 1.0),
        details=AcousticDetails(
            speaker=p.speaker,
            value=value,
            unit="arousal index",
            band={"min": None, "max": bands.min_arousal},
            detail={
            "loudness_delta_db": peak.loudness_delta_db,
            "pitch_delta_st": peak.pitch_delta_st,
            "baseline_loudness_db": p.baseline_loudness_db,
            "baseline_pitch_hz": p.baseline_pitch_hz,
            "turns": [t.turn_index for t in run],
        },
        ),
    )
