"""Shared fixtures. The models are real (never faked) and loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE_CALLS = ROOT / "sample_calls"
REAL_SPEECH = SAMPLE_CALLS / "real_speech"  # bundled real Mandarin clips (see its README.md)
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


def sample_call_truths() -> list[dict]:
    from bench.metrics import load_truths

    return load_truths(SAMPLE_CALLS)


@pytest.fixture(scope="session")
def analyzer():
    from qa_audio.pipeline import Analyzer

    return Analyzer()


@pytest.fixture(scope="session")
def analyses(analyzer):
    """Every sample call analysed once, shared by the end-to-end tests."""
    cache: dict[str, object] = {}

    def get(truth: dict):
        if truth["name"] not in cache:
            cache[truth["name"]] = analyzer.analyze(truth["audio_path"])
        return cache[truth["name"]]

    return get
