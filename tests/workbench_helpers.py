"""A workbench over a small store for the tests: real recordings from sample_calls/, results in the
documented shape with the sheet filled by the real rubric (no model runs: the workbench runs none),
accounts with real Argon2 hashes, Flask's test client signed in as each of them."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

from qa_audio.batch.store import Store, hash_file
from qa_audio.rubric import fill_rubric_from_result, load_rubric
from qa_audio.rule_files import DEFAULT_RULES_DIR
from qa_audio.schema import SCHEMA_VERSION
from qa_audio.workbench.accounts import add_user, create_account_tables
from qa_audio.workbench.app import create_app
from qa_audio.workbench.settings import load_workbench_settings
from tests.helpers import SAMPLE_CALLS, good_call, phrase

PASSWORD = "correct horse battery"
USERS = {"lead1": "lead", "insp1": "inspector", "insp2": "inspector", "insp3": "inspector"}
RECORDINGS = ["call02_partial_script.wav", "call03_minimal_script.wav", "call04_forbidden_minor_mono.wav",
              "call06_customer_unsure.flac", "call10_fast_greeting.wav"]


def results() -> list[dict[str, Any]]:
    """Five calls: a fatal one, a severe one, three clean ones (one with `<script>` in its transcript)."""
    sheet = load_rubric()
    calls = []
    fatal, severe = good_call(), good_call()
    fatal["findings"] = [*fatal["findings"], phrase(14.0, "0-2", "你投诉都没用的")]
    severe["findings"] = [*severe["findings"], phrase(20.0, "3-5", "我不知道")]
    hostile = good_call()
    hostile["turns"] = copy.deepcopy(hostile["turns"])
    hostile["turns"][1]["text"] = "<script>alert('x')</script>我想查一下话费"
    hostile["turns"].append({"speaker": "CH1", "role": "customer", "start": 39.2, "end": 39.7, "text": "",
                             "words": [], "unintelligible": True})
    hostile["vocabulary_corrections"] = [{"speaker": "CH0", "role": "agent", "start": 1.25, "end": 2.4,
                                          "heard": "<i>心和通信", "written": "星河通信", "score": 0.963,
                                          "probability": 0.3}]
    hostile["vocabulary_opening"] = {"start": 0.24, "end": 8.58, "hotwords": "星河通信 <b>工号", "changed": True}
    for result in (fatal, severe, good_call(), hostile, good_call()):
        result = copy.deepcopy(result)
        result["schema_version"] = SCHEMA_VERSION
        result["rubric"] = fill_rubric_from_result(result, sheet).to_dict()
        calls.append(result)
    return calls


def build_store(folder: Path, share: float = 0.0) -> tuple[Path, Path, list[str]]:
    """(the store, a rules folder whose workbench.yaml has calibration ``share``, the call ids in RECORDINGS'
    order)."""
    rules = folder / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules, ignore=shutil.ignore_patterns("*.md"))
    text = (rules / "workbench.yaml").read_text(encoding="utf-8")
    (rules / "workbench.yaml").write_text(re.sub(r"share: [0-9.]+", f"share: {share}", text), encoding="utf-8")
    db = folder / "qa.db"
    ids = []
    settings = load_workbench_settings(rules)
    with Store(db) as store:
        for name, result in zip(RECORDINGS, results(), strict=True):
            audio = folder / name
            shutil.copyfile(SAMPLE_CALLS / name, audio)
            key = hash_file(audio)
            store.add_result(key, result)
            ids.append(key.call_id)
        with store.transaction():
            create_account_tables(store.conn)
            for name, role in USERS.items():
                add_user(store.conn, name, role, PASSWORD, settings)
    return db, rules, ids


def make_app(db: Path, rules: Path, **options: Any):
    app = create_app(db, load_workbench_settings(rules), rules_dir=rules, **options)
    app.config["TESTING"] = True
    return app


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(app: Any, name: str, password: str = PASSWORD) -> tuple[Any, str]:
    """(a test client signed in as ``name``, its session's CSRF token)."""
    client = app.test_client()
    page = client.get("/login")
    token = CSRF.search(page.get_data(as_text=True)).group(1)
    answer = client.post("/login", data={"name": name, "password": password, "csrf_token": token, "next": "/queue"})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    queue = client.get("/queue").get_data(as_text=True)
    return client, CSRF.search(queue).group(1)


def scores_form(app_client: Any, call_id: str, csrf: str, **overrides: str) -> dict[str, str]:
    """The call page's form as a browser would submit it untouched (every select's chosen value)."""
    page = app_client.get(f"/calls/{call_id}").get_data(as_text=True)
    form: dict[str, str] = {"csrf_token": csrf, "problems": "", "suggestions": "", "summary": "", "then": "stay"}
    for select in re.finditer(r'<select name="(score_[^"]+)".*?</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', select.group(0))
        form[select.group(1)] = chosen.group(1) if chosen else ""
    form.update(overrides)
    return form


