"""The acoustic stage: how each party sounds (pace, pitch, loudness, pauses, arousal), with librosa.

``measure`` computes the figures from each party's own audio; ``bands`` reads the numbers of
``rules/acoustic.yaml`` that the measuring and the acoustic checks use. Judging the figures is a
check: :mod:`qa_audio.checks.acoustic`.
"""
