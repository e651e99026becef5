"""The workbench in a real headless Chromium, served by waitress (the product's WSGI server) on loopback.

An inspector signs in, seeks the recording from the sheet's evidence (which needs the server's Range
support), scores a call and finds the scores again; the keyboard shortcuts; the agreement page after a
calibration call's two reviews; a lead page refused to an inspector; a POST without its CSRF token
refused; markup in a transcript shown as text; no request leaving the server's origin.

Tests that write reviews get a store and server of their own; the others share one (and write nothing).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select
from waitress import wasyncore
from waitress.server import create_server

from qa_audio.workbench.app import create_app
from qa_audio.workbench.settings import load_workbench_settings
from tests.browser import console_errors, open_page, run_js, wait_for
from tests.workbench_helpers import PASSWORD, build_store

INJECTED = "<script>alert('x')</script>"
HOSTILE = 3  # the index (in RECORDINGS' order) of the call whose transcript holds INJECTED


@dataclass(frozen=True)
class Workbench:
    url: str  # the origin, http://127.0.0.1:PORT
    db: Path
    ids: list[str]


@contextlib.contextmanager
def served(folder: Path, share: float) -> Iterator[Workbench]:
    """A fresh store in ``folder`` and the workbench over it on waitress, 127.0.0.1 and a free port."""
    db, rules, ids = build_store(folder, share=share)
    app = create_app(db, load_workbench_settings(rules), rules_dir=rules)
    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="qa-audio",
                           clear_untrusted_proxy_headers=True)
    thread = threading.Thread(target=server.run, name="workbench-waitress", daemon=True)
    thread.start()
    try:
        yield Workbench(f"http://127.0.0.1:{server.effective_port}", db, ids)
    finally:
        # server.close() ends only the listening socket, and called from here it races the loop's select();
        # so it runs in the loop's own thread (waitress's trigger), with every connection Chromium keeps
        # alive closed too, else the loop would run on
        def stop() -> None:
            server.close()
            wasyncore.close_all(server._map)

        server.trigger.pull_trigger(stop)
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()
        assert not thread.is_alive(), "the workbench's waitress loop did not stop"


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[Workbench]:
    """For the tests that store nothing."""
    with served(tmp_path_factory.mktemp("workbench"), share=0.0) as workbench:
        yield workbench


@pytest.fixture
def fresh(tmp_path_factory) -> Iterator[Workbench]:
    """A store of its own, nothing reviewed yet."""
    with served(tmp_path_factory.mktemp("workbench"), share=0.0) as workbench:
        yield workbench


@pytest.fixture
def calibration(tmp_path_factory) -> Iterator[Workbench]:
    """A store of its own where every call is a calibration call (share 1.0)."""
    with served(tmp_path_factory.mktemp("workbench"), share=1.0) as workbench:
        yield workbench


# ---------------------------------------------------------------------------------------------- helpers
def _path(driver) -> str:
    return urlsplit(driver.current_url).path


def _present(driver, selector: str) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, selector))


def _forget_sessions(driver, workbench: Workbench) -> None:
    """No cookie of any earlier session (the cookies of 127.0.0.1 are shared by every port)."""
    open_page(driver, f"{workbench.url}/login")
    driver.delete_all_cookies()


def _sign_in_form(driver, name: str) -> None:
    """Fill and send the sign-in form the browser shows now."""
    assert _path(driver) == "/login", driver.current_url
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(lambda: _path(driver) != "/login", timeout=10, what=f"{name}'s sign-in to go through")


def _sign_in(driver, workbench: Workbench, name: str) -> None:
    """A new session of ``name``, the browser on the queue."""
    _forget_sessions(driver, workbench)
    open_page(driver, f"{workbench.url}/queue")
    _sign_in_form(driver, name)
    wait_for(lambda: _path(driver) == "/queue" and _present(driver, "#queue"), what="the queue")


def _sign_out(driver) -> None:
    driver.find_element(By.ID, "logout").click()
    wait_for(lambda: _path(driver) == "/login", what="the sign-in page after signing out")


def _queue_ids(driver) -> list[str]:
    return [urlsplit(a.get_attribute("href")).path.rsplit("/", 1)[-1]
            for a in driver.find_elements(By.CSS_SELECTOR, "a.call-link")]


def _open_call(driver, workbench: Workbench, call_id: str) -> None:
    open_page(driver, f"{workbench.url}/calls/{call_id}")
    assert _present(driver, "#review-form"), driver.find_element(By.TAG_NAME, "body").text[:300]


def _metadata(driver) -> None:
    """Wait until the player knows the recording's duration (its metadata loaded)."""
    wait_for(lambda: run_js(driver, "return document.getElementById('player').readyState >= 1"),
             timeout=15, what="the recording's metadata")


