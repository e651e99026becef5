"""``qa-audio serve`` and ``qa-audio users``: the commands, their bad input, ``workbench.yaml`` checked with
file and line, and a store of version 2 upgraded for the workbench without losing a review."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from qa_audio.batch.export import ExportOptions, export_rows
from qa_audio.batch.store import STORE_VERSION, FileKey, Store
from qa_audio.cli import app
from qa_audio.rule_files import RuleFileError
from qa_audio.workbench.settings import load_workbench_settings
from tests.helpers import ROOT, edit
from tests.workbench_helpers import PASSWORD, build_store, results

runner = CliRunner()


def invoke(*args: str, stdin: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def test_users_add_list_disable_and_set_password(tmp_path):
    db, _, _ = build_store(tmp_path)
    added = invoke("users", "add", "质检员张三", "--role", "inspector", "--db", db, "--password-stdin",
                   stdin="a long enough password\n")
    assert added.exit_code == 0, added.output
    listed = invoke("users", "list", "--db", db)
    assert "质检员张三\tinspector" in listed.output
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT password_hash FROM users WHERE name='质检员张三'").fetchone()[0]
    assert stored.startswith("$argon2id$") and "a long enough password" not in stored
    assert invoke("users", "disable", "质检员张三", "--db", db).exit_code == 0
    assert conn.execute("SELECT disabled FROM users WHERE name='质检员张三'").fetchone()[0] == 1
    assert invoke("users", "set-password", "质检员张三", "--db", db, "--password-stdin",
                  stdin="another long password\n").exit_code == 0
    assert conn.execute("SELECT password_hash FROM users WHERE name='质检员张三'").fetchone()[0] != stored
    conn.close()


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["users", "add", "x y", "--role", "lead"], "long enough pw\n", "account name"),
    (["users", "add", "lead2", "--role", "lead"], "short\n", "at least 10 characters"),
    (["users", "add", "lead1", "--role", "lead"], PASSWORD + "\n", "exists already"),
    (["users", "set-password", "nobody"], PASSWORD + "\n", "no account"),
    (["users", "disable", "nobody"], None, "no account"),
])
def test_bad_accounts_are_refused_in_one_line(tmp_path, args, stdin, message):
    db, _, _ = build_store(tmp_path)
    extra = ["--password-stdin"] if stdin is not None else []
    result = invoke(*args, "--db", db, *extra, stdin=stdin)
    assert result.exit_code == 2 and message in result.output
    assert result.output.count("qa-audio: error:") == 1


def test_serve_refuses_a_missing_or_foreign_database(tmp_path):
    missing = invoke("serve", "--db", tmp_path / "none.db")
    assert missing.exit_code == 3 and "no such database" in missing.output
    assert not (tmp_path / "none.db").exists()
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    refused = invoke("serve", "--db", foreign)
    assert refused.exit_code == 3 and "not a qa-audio store" in refused.output


@pytest.mark.parametrize(("old", "new", "message"), [
    ("share: 0.1", "share: 2", "share: 2 must be a number from 0 to 1"),
    ("page_size: 50", "page_size: many", "'page_size' must be int or float"),
    ("show_originals_to: [lead]", "show_originals_to: [boss]", "'boss' is not a role"),
    ("  window_minutes: 15", "  window_minute: 15", "unknown key 'window_minute'"),
])
def test_a_bad_workbench_yaml_names_its_file_and_line(rules, tmp_path, old, new, message):
    line = edit(rules / "workbench.yaml", old, new)
    with pytest.raises(RuleFileError, match=message) as error:
        load_workbench_settings(rules)
    assert error.value.line == line and error.value.path.name == "workbench.yaml"
    (tmp_path / "store").mkdir()
    db, _, _ = build_store(tmp_path / "store")
    result = invoke("serve", "--db", db, "--rules", rules)
    assert result.exit_code == 3 and f"workbench.yaml:{line}:" in result.output


def test_serve_answers_on_its_port(tmp_path):
    db, _, _ = build_store(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "qa_audio", "serve", "--db", str(db), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as answer:
                    page = answer.read().decode()
                    headers = answer.headers
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(server.stderr.read().decode() if server.poll() is not None else
                                         "the server did not answer in 60 s") from None
                time.sleep(0.2)
        assert 'id="login-form"' in page and "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["Server"] == "qa-audio"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/assign", method="POST",
                                                          data=b"x=1"), timeout=5)
        assert refused.value.code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_version_2_store_is_upgraded_for_the_workbench_with_its_reviews(tmp_path):
    db = tmp_path / "v2.db"
    with Store(db) as store:
        for n, result in enumerate(results()):
            store.add_result(FileKey(f"/a/{n}.wav", 1, 0.0, f"{n:x}" * 64 if n else "a" * 64), result)
        call_id = "a" * 64
        store.add_reviews([{"call_id": call_id, "item_id": "1b", "inspector_score": 1.0, "inspector": "old"}])
    conn = sqlite3.connect(db)  # back to what version 2 wrote
    conn.execute("DROP INDEX calls_queue")
    for table in ("second_reviews", "review_notes", "assignments"):
        conn.execute(f"DROP TABLE {table}")
    for trigger in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]:
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE review_history")
    for column in ("finding_count", "fatal_finding", "severe_finding"):
        conn.execute(f"ALTER TABLE calls DROP COLUMN {column}")
    for column in ("prefill", "source"):
        conn.execute(f"ALTER TABLE reviews DROP COLUMN {column}")
    conn.execute("UPDATE meta SET value='2' WHERE key='store_version'")
    conn.commit()
    conn.close()
    with Store(db, read_only=True) as store:  # a reader leaves it as it is and still orders the queue
        before = export_rows(store, ExportOptions(status="all", sample=10, seed=1))
        assert store.conn.execute("SELECT value FROM meta WHERE key='store_version'").fetchone()[0] == "2"
    assert before[0]["call_id"] == call_id and before[0]["review_reason"] == "fatal"
    with Store(db) as store:  # a writer upgrades it
        version = store.conn.execute("SELECT value FROM meta WHERE key='store_version'").fetchone()[0]
        facts = store.conn.execute("SELECT finding_count, fatal_finding FROM calls WHERE call_id=?",
                                   (call_id,)).fetchone()
        review = store.conn.execute("SELECT inspector_score, prefill, source FROM reviews").fetchone()
        after = export_rows(store, ExportOptions(status="all", sample=10, seed=1))
    assert version == str(STORE_VERSION)
    assert tuple(facts) == (len(results()[0]["findings"]), 1)
    item = next(i for i in results()[0]["rubric"]["items"] if i["id"] == "1b")
    assert tuple(review) == (1.0, item["score"], "import")
    assert [r["call_id"] for r in after] == [r["call_id"] for r in before]
    assert json.loads(json.dumps(after)) == after
