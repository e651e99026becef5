"""The real models on a real sample call whose customer reads a mobile number: no output, the store
or the export holds it, and the report's player plays a tone over it."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
import soundfile

from qa_audio.batch.export import export_rows
from qa_audio.batch.store import Store, hash_file
from qa_audio.report.html import render_html
from qa_audio.report.json_output import to_json, to_json_dict
from qa_audio.report.markdown import render_markdown
from tests.helpers import SAMPLE_CALLS

pytestmark = pytest.mark.slow

CALL05 = SAMPLE_CALLS / "call05_forbidden_severe_stereo.wav"
# Seven or more digits in any written form, with the separators a reader might put between groups:
# an independent check of the outputs, not the detector's own rules.
LONG_NUMBER = re.compile(r"(?:[0-9０-９零〇一二三四五六七八九幺两][\s,，、\-]?){7,}")


def _strings(value: Any, key: str = "") -> list[str]:
    """Every text in a JSON value but the content hash that names a call and the store's timestamps."""
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "call_id" and not k.endswith("_at") for s in _strings(v, k)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, key)]
    return [value] if isinstance(value, str) else []


class _PageText(HTMLParser):
    """What a reader of the page sees: its text and its attributes' values, not its script or style."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._skip += tag in ("script", "style")
        self.texts += [v for k, v in attrs if v and k in ("title", "aria-label")]

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.texts.append(data)


def _page_texts(page: str) -> list[str]:
    parser = _PageText()
    parser.feed(page)
    return parser.texts


@pytest.fixture(scope="module")
def call05(analyzer):
    return analyzer.analyze(CALL05)


def test_the_number_is_found_with_the_words_times(call05):
    [span] = call05.personal_data
    assert (span.type, span.role, span.mask, span.basis) == ("mobile", "customer", "137****5678", "pattern")
    # the customer reads it in the 4th turn, 17-22 s into the call (sample_calls/README.md)
    assert 17.0 < span.start < span.end < 22.5


def test_no_output_holds_the_number(call05, tmp_path):
    outputs = {"json": _strings(json.loads(to_json(call05))), "md": render_markdown(call05).splitlines(),
               "html": _page_texts(render_html(call05, CALL05))}
    for name, texts in outputs.items():
        leaks = [m.group() for text in texts for m in [LONG_NUMBER.search(text)] if m]
        assert leaks == [], name
        assert any("137****5678" in text for text in texts), name
    assert "手机号 1 处" in "".join(outputs["md"]) and "已遮蔽客户信息" in "".join(outputs["html"])


def test_the_store_and_the_export_hold_only_the_mask(call05, tmp_path):
    with Store(tmp_path / "qa.db") as store:
        store.add_result(hash_file(CALL05), to_json_dict(call05))
        rows = export_rows(store)
        stored = [json.loads(row[0]) for row in store.conn.execute("SELECT result_json FROM calls")]
        stored += [json.loads(row[0]) for row in store.conn.execute("SELECT data FROM findings")]
        stored += [json.loads(row[0]) for row in store.conn.execute("SELECT data FROM rubric_items")]
    texts = _strings(stored) + _strings(rows)
    assert [t for t in texts if LONG_NUMBER.search(t)] == []
    assert any("137****5678" in t for t in _strings(stored[0]))


def test_the_players_audio_has_a_tone_over_the_number(call05):
    page = render_html(call05, CALL05)
    payload = re.search(r'<audio id="player"[^>]*src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page).group(1)
    played, rate = soundfile.read(io.BytesIO(base64.b64decode(payload)), always_2d=True)
    original, _ = soundfile.read(str(CALL05), always_2d=True)
    [span] = call05.personal_data
    inside = played[int((span.start + 0.05) * rate):int((span.end - 0.05) * rate), 1]
    spectrum = np.abs(np.fft.rfft(inside))
    assert abs(np.argmax(spectrum) * rate / len(inside) - 1000) < 10
    # outside the padded span the customer's channel is the recording's (PCM16 of the G.711 samples)
    before = slice(int(5 * rate), int((span.start - 0.2) * rate))
    assert np.max(np.abs(played[before] - original[before])) < 1e-3


def test_a_redacted_copy_says_no_number_to_the_asr(call05, analyzer, tmp_path):
    from qa_audio.redact.audio import write_redacted_audio
    from qa_audio.redact.rules import ToneSettings

    copy = tmp_path / "call05.wav"
    write_redacted_audio(CALL05, copy, call05.personal_data, ToneSettings(**call05.settings["personal_data"]["audio"]))
    heard = analyzer.analyze(copy)
    assert heard.personal_data == []  # nothing left to find: the tone replaced it
    customer = "".join(t.text for t in heard.transcript.turns if t.role == "customer")
    assert not LONG_NUMBER.search(customer)
    assert "投诉" in "".join(t.text for t in heard.transcript.turns)  # the rest of the call is still there


@pytest.mark.parametrize("name", ["pd05_bill_query_mono", "pd04_autopay_binding_stereo"])
def test_numbers_read_in_pieces_leave_no_digit_run_anywhere(analyzer, name):
    """Calls made for the redaction bench: a mobile read in two turns (the diarizer gives the first
    half to the agent), a landline with its area code, bank cards in groups and over two turns."""
    truth = json.loads((SAMPLE_CALLS / "personal_data" / f"{name}.truth.json").read_text(encoding="utf-8"))
    analysis = analyzer.analyze(SAMPLE_CALLS / "personal_data" / truth["file"])
    texts = _strings(json.loads(to_json(analysis))) + render_markdown(analysis).splitlines()
    assert [t for t in texts if LONG_NUMBER.search(t)] == []
    for item in truth["personal_data"]:
        if item["type"] in ("mobile", "landline", "bank_card", "id_card"):
            assert any(p.start < item["end"] + 0.3 and item["start"] - 0.3 < p.end
                       for span in analysis.personal_data for p in span.parts), item
    for number in truth["ordinary_numbers"]:
        covered = max((min(p.end, number["end"]) - max(p.start, number["start"])
                       for span in analysis.personal_data for p in span.parts), default=0.0)
        assert covered < 0.2, number  # 工号, amounts, dates stay