def _position(driver) -> float:
    return float(run_js(driver, "return document.getElementById('player').currentTime"))


def _park(driver, t: float) -> None:
    """Put the player, paused, at ``t``."""
    run_js(driver, "var p=document.getElementById('player'); p.pause(); p.currentTime=arguments[0];", t)
    wait_for(lambda: abs(_position(driver) - t) < 0.1, what=f"the player to park at {t}")


def _pause(driver) -> None:
    run_js(driver, "document.getElementById('player').pause()")


def _options(select) -> list[str]:
    return [o.get_attribute("value") for o in select.find_elements(By.TAG_NAME, "option") if o.get_attribute("value")]


def _fill_empty_selects(driver) -> dict[str, str]:
    """Choose a score for every item that has none yet (the items without a pre-score); {select id: value}."""
    chosen = {}
    for element in driver.find_elements(By.CSS_SELECTOR, "select.score-input"):
        if element.get_attribute("value") == "":
            value = _options(element)[0]
            Select(element).select_by_value(value)
            chosen[element.get_attribute("id")] = value
    return chosen


def _values(driver) -> dict[str, str]:
    return run_js(driver, "var out={}; document.querySelectorAll('select.score-input').forEach(function(s){"
                          "out[s.id]=s.value;}); return out;")


def _notes_rows(db: Path, call_id: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT count(*) FROM review_notes WHERE call_id=?", (call_id,)).fetchone()[0]


def _stored_score(db: Path, call_id: str, item_id: str) -> tuple[float, str] | None:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT inspector_score, inspector FROM reviews WHERE call_id=? AND item_id=?",
                           (call_id, item_id)).fetchone()
    return None if row is None else (row[0], row[1])


def _focus_body(driver) -> None:
    """No field focused (the shortcuts ignore keys typed into one, Ctrl+Enter aside)."""
    run_js(driver, "if (document.activeElement && document.activeElement !== document.body) {"
                   "document.activeElement.blur(); }")
    assert run_js(driver, "return document.activeElement === document.body")


def _press(driver, *keys: str) -> None:
    """Keys typed with the page's body focused."""
    _focus_body(driver)
    ActionChains(driver).send_keys(*keys).perform()


