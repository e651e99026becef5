"""Shared fixtures. The models are real (never faked) and loaded once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa_audio.rule_files import DEFAULT_RULES_DIR

# the paths and builders the tests share are in tests/helpers.py; fixtures only here


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A private copy of the shipped rules to break."""
    dst = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, dst, ignore=shutil.ignore_patterns("*.md"))
    return dst


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


@pytest.fixture(scope="session")
def chromium():
    """A headless Debian Chromium under Selenium (tests/browser.py), shared by the browser tests.

    Fails, never skips, where chromium or chromium-driver is missing: setup.sh installs them.
    """
    from tests import browser

    problem = browser.missing()
    if problem:
        pytest.fail(problem, pytrace=False)
    with browser.start_chromium() as driver:
        yield driver
