"""The HTML report in a real headless Chromium: it loads cleanly, plays, seeks, draws, and shows text as text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from qa_audio.report.html import render_html
from qa_audio.rubric import load_rubric
from tests.browser import console_errors, open_page, run_js, wait_for
from tests.helpers import analysis_from_result, good_call, phrase, with_finding

INJECTED = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The report page of a call (no models): a severe phrase, dead air, and markup typed into a turn."""
    folder = tmp_path_factory.mktemp("report")
    result = good_call()
    result["turns"][1]["text"] = f"我想查一下话费。{INJECTED}"
    result = with_finding(result, "silence", start=18.0, end=24.6, role="none", duration=6.6, hold_notice=False)
    result["findings"].append(phrase(20.0, "0-2", "你问我我问谁"))
    analysis = analysis_from_result(result, load_rubric())
    wav = folder / "call.wav"
    t = np.arange(int(40 * 8000)) / 8000  # as long as the call, so every evidence time is inside the audio
    sf.write(wav, 0.2 * np.sin(2 * np.pi * 440 * t), 8000, subtype="PCM_16")
    page = folder / "report.html"
    page.write_text(render_html(analysis, wav), encoding="utf-8")
    return page


def _duration(driver) -> float:
    return wait_for(lambda: run_js(driver, "var d=document.getElementById('player').duration;"
                                           "return isFinite(d) && d > 0 ? d : 0;"),
                    timeout=10, what="the audio's duration")


def _position(driver) -> float:
    return float(run_js(driver, "return document.getElementById('player').currentTime"))


def test_page_loads_without_console_errors_and_the_audio_has_a_duration(chromium, report):
    open_page(chromium, report)
    assert run_js(chromium, "return document.getElementById('player') !== null")
    assert run_js(chromium, "return document.getElementById('player').tagName") == "AUDIO"
    assert _duration(chromium) == pytest.approx(40.0, abs=0.1)
    assert console_errors(chromium) == []


def test_first_evidence_link_seeks_the_player(chromium, report):
    open_page(chromium, report)
    _duration(chromium)
    link = chromium.find_element(By.CSS_SELECTOR, "a.seek")
    target = float(link.get_attribute("data-t"))
    # park the player well away from the link's time first, so the seek is seen whatever that time is
    away = target + 10.0 if target < 25.0 else 1.0
    run_js(chromium, "document.getElementById('player').currentTime = arguments[0]", away)
    wait_for(lambda: abs(_position(chromium) - away) < 0.1, what="the player to park")
    run_js(chromium, "arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()
    wait_for(lambda: abs(_position(chromium) - target) < 0.5, what=f"the player to seek to {target}")
    run_js(chromium, "document.getElementById('player').pause()")
    position = _position(chromium)
    assert position == pytest.approx(target, abs=0.5)  # the click also starts playback, so allow a little drift
    assert console_errors(chromium) == []


def test_timeline_is_drawn(chromium, report):
    open_page(chromium, report)
    box = run_js(chromium, "var r=document.querySelector('svg#timeline').getBoundingClientRect();"
                           "return [r.width, r.height];")
    assert box[0] > 0 and box[1] > 0, box
    marks = run_js(chromium, "return Array.from(document.querySelectorAll('svg#timeline .seekable'))"
                             ".map(function(el){var b=el.getBBox(); return b.width * b.height;});")
    assert marks and all(area > 0 for area in marks), marks


def test_markup_in_a_transcript_is_shown_as_text(chromium, report):
    open_page(chromium, report)  # an alert here would also fail every later command (unhandled prompt)
    with pytest.raises(NoAlertPresentException):
        chromium.switch_to.alert.text  # noqa: B018 - reading the alert is what asks the browser for one
    assert INJECTED in run_js(chromium, "return document.body.innerText")
    turns = run_js(chromium, "return Array.from(document.querySelectorAll('.turn')).map(function(el){"
                             "return el.textContent;});")
    assert any(INJECTED in text for text in turns), turns
    injected = run_js(chromium, "return Array.from(document.scripts).filter(function(s){"
                                "return s.textContent.indexOf('alert(1)') >= 0;}).length")
    assert injected == 0
    assert console_errors(chromium) == []