# ---------------------------------------------------------------------------------------------- tests
def test_inspector_signs_in_seeks_the_evidence_scores_and_finds_the_review_again(chromium, fresh):
    driver = chromium
    _forget_sessions(driver, fresh)
    open_page(driver, f"{fresh.url}/queue")
    parts = urlsplit(driver.current_url)
    assert parts.path == "/login" and parse_qs(parts.query).get("next") == ["/queue"], driver.current_url
    _sign_in_form(driver, "insp1")
    wait_for(lambda: _path(driver) == "/queue" and _present(driver, "#queue"), what="the queue after sign-in")
    links = driver.find_elements(By.CSS_SELECTOR, "a.call-link")
    assert len(links) == len(fresh.ids), [a.text for a in links]

    links[0].click()
    wait_for(lambda: _path(driver).startswith("/calls/") and
             run_js(driver, "return document.readyState") == "complete", what="the call page")
    call_id = _path(driver).rsplit("/", 1)[-1]
    assert call_id in fresh.ids

    # an evidence link seeks the player: the recording is served with Range support, else it cannot seek
    _metadata(driver)
    link = next(a for a in driver.find_elements(By.CSS_SELECTOR, "a.evidence")
                if float(a.get_attribute("data-t")) > 1.0)
    target = float(link.get_attribute("data-t"))
    assert _position(driver) < target - 0.5  # the player starts at 0: a seek to the link's time shows
    run_js(driver, "arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()
    wait_for(lambda: abs(_position(driver) - target) < 0.5, timeout=10, what=f"the player to seek to {target}")
    _pause(driver)
    assert _position(driver) == pytest.approx(target, abs=0.5)  # the click also plays: allow a little drift

    # change one pre-filled score, choose one for every item without a pre-score, write a summary, submit
    changed_id, new_value = None, None
    for element in driver.find_elements(By.CSS_SELECTOR, "select.score-input"):
        old = element.get_attribute("value")
        others = [v for v in _options(element) if v != old]
        if old and others:
            changed_id, new_value = element.get_attribute("id"), others[0]
            Select(element).select_by_value(new_value)
            break
    assert changed_id is not None, "no pre-filled item has another allowed score"
    filled = _fill_empty_selects(driver)
    assert all(_values(driver).values()), _values(driver)
    summary = "开场白不完整，other items fine"
    driver.find_element(By.ID, "summary").send_keys(summary)
    # the console of the whole path, the sign-in page's included, asserted at the end (after the rest was
    # checked); Chromium asks an origin's first pages for /favicon.ico, so a page without an icon of its
    # own logs the answer (401 before sign-in, 404 after) as an error
    errors = console_errors(driver)
    driver.find_element(By.ID, "submit").click()
    wait_for(lambda: _present(driver, "#saved"), timeout=10, what="the page saying the review was saved")
    assert _path(driver) == f"/calls/{call_id}"
    assert _notes_rows(fresh.db, call_id) == 1
    assert _stored_score(fresh.db, call_id, changed_id.removeprefix("score-")) == (float(new_value), "insp1")

    # reload: the page shows the stored review, not the pre-fill
    driver.refresh()
    wait_for(lambda: run_js(driver, "return document.readyState") == "complete", what="the reloaded page")
    assert _present(driver, "#my-review")
    values = _values(driver)
    assert values[changed_id] == new_value, (changed_id, values)
    for select_id, value in filled.items():
        assert values[select_id] == value, (select_id, values)
    assert driver.find_element(By.ID, "summary").get_attribute("value") == summary
    _metadata(driver)
    errors += console_errors(driver)
    assert errors == [], "\n".join(errors)
    _sign_out(driver)


def test_keyboard_shortcuts_step_the_evidence_confirm_an_item_and_submit_to_the_next_call(chromium, fresh):
    driver = chromium
    _sign_in(driver, fresh, "insp1")
    queue = _queue_ids(driver)
    assert len(queue) == len(fresh.ids)
    _open_call(driver, fresh, queue[0])
    _metadata(driver)

    # j: the first evidence link becomes the current one and the player goes to its time
    first = driver.find_elements(By.CSS_SELECTOR, "a.evidence")[0]
    target = float(first.get_attribute("data-t"))
    _park(driver, target + 5.0)
    _press(driver, "j")
    wait_for(lambda: "current" in first.get_attribute("class").split(), what="the first evidence link to be current")
    wait_for(lambda: abs(_position(driver) - target) < 0.5, timeout=10, what=f"the player to seek to {target}")
    _pause(driver)
    item_id = first.get_attribute("data-item")
    row = driver.find_element(By.ID, f"item-{item_id}")
    assert "current" in row.get_attribute("class").split()

    # c: the current item takes its pre-score back (changed away from it first) and is marked confirmed
    prefill = row.get_attribute("data-prefill")
    assert prefill, f"item {item_id} has no pre-score to confirm"
    select = driver.find_element(By.ID, f"score-{item_id}")
    other = next(v for v in _options(select) if v != prefill)
    run_js(driver, "arguments[0].value = arguments[1]", select, other)
    assert select.get_attribute("value") == other
    assert "confirmed" not in row.get_attribute("class").split()
    _press(driver, "c")
    wait_for(lambda: "confirmed" in row.get_attribute("class").split(), what=f"item {item_id} to be confirmed")
    assert select.get_attribute("value") == prefill

    # Ctrl+Enter: submitted, and the next call of the queue opens
    _fill_empty_selects(driver)
    _focus_body(driver)  # the last select chosen had the focus
    ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
    wait_for(lambda: _path(driver) != f"/calls/{queue[0]}", timeout=10, what="the next call after Ctrl+Enter")
    wait_for(lambda: run_js(driver, "return document.readyState") == "complete", what="the next call to load")
    assert _path(driver) == f"/calls/{queue[1]}", driver.current_url
    assert _notes_rows(fresh.db, queue[0]) == 1
    assert _stored_score(fresh.db, queue[0], item_id) == (float(prefill), "insp1")
    _sign_out(driver)


def _agreement_cells(driver, item_id: str) -> list[str]:
    """The texts of an item's row of #agreement, one per column (a colspan cell repeated over its columns)."""
    return run_js(driver, "var row=document.querySelector('#agreement tr[data-item=\"' + arguments[0] + '\"]');"
                          "if (!row) { return null; } var out=[];"
                          "Array.prototype.forEach.call(row.cells, function(td){"
                          "for (var i = 0; i < td.colSpan; i++) { out.push(td.textContent.trim()); }});"
                          "return out;", item_id)


def test_agreement_page_counts_two_inspectors_who_disagree_on_a_calibration_call(chromium, calibration):
    driver = chromium
    _sign_in(driver, calibration, "insp1")
    call_id = _queue_ids(driver)[0]
    _open_call(driver, calibration, call_id)
    assert _present(driver, ".flag.calibration")
    # the first item with a pre-score and another allowed score: insp1 keeps the pre-score, insp2 changes it
    item_id, first_value, second_value = None, None, None
    for element in driver.find_elements(By.CSS_SELECTOR, "select.score-input"):
        value = element.get_attribute("value")
        others = [v for v in _options(element) if v != value]
        if value and others:
            item_id, first_value, second_value = element.get_attribute("id").removeprefix("score-"), value, others[0]
            break
    assert item_id is not None
    filled = _fill_empty_selects(driver)
    driver.find_element(By.ID, "submit").click()
    wait_for(lambda: _present(driver, "#saved"), timeout=10, what="insp1's review to be saved")
    _sign_out(driver)

    # insp2 finds the call in their own queue as a second opinion, blind to insp1's scores
    _sign_in(driver, calibration, "insp2")
    assert call_id in _queue_ids(driver)
    _open_call(driver, calibration, call_id)
    assert not _present(driver, "#my-review")
    select = driver.find_element(By.ID, f"score-{item_id}")
    assert select.get_attribute("value") == first_value  # the pre-fill (insp1 kept it), not a copy of insp1's form
    Select(select).select_by_value(second_value)
    for select_id, value in filled.items():  # the items without a pre-score: the same as insp1
        Select(driver.find_element(By.ID, select_id)).select_by_value(value)
    assert all(_values(driver).values())
    driver.find_element(By.ID, "submit").click()
    wait_for(lambda: _present(driver, "#saved"), timeout=10, what="insp2's review to be saved")
    assert "校准第二意见" in driver.find_element(By.ID, "my-review").text
    _sign_out(driver)

    _sign_in(driver, calibration, "lead1")
    open_page(driver, f"{calibration.url}/agreement")
    assert _present(driver, "#agreement"), driver.find_element(By.TAG_NAME, "body").text[:300]
    cells = _agreement_cells(driver, item_id)
    assert cells is not None, f"no row of item {item_id} in #agreement"
    assert len(cells) == 13, cells
    # columns: item | machine vs inspector (all reviewed) n, exact, ±1 band, κ | inspector vs inspector … | machine
    # vs the inspectors on the same calibration calls …
    assert cells[0] == item_id
    assert cells[5:7] == ["1", "0%"], cells
    assert cells[9:11] == ["2", "50%"], cells  # the machine agrees with insp1, not with insp2
    assert console_errors(driver) == []
    _sign_out(driver)


def test_an_inspector_is_refused_the_lead_pages(chromium, shared):
    driver = chromium
    _sign_in(driver, shared, "insp1")
    for path in ("/agreement", "/reports?by=agent"):
        open_page(driver, f"{shared.url}{path}")
        assert _present(driver, "#error-message"), (path, driver.find_element(By.TAG_NAME, "body").text[:300])
        assert driver.find_element(By.TAG_NAME, "h1").text == "403", path
        assert not _present(driver, "#agreement")
    _sign_out(driver)


def test_a_post_without_its_csrf_token_is_refused_and_stores_nothing(chromium, shared):
    driver = chromium
    call_id = shared.ids[2]
    _sign_in(driver, shared, "insp1")
    _open_call(driver, shared, call_id)
    post = ("var done = arguments[arguments.length - 1];"
            "var headers = arguments[1] ? {'X-CSRF-Token': arguments[1]} : {};"
            "fetch(arguments[0], {method: 'POST', body: new URLSearchParams({score_1a: '2'}), headers: headers,"
            " credentials: 'same-origin', redirect: 'manual'})"
            ".then(function (r) { done(r.status); }, function (e) { done('failed: ' + e); });")
    url = f"/calls/{call_id}/review"
    assert driver.execute_async_script(post, url, None) == 403
    assert _notes_rows(shared.db, call_id) == 0
    # the control: the same request with the page's token is past the CSRF check (400: the other items lack a score)
    token = driver.find_element(By.CSS_SELECTOR, "#review-form input[name=csrf_token]").get_attribute("value")
    assert token
    assert driver.execute_async_script(post, url, token) == 400
    assert _notes_rows(shared.db, call_id) == 0
    open_page(driver, f"{shared.url}/calls/{call_id}")
    assert not _present(driver, "#my-review")
    _sign_out(driver)


def test_markup_in_a_transcript_is_shown_as_text(chromium, shared):
    driver = chromium
    _sign_in(driver, shared, "insp1")
    _open_call(driver, shared, shared.ids[HOSTILE])  # an alert here would also fail every later command
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading the alert is what asks the browser for one
    texts = run_js(driver, "return Array.from(document.querySelectorAll('#transcript .text'))"
                           ".map(function(el){ return el.textContent; });")
    assert any(INJECTED in text for text in texts), texts
    assert run_js(driver, "return document.querySelectorAll('#transcript script').length") == 0
    assert console_errors(driver) == []
    _sign_out(driver)


def test_the_call_page_requests_nothing_outside_the_servers_origin(chromium, shared):
    driver = chromium
    _sign_in(driver, shared, "insp1")
    _open_call(driver, shared, shared.ids[0])
    _metadata(driver)
    urls = run_js(driver, "return performance.getEntriesByType('resource').map(function(e){ return e.name; })")
    assert any(u.endswith("/static/workbench.css") for u in urls), urls
    assert any(u.endswith("/static/workbench.js") for u in urls), urls
    outside = [u for u in urls if not u.startswith(f"{shared.url}/")]
    assert outside == [], outside
    assert driver.current_url.startswith(f"{shared.url}/")
    _sign_out(driver)
