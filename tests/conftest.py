"""Shared fixtures. The models are real (never faked) and loaded once per test session."""

from __future__ import annotations

import pytest

# the shared paths and builders live in tests/helpers.py; re-exported for test modules that still
# import them from here
from tests.helpers import AUDIO_EXTENSIONS, DATA, REAL_SPEECH, ROOT, SAMPLE_CALLS, sample_call_truths  # noqa: F401


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
