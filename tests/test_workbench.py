"""The workbench's routes through Flask's test client: sign-in and its limits, sessions and CSRF on every
state change, who sees what, the queue in the export's order with its filters, the call page, the
recording with range requests, reviews with their history, calibration, agreement, reports, bad input.

The store holds real recordings (sample_calls/) with results in the documented shape, the sheet filled
by the real rubric; the browser tests (test_workbench_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from qa_audio.batch.export import ExportOptions, export_rows
from qa_audio.batch.reviews import calibration_pivot, is_calibration
from qa_audio.batch.store import Store
from qa_audio.workbench.settings import load_workbench_settings
from tests.workbench_helpers import PASSWORD, build_store, make_app, scores_form, sign_in


@pytest.fixture
def bench(tmp_path):
    db, rules, ids = build_store(tmp_path)
    return make_app(db, rules), db, ids


@pytest.fixture
def calibrated(tmp_path):
    (tmp_path / "calibrated").mkdir()
    db, rules, ids = build_store(tmp_path / "calibrated", share=1.0)
    return make_app(db, rules), db, ids


def rows(db, sql, *args):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def full_form(client, call_id, csrf, **overrides):
    """The untouched form, with the first allowed value for items that have no pre-score."""
    form = scores_form(client, call_id, csrf, **overrides)
    page = client.get(f"/calls/{call_id}").get_data(as_text=True)
    for name, value in list(form.items()):
        if name.startswith("score_") and value == "":
            select = re.search(rf'<select name="{name}".*?</select>', page, re.S).group(0)
            form[name] = re.findall(r'<option value="([^"]+)"', select)[0]
    form.update(overrides)
    return form


# ------------------------------------------------------------------------------ sign-in and sessions
def test_every_route_but_login_needs_a_session(bench):
    app, _, ids = bench
    client = app.test_client()
    for path in ("/", "/queue", f"/calls/{ids[0]}", f"/calls/{ids[0]}/audio", "/agreement", "/reports",
                 "/static/workbench.css", "/static/workbench.js"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/login" in answer.headers["Location"], path
    for path in ("/logout", "/assign", f"/calls/{ids[0]}/review"):
        assert client.post(path, data={}).status_code == 401, path
    login = client.get("/login")
    assert login.status_code == 200 and 'id="login-form"' in login.get_data(as_text=True)


def test_sign_in_sets_a_safe_cookie_and_signs_out(bench):
    app, db, _ = bench
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/login", data={"name": "insp1", "password": PASSWORD, "csrf_token": token})
    cookie = next(h for h in answer.headers.getlist("Set-Cookie") if h.startswith("qa_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    stored = rows(db, "SELECT token_hash FROM sessions")
    assert len(stored) == 1 and value not in stored[0][0], "only the token's hash is stored"
    queue = client.get("/queue")
    assert queue.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', queue.get_data(as_text=True)).group(1)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/queue").status_code == 302, "signed out"
    assert rows(db, "SELECT COUNT(*) FROM sessions") == [(0,)]


def test_passwords_are_argon2_hashes(bench):
    _, db, _ = bench
    hashes = [h for (h,) in rows(db, "SELECT password_hash FROM users")]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(PASSWORD in h for h in hashes)


def test_sign_in_without_its_token_or_with_a_wrong_password_is_refused(bench):
    app, _, _ = bench
    client = app.test_client()
    client.get("/login")
    assert client.post("/login", data={"name": "insp1", "password": PASSWORD}).status_code == 403
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    wrong = client.post("/login", data={"name": "insp1", "password": "wrong password!", "csrf_token": token})
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.get_data(as_text=True)
    assert client.get("/queue").status_code == 302


def test_failed_sign_ins_are_rate_limited_per_account(bench):
    app, _, _ = bench
    limit = load_workbench_settings().max_failures
    client = app.test_client()
    for _ in range(limit):
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post("/login", data={"name": "insp2", "password": "guess guess", "csrf_token": token}
                           ).status_code == 401
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = client.post("/login", data={"name": "insp2", "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 429 and "Retry-After" in refused.headers, "even the right password waits"
    sign_in(app, "insp1")  # another account from another client still signs in


def test_every_state_change_needs_the_sessions_csrf_token(bench):
    app, db, ids = bench
    client, csrf = sign_in(app, "lead1")
    form = full_form(client, ids[0], csrf)
    for token in (None, "not-the-token"):
        data = {k: v for k, v in form.items() if k != "csrf_token"}
        if token:
            data["csrf_token"] = token
        assert client.post(f"/calls/{ids[0]}/review", data=data).status_code == 403
        assert client.post("/assign", data={"call_id": ids[0], "inspector": "insp1",
                                            **({"csrf_token": token} if token else {})}).status_code == 403
        assert client.post("/logout", data={}).status_code == 403
    assert rows(db, "SELECT COUNT(*) FROM review_notes") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM assignments") == [(0,)]
    other, other_csrf = sign_in(app, "insp1")
    assert other_csrf != csrf
    assert client.post(f"/calls/{ids[0]}/review", data={**form, "csrf_token": other_csrf}).status_code == 403, \
        "another session's token is no good"
    assert client.post(f"/calls/{ids[0]}/review", data=form, headers={}).status_code == 302


def test_pages_load_nothing_from_elsewhere_and_are_not_cached(bench):
    app, _, ids = bench
    client, _ = sign_in(app, "lead1")
    for path in ("/queue", f"/calls/{ids[0]}", "/agreement"):
        answer = client.get(path)
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "http" not in policy
        assert answer.headers["Cache-Control"] == "no-store"
        body = answer.get_data(as_text=True)
        assert not re.search(r'(src|href)="(https?:)?//', body), path
        assert "<script>" not in body.replace('<script type="application/json"', ""), "no inline script"


# ------------------------------------------------------------------------------ the queue
def test_the_queue_is_the_exports_order(bench):
    app, db, _ = bench
    client, _ = sign_in(app, "lead1")
    page = client.get("/queue?status=pending_review").get_data(as_text=True)
    shown = re.findall(r'href="/calls/([0-9a-f]{64})"', page)
    settings = load_workbench_settings()
    with Store(db, read_only=True) as store:
        exported = export_rows(store, ExportOptions(sample=settings.random_sample, seed=settings.sample_seed,
                                                    low_confidence=settings.low_confidence,
                                                    low_total=settings.low_total))
    assert shown == [row["call_id"] for row in exported]
    assert exported[0]["review_reason"] == "fatal" and "致命" in page


def test_queue_filters_and_bad_filters(bench):
    app, db, ids = bench
    client, _ = sign_in(app, "lead1")
    fatal = client.get("/queue?flag=fatal").get_data(as_text=True)
    assert re.findall(r'href="/calls/([0-9a-f]{64})"', fatal) == [ids[0]]
    conn = sqlite3.connect(db)
    conn.execute("UPDATE call_metadata SET agent_id='A7' WHERE call_id=?", (ids[3],))
    conn.commit()
    conn.close()
    agent = client.get("/queue?agent=A7").get_data(as_text=True)
    assert re.findall(r'href="/calls/([0-9a-f]{64})"', agent) == [ids[3]]
    assert "没有符合条件" in client.get("/queue?until=2000-01-01").get_data(as_text=True)
    for bad in ("status=nope", "since=yesterday", "page=0", "page=x", "agent=" + "x" * 65):
        answer = client.get(f"/queue?{bad}")
        assert answer.status_code == 400, bad
        assert "Traceback" not in answer.get_data(as_text=True)


def test_paging(tmp_path):
    db, rules, ids = build_store(tmp_path)
    text = (rules / "workbench.yaml").read_text(encoding="utf-8")
    (rules / "workbench.yaml").write_text(text.replace("page_size: 50", "page_size: 2"), encoding="utf-8")
    client, _ = sign_in(make_app(db, rules), "lead1")
    pages = [re.findall(r'href="/calls/([0-9a-f]{64})"', client.get(f"/queue?page={n}&status=pending_review")
                        .get_data(as_text=True)) for n in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert sorted(sum(pages, [])) == sorted(ids)


def test_assignments_limit_what_inspectors_see(bench):
    app, db, ids = bench
    lead, csrf = sign_in(app, "lead1")
    assert lead.post("/assign", data={"call_id": [ids[0], ids[1]], "inspector": "insp1", "csrf_token": csrf,
                                      "back": "/queue"}).status_code == 302
    one, _ = sign_in(app, "insp1")
    two, _ = sign_in(app, "insp2")
    mine = re.findall(r'href="/calls/([0-9a-f]{64})"', one.get("/queue?assigned=insp1").get_data(as_text=True))
    assert sorted(mine) == sorted(ids[:2])
    theirs = re.findall(r'href="/calls/([0-9a-f]{64})"', two.get("/queue").get_data(as_text=True))
    assert ids[0] not in theirs and ids[1] not in theirs and ids[2] in theirs
    assert two.get(f"/calls/{ids[0]}").status_code == 403
    assert two.get(f"/calls/{ids[0]}/audio").status_code == 403
    assert one.get(f"/calls/{ids[0]}").status_code == 200
    assert rows(db, "SELECT what, inspector FROM review_history WHERE call_id=?", ids[0]) == [("assigned", "insp1")]
    refused = one.post("/assign", data={"call_id": ids[2], "inspector": "insp1",
                                        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"',
                                                                one.get("/queue").get_data(as_text=True)).group(1)})
    assert refused.status_code == 403, "only a lead assigns"
    assert lead.post("/assign", data={"call_id": ids[2], "inspector": "nobody", "csrf_token": csrf}).status_code == 400
    assert lead.post("/assign", data={"call_id": "../etc", "inspector": "insp1", "csrf_token": csrf}).status_code == 400


# ------------------------------------------------------------------------------ the call page and audio
def test_the_call_page_shows_the_sheet_evidence_and_metadata(bench):
    app, _, ids = bench
    client, _ = sign_in(app, "insp1")
    page = client.get(f"/calls/{ids[0]}").get_data(as_text=True)
    assert "call02_partial_script.wav" in page and 'id="timeline"' in page
    assert re.search(r'<a class="seek evidence" href="#t=14.00" data-t="14.00" data-item="7b"', page), \
        "the forbidden phrase is evidence of 7b and seeks the player"
    select = re.search(r'<select name="score_1a".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', select) == ["", "0", "2"], "only the scores its bands allow"
    select = re.search(r'<select name="score_7b".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', select) == [""] + [str(n) for n in range(16)]
    assert re.search(r'<option value="2" selected>2（预填）', select), "the fatal call's pre-score is chosen"
    assert "坐席 1024" in page, "the 工号 heard, as call metadata"
    assert 'src="/calls/' + ids[0] + '/audio"' in page


def test_a_transcript_with_markup_is_escaped(bench):
    app, _, ids = bench
    client, _ = sign_in(app, "insp1")
    page = client.get(f"/calls/{ids[3]}").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    rewrites = re.search(r'<p class="facts vocabulary" id="vocabulary">(.*?)</p>', page, re.S).group(1)
    assert '<a class="seek" href="#t=1.25" data-t="1.25">' in rewrites, "each rewrite seeks the player"
    assert "&lt;i&gt;心和通信→星河通信" in rewrites and "<i>" not in rewrites
    opening = re.search(r'<p class="facts vocabulary" id="opening">(.*?)</p>', page, re.S).group(1)
    assert '<a class="seek" href="#t=0.24" data-t="0.24">' in opening, "the greeting's second decoding seeks"
    assert "星河通信 &lt;b&gt;工号" in opening and "<b>" not in opening
    other = client.get(f"/calls/{ids[2]}").get_data(as_text=True)
    assert 'id="opening"' not in other, "no second decoding, no line"
    assert re.search(r'data-t="39.20">00:39.2</a><span class="text">（听不清）</span>', page), \
        "speech without words is a turn, shown as unintelligible"


def test_the_recording_is_served_with_range_requests(bench):
    app, _, ids = bench
    client, _ = sign_in(app, "insp1")
    whole = client.get(f"/calls/{ids[0]}/audio")
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.data[:4] == b"RIFF"
    part = client.get(f"/calls/{ids[0]}/audio", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and len(part.data) == 1000 and part.data == whole.data[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(whole.data)}"
    assert client.get(f"/calls/{ids[0]}/audio", headers={"Range": f"bytes={len(whole.data) + 10}-"}
                      ).status_code == 416


def test_a_moved_recording_is_a_clear_404(bench, tmp_path):
    app, _, ids = bench
    (tmp_path / "call03_minimal_script.wav").unlink()
    client, _ = sign_in(app, "insp1")
    answer = client.get(f"/calls/{ids[1]}/audio")
    assert answer.status_code == 404 and "not where it was analysed" in answer.get_data(as_text=True)
    assert client.get("/calls/" + "0" * 64).status_code == 404
    assert client.get("/calls/not-a-call").status_code == 404


def test_masked_spans_are_toned_and_originals_shown_only_to_leads(tmp_path):
    db, rules, ids = build_store(tmp_path)
    conn = sqlite3.connect(db)
    result = json.loads(conn.execute("SELECT result_json FROM calls WHERE call_id=?", (ids[2],)).fetchone()[0])
    result["personal_data"] = [{"type": "mobile", "role": "customer", "speaker": "CH1", "start": 1.0, "end": 3.0,
                                "mask": "137****5678", "confidence": 0.95, "basis": "pattern",
                                "parts": [{"where": "turns", "index": 1, "char_start": 0, "char_end": 11,
                                           "start": 1.0, "end": 3.0, "text": "13712345678"}]}]
    result["settings"] = {"personal_data": {"audio": {"tone_hz": 1000.0, "tone_dbfs": -12.0, "pad_s": 0.15}}}
    conn.execute("UPDATE calls SET result_json=? WHERE call_id=?", (json.dumps(result), ids[2]))
    conn.commit()
    conn.close()
    app = make_app(db, rules)
    inspector, _ = sign_in(app, "insp1")
    lead, _ = sign_in(app, "lead1")
    assert "13712345678" not in inspector.get(f"/calls/{ids[2]}").get_data(as_text=True)
    assert "13712345678" in lead.get(f"/calls/{ids[2]}").get_data(as_text=True)
    import io

    import numpy as np
    import soundfile

    played, rate = soundfile.read(io.BytesIO(inspector.get(f"/calls/{ids[2]}/audio").data), dtype="float32")
    original, _ = soundfile.read(tmp_path / "call04_forbidden_minor_mono.wav", dtype="float32")
    span = slice(int(1.5 * rate), int(2.5 * rate))
    tone = played[span] if played.ndim == 1 else played[span, 0]
    assert not np.allclose(tone, original[span] if original.ndim == 1 else original[span, 0], atol=1e-3)
    spectrum = np.abs(np.fft.rfft(tone))
    assert abs(np.argmax(spectrum) * rate / len(tone) - 1000) < 20, "the 1 kHz tone covers the number"
    outside = slice(int(5 * rate), int(6 * rate))
    assert np.allclose(played[outside], original[outside], atol=1e-3), "the rest is the recording"


# ------------------------------------------------------------------------------ reviews
def test_a_review_is_stored_with_the_prefill_beside_it_and_its_history(bench):
    app, db, ids = bench
    client, csrf = sign_in(app, "insp1")
    form = full_form(client, ids[0], csrf, score_7b="1", summary="态度需改进", then="stay")
    answer = client.post(f"/calls/{ids[0]}/review", data=form)
    assert answer.status_code == 302 and "saved=1" in answer.headers["Location"]
    assert rows(db, "SELECT inspector_score, prefill, inspector, source FROM reviews WHERE call_id=? AND "
                    "item_id='7b'", ids[0]) == [(1.0, 2.0, "insp1", "workbench")]
    assert rows(db, "SELECT status FROM calls WHERE call_id=?", ids[0]) == [("reviewed",)]
    assert rows(db, "SELECT summary FROM review_notes WHERE call_id=?", ids[0]) == [("态度需改进",)]
    page = client.get(f"/calls/{ids[0]}").get_data(as_text=True)
    assert 'id="my-review"' in page and "态度需改进" in page
    assert re.search(r'<option value="1" selected', re.search(r'<select name="score_7b".*?</select>', page,
                                                               re.S).group(0))
    # changed again: the old score stays in the history, nothing is overwritten without a trace
    client.post(f"/calls/{ids[0]}/review", data={**form, "score_7b": "0"})
    history = rows(db, "SELECT old_value, new_value FROM review_history WHERE call_id=? AND item_id='7b' "
                       "ORDER BY seq", ids[0])
    assert history[0] == (None, "1.0") and json.loads(history[1][0])["score"] == 1.0 and history[1][1] == "0.0"
    conn = sqlite3.connect(db)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM review_history")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE review_history SET new_value = '15'")
    finally:
        conn.rollback()
        conn.close()
    lead, _ = sign_in(app, "lead1")
    assert 'id="history"' in lead.get(f"/calls/{ids[0]}").get_data(as_text=True)


def test_a_review_with_a_score_the_bands_do_not_allow_is_refused(bench):
    app, db, ids = bench
    client, csrf = sign_in(app, "insp1")
    for bad, message in (({"score_1a": "1"}, "none of its bands"), ({"score_7b": "16"}, "above"),
                         ({"score_1a": "abc"}, "not a score"), ({"score_1a": ""}, "has no score"),
                         ({"summary": "x" * 6000}, "at most")):
        answer = client.post(f"/calls/{ids[0]}/review", data=full_form(client, ids[0], csrf, **bad))
        assert answer.status_code == 400 and message in answer.get_data(as_text=True), bad
    assert rows(db, "SELECT COUNT(*) FROM reviews") == [(0,)]


def test_submit_and_next_opens_the_next_call_of_the_queue(bench):
    app, _, ids = bench
    client, csrf = sign_in(app, "insp1")
    queue = re.findall(r'href="/calls/([0-9a-f]{64})"', client.get("/queue").get_data(as_text=True))
    answer = client.post(f"/calls/{queue[0]}/review", data=full_form(client, queue[0], csrf, then="next"))
    assert answer.headers["Location"].endswith(f"/calls/{queue[1]}")
    left = re.findall(r'href="/calls/([0-9a-f]{64})"', client.get("/queue").get_data(as_text=True))
    assert queue[0] not in left


def test_submit_and_next_takes_my_assigned_calls_first(bench):
    app, _, ids = bench
    lead, lead_csrf = sign_in(app, "lead1")
    client, csrf = sign_in(app, "insp1")
    queue = re.findall(r'href="/calls/([0-9a-f]{64})"', client.get("/queue").get_data(as_text=True))
    last = queue[-1]
    assigned = lead.post("/assign", data={"call_id": last, "inspector": "insp1", "csrf_token": lead_csrf})
    assert assigned.status_code == 302
    answer = client.post(f"/calls/{queue[0]}/review", data=full_form(client, queue[0], csrf, then="next"))
    assert answer.headers["Location"].endswith(f"/calls/{last}"), "the call a lead gave me, before the shared queue"


def test_a_second_inspector_is_refused_unless_the_call_is_a_calibration_call(bench, calibrated):
    app, db, ids = bench
    one, csrf1 = sign_in(app, "insp1")
    two, csrf2 = sign_in(app, "insp2")
    form = full_form(one, ids[0], csrf1)
    assert one.post(f"/calls/{ids[0]}/review", data=form).status_code == 302
    assert two.get(f"/calls/{ids[0]}").status_code == 403, "reviewed by insp1: not insp2's"
    assert two.post(f"/calls/{ids[0]}/review", data={**form, "csrf_token": csrf2}).status_code == 403
    # share 1.0: every call is reviewed twice, blind
    app, db, ids = calibrated
    one, csrf1 = sign_in(app, "insp1")
    two, csrf2 = sign_in(app, "insp2")
    three, csrf3 = sign_in(app, "insp3")
    assert one.post(f"/calls/{ids[0]}/review", data=full_form(one, ids[0], csrf1, score_7b="2")).status_code == 302
    todo = re.findall(r'href="/calls/([0-9a-f]{64})"', two.get("/queue").get_data(as_text=True))
    assert ids[0] in todo, "waiting for its second opinion"
    page = two.get(f"/calls/{ids[0]}").get_data(as_text=True)
    assert "确认评分" not in page and "insp1" not in page, "the second inspector does not see the first's scores"
    assert two.post(f"/calls/{ids[0]}/review", data=full_form(two, ids[0], csrf2, score_7b="12")).status_code == 302
    assert rows(db, "SELECT inspector, inspector_score FROM second_reviews WHERE call_id=? AND item_id='7b'",
                ids[0]) == [("insp2", 12.0)]
    assert rows(db, "SELECT inspector, inspector_score FROM reviews WHERE call_id=? AND item_id='7b'",
                ids[0]) == [("insp1", 2.0)]
    assert three.get(f"/calls/{ids[0]}").status_code == 403, "two opinions are enough"
    lead, _ = sign_in(app, "lead1")
    agreement = lead.get("/agreement").get_data(as_text=True)
    row = re.search(r'<tr data-item="7b">(.*?)</tr>', agreement, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[0] == "7b" and cells[1:5] == ["1", "100%", "100%", "—"], "machine vs the confirmed score"
    assert cells[5:9] == ["1", "0%", "0%", "0.00"], "insp1 2 vs insp2 12: three bands apart"


def test_the_calibration_share_holds_on_uniform_hashes():
    import hashlib

    ids = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(20_000)]
    share = sum(is_calibration(i, 0.1) for i in ids) / len(ids)
    assert 0.09 < share < 0.11
    assert calibration_pivot(0.0) == "00000000" and not is_calibration("0" * 64, 0.0)
    assert is_calibration("f" * 64, 1.0)


def test_reviews_imported_and_given_in_the_workbench_meet_in_one_table(bench, tmp_path):
    app, db, ids = bench
    sheet = tmp_path / "reviews.csv"
    sheet.write_text(f"call_id,item_id,inspector_score,inspector\n{ids[1]},1b,1,外部质检\n", encoding="utf-8")
    from typer.testing import CliRunner

    from qa_audio.cli import app as cli

    assert CliRunner().invoke(cli, ["import-reviews", str(sheet), "--db", str(db)]).exit_code == 0
    lead, csrf = sign_in(app, "lead1")
    page = lead.get(f"/calls/{ids[1]}").get_data(as_text=True)
    assert "外部质检" in page, "the lead sees the imported review"
    assert lead.post(f"/calls/{ids[1]}/review", data=full_form(lead, ids[1], csrf, score_1b="2")).status_code == 302
    assert rows(db, "SELECT inspector, inspector_score, source FROM reviews WHERE call_id=? AND item_id='1b'",
                ids[1]) == [("lead1", 2.0, "workbench")]
    history = rows(db, "SELECT source, old_value FROM review_history WHERE call_id=? AND item_id='1b' ORDER BY seq",
                   ids[1])
    assert history[0] == ("import", None) and json.loads(history[1][1])["inspector"] == "外部质检"
    agreement = CliRunner().invoke(cli, ["agreement", "--db", str(db)])
    assert agreement.exit_code == 0 and "1b" in agreement.output


# ------------------------------------------------------------------------------ lead pages
def test_lead_pages_are_refused_to_inspectors(bench):
    app, _, _ = bench
    client, _ = sign_in(app, "insp1")
    for path in ("/agreement", "/reports?by=agent"):
        answer = client.get(path)
        assert answer.status_code == 403 and "QA leads" in answer.get_data(as_text=True)


def test_the_report_links_each_moment_to_its_call_page(bench):
    app, _, ids = bench
    lead, _ = sign_in(app, "lead1")
    answer = lead.get("/reports?by=agent")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    links = re.findall(r'href="(/calls/[0-9a-f]{64}[^"]*)"', page)
    assert links and all(link.split("#")[0][len("/calls/"):] in ids for link in links)
    assert "file://" not in page
    assert lead.get("/reports?by=nobody").status_code == 400
    assert lead.get("/reports?since=someday").status_code == 400


def test_a_store_held_by_a_writer_answers_503_not_a_traceback(tmp_path):
    db, rules, ids = build_store(tmp_path)
    from qa_audio.workbench.app import create_app

    app = create_app(db, load_workbench_settings(rules), rules_dir=rules, busy_timeout=0.2)
    client, csrf = sign_in(app, "insp1")
    form = full_form(client, ids[0], csrf)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        answer = client.post(f"/calls/{ids[0]}/review", data=form)
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        assert "busy" in answer.get_data(as_text=True) and "Traceback" not in answer.get_data(as_text=True)
        assert client.get("/queue").status_code == 200, "reading goes on while the batch writes (WAL)"
    finally:
        writer.execute("ROLLBACK")
    assert client.post(f"/calls/{ids[0]}/review", data=form).status_code == 302


def test_a_request_too_large_or_of_an_unknown_route_is_a_clear_4xx(bench):
    app, _, ids = bench
    client, csrf = sign_in(app, "insp1")
    assert client.get("/nowhere").status_code == 404
    assert client.put("/queue").status_code in (403, 405)
    big = client.post(f"/calls/{ids[0]}/review", data={"csrf_token": csrf, "summary": "x" * 300_000})
    assert big.status_code == 413
