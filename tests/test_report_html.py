"""The HTML report: one self-contained page with the audio, the sheet, the timeline and the transcript."""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from qa_audio.pipeline import CallAnalysis
from qa_audio.report.html import render_html
from qa_audio.rubric import load_rubric
from qa_audio.rule_files import DEFAULT_RULES_DIR
from tests.helpers import analysis_from_result, good_call, phrase, with_finding


def _tone(path: Path, subtype: str, fmt: str) -> Path:
    t = np.arange(8000) / 8000
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), 8000, format=fmt, subtype=subtype)
    return path


@pytest.fixture()
def call() -> CallAnalysis:
    """A call with every kind of timeline mark: speech, dead air, talk-over and a severe phrase."""
    result = with_finding(good_call(), "silence", start=18.0, end=24.6, role="none", duration=6.6, hold_notice=False)
    result = with_finding(result, "interruption", start=8.0, end=9.0, overlap_s=1.0)
    result["findings"].append(phrase(20.0, "0-2", "你问我我问谁"))
    return analysis_from_result(result, load_rubric())


def _audio_src(page: str) -> tuple[str, bytes]:
    match = re.search(r'<audio id="player"[^>]*src="data:([^;]+);base64,([A-Za-z0-9+/=]+)"', page)
    assert match, "no embedded audio element"
    return match.group(1), base64.b64decode(match.group(2))


def test_page_embeds_playable_audio_and_reencodes_g711(tmp_path, call):
    wav = _tone(tmp_path / "call.wav", "ULAW", "WAV")
    mime, data = _audio_src(render_html(call, wav))
    assert mime == "audio/wav"
    # Chromium does not play G.711 WAV: the page carries a PCM16 copy of the same samples
    assert sf.info(io.BytesIO(data)).subtype == "PCM_16"
    assert sf.info(io.BytesIO(data)).frames == 8000


def test_flac_is_embedded_as_is(tmp_path, call):
    flac = _tone(tmp_path / "call.flac", "PCM_16", "FLAC")
    mime, data = _audio_src(render_html(call, flac))
    assert mime == "audio/flac"
    assert data == flac.read_bytes()


def test_page_has_sheet_timeline_and_transcript(tmp_path, call):
    page = render_html(call, _tone(tmp_path / "call.wav", "PCM_16", "WAV"))
    assert '<svg id="timeline"' in page
    assert page.count('class="speech agent seekable"') == 1 and page.count('class="speech customer seekable"') == 1
    assert 'class="deadair seekable" data-t="18.0"' in page
    assert 'class="overlap seekable" data-t="8.0"' in page
    assert 'class="forbidden severe seekable" data-t="20.0"' in page
    assert '<table class="sheet">' in page
    for entry in call.rubric.items:
        assert f"<td>{entry.id}</td><td>{entry.name}</td>" in page
    assert "该坐席存在的主要问题" in page and "改善建议" in page and "致命错误" in page
    assert page.count('class="turn agent"') == 3 and page.count('class="turn customer"') == 1
    assert "请问有什么可以帮您" in page


def test_every_evidence_link_seeks_to_its_time(tmp_path, call):
    page = render_html(call, _tone(tmp_path / "call.wav", "PCM_16", "WAV"))
    targets = {float(t) for t in re.findall(r'<a class="seek" href="#t=([0-9.]+)" data-t="\1">', page)}
    assert any(entry.evidence for entry in call.rubric.items)
    for entry in call.rubric.items:
        for evidence in entry.evidence:
            assert round(float(evidence.start), 2) in targets, (entry.id, evidence)
    for turn in call.transcript.turns:
        assert round(turn.start, 2) in targets
    # the player seeks on any element carrying data-t
    assert "querySelectorAll('[data-t]')" in page and "player.currentTime=t" in page


def test_nothing_is_fetched_from_outside(tmp_path, call):
    page = render_html(call, _tone(tmp_path / "call.wav", "PCM_16", "WAV"))
    assert "http://" not in page and "https://" not in page and "url(" not in page
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # every src/href is inline data or an anchor
    assert "default-src 'none'" in page


def test_page_shows_the_sheet_of_the_rules_it_was_given(tmp_path):
    """--rules DIR: the page shows that folder's sheet, not the shipped one."""
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    sheet_file = rules / "rubric.yaml"
    sheet_file.write_text(sheet_file.read_text(encoding="utf-8").replace("title: 客服人员考核评分表",
                                                                         "title: 分部专用评分表"), encoding="utf-8")
    result = with_finding(good_call(), "closing", level=1)
    page = render_html(analysis_from_result(result, load_rubric(rules)), _tone(tmp_path / "call.wav", "PCM_16", "WAV"))
    assert "分部专用评分表（预填）" in page and "客服人员考核评分表" not in page
    assert "“祝您生活愉快，再见！”" in page
