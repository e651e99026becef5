"""Per-agent and team reports over a store of real sample-call analyses with made-up metadata:
every figure is checked against a count done here, by hand, from the stored results."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from qa_audio.batch.store import STORE_VERSION, Store, hash_file
from qa_audio.coaching.categories import load_categories
from qa_audio.coaching.figures import UNKNOWN, build_report
from qa_audio.coaching.html import render_report_html
from qa_audio.coaching.table import write_report_csv
from qa_audio.report.json_output import to_json_dict
from qa_audio.rubric import load_rubric
from qa_audio.rule_files import RuleFileError
from tests.helpers import ROOT, edit, sample_call_truths

# call -> (agent, team, started_at): three agents, two teams, three weeks
METADATA = {
    "call01_full_script_mono": ("A1001", "甲组", "2026-11-02T09:00:00"),
    "call02_partial_script": ("A1001", "甲组", "2026-11-09T10:30:00"),
    "call03_minimal_script": ("A1002", "甲组", "2026-11-03T11:00:00"),
    "call04_forbidden_minor_mono": ("A1002", "甲组", "2026-11-11T14:00:00"),
    "call05_forbidden_severe_stereo": ("A1002", "甲组", "2026-11-17T15:00:00"),
    "call07_hold_silence_mono": ("A1003", "乙组", "2026-11-16T16:00:00"),
}
REVIEWS = [("call03_minimal_script", "1b", 1.0), ("call05_forbidden_severe_stereo", "2a", 4.0)]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qa_audio", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


@pytest.fixture(scope="module")
def store_of_sample_calls(analyses, tmp_path_factory):
    """(db path, name -> stored result) with the metadata attached later, by `qa-audio metadata`."""
    folder = tmp_path_factory.mktemp("report")
    db = folder / "qa.db"
    truths = [t for t in sample_call_truths() if t["name"] in METADATA]
    results = {}
    with Store(db) as store:
        for truth in truths:
            result = to_json_dict(analyses(truth))
            store.add_result(hash_file(truth["audio_path"]), result)
            results[truth["name"]] = result
        store.add_reviews([{"call_id": hash_file(t["audio_path"]).call_id, "item_id": item, "inspector_score": score,
                            "inspector": "质检员甲", "reviewed_at": "2026-11-20"}
                           for t in truths for name, item, score in REVIEWS if t["name"] == name])
    sidecar = folder / "calls.csv"
    with sidecar.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "agent_id", "team", "started_at"])
        for truth in truths:
            writer.writerow([Path(truth["audio_path"]).name, *METADATA[truth["name"]]])
    attached = _cli("metadata", str(sidecar), "--db", str(db))
    assert attached.returncode == 0, attached.stderr
    assert f"metadata for {len(truths)} call(s)" in attached.stderr
    return db, results


def _finals(result: dict, name: str) -> dict[str, tuple[float, float]]:
    """item -> (score used, points): the inspector's where reviewed, else the pre-score."""
    reviewed = {item: score for call, item, score in REVIEWS if call == name}
    out = {}
    for item in result["rubric"]["items"]:
        score = reviewed.get(item["id"], item["score"])
        if score is not None:
            out[item["id"]] = (float(score), float(item["points"]))
    return out


def _report(db: Path, by: str = "agent", **period: str):
    """The report of the store as `qa-audio report` builds it (read-only, the shipped rules)."""
    sheet = load_rubric()
    with Store(db, read_only=True) as store:
        return build_report(store, sheet, load_categories(None, sheet), by, **period)


def _monday(day: str) -> str:
    d = date.fromisoformat(day[:10])
    return (d - timedelta(days=d.weekday())).isoformat()


@pytest.mark.slow
def test_every_agent_figure_matches_a_count_by_hand(store_of_sample_calls):
    db, results = store_of_sample_calls
    report = _report(db)
    assert [g.key for g in report.groups] == ["A1001", "A1002", "A1003"]
    assert report.calls == len(METADATA) and report.undated == 0
    for group in report.groups:
        mine = [n for n, (agent, _, _) in METADATA.items() if agent == group.key]
        team = METADATA[mine[0]][1]
        teammates = [n for n, (_, t, _) in METADATA.items() if t == team]
        totals = [sum(s for s, _ in _finals(results[n], n).values()) for n in mine]
        assert group.team == team and group.calls == len(mine)
        assert group.mean_total == round(sum(totals) / len(totals), 2)
        assert group.fatal == sum("fatal" in results[n]["rubric"]["flags"] for n in mine)
        assert group.needs_review == sum("needs_review" in results[n]["rubric"]["flags"] for n in mine)
        assert group.reviewed == sum(1 for n in mine if any(c == n for c, _, _ in REVIEWS))
        assert group.inspector_scores == sum(1 for c, _, _ in REVIEWS if c in mine)
        finals = {n: _finals(results[n], n) for n in teammates}
        for figure in group.items:
            scores = [finals[n][figure.item_id][0] for n in mine if figure.item_id in finals[n]]
            team_scores = [finals[n][figure.item_id][0] for n in teammates if figure.item_id in finals[n]]
            assert figure.scored == len(scores)
            assert figure.mean == (round(sum(scores) / len(scores), 2) if scores else None)
            assert figure.beside == (round(sum(team_scores) / len(team_scores), 2) if team_scores else None)
        lost = {}
        for n in mine:
            for item, (score, points) in _finals(results[n], n).items():
                if score < points:
                    lost[item] = lost.get(item, 0) + 1
        assert {p.item_id: p.calls for p in group.problems} == lost
        for p in group.problems:
            assert p.frequency == ("经常" if p.calls / len(mine) >= 0.3 else "偶尔")
        weeks = sorted({_monday(METADATA[n][2]) for n in mine})
        assert [p.week for p in group.trend] == weeks
        assert sum(p.calls for p in group.trend) == len(mine)
        advice = {}
        for n in mine:
            for item in results[n]["rubric"]["items"]:
                final = _finals(results[n], n).get(item["id"])
                if final and final[0] < final[1]:
                    for line in item["advice"]:
                        advice[line] = advice.get(line, 0) + 1
        assert {c.advice: c.calls for c in group.coaching} == advice
        assert all(1 <= len(c.moments) <= 3 for c in group.coaching)


@pytest.mark.slow
def test_the_severe_phrase_is_a_severe_problem_of_its_agent(store_of_sample_calls):
    db, _ = store_of_sample_calls
    report = _report(db)
    a1002 = next(g for g in report.groups if g.key == "A1002")
    problem = next(p for p in a1002.problems if p.item_id == "7b")
    assert (problem.category, problem.severity) == ("沟通技巧类", "严重")
    assert a1002.problems[0].severity == "严重"  # the worst first


@pytest.mark.slow
def test_the_team_report_counts_the_centres_rules(store_of_sample_calls):
    db, results = store_of_sample_calls
    report = _report(db, "team", since="2026-11-01", until="2026-11-15")
    in_period = [n for n, (_, _, day) in METADATA.items() if "2026-11-01" <= day[:10] <= "2026-11-15"]
    assert report.calls == len(in_period)
    team = next(g for g in report.groups if g.key == "甲组")
    mine = [n for n in in_period if METADATA[n][1] == "甲组"]
    phrases: dict[str, int] = {}
    for n in mine:
        for phrase in {f["phrase"] for f in results[n]["findings"] if f["rule"] == "forbidden_phrase"
                       and f["role"] == "agent"}:
            phrases[phrase] = phrases.get(phrase, 0) + 1
    assert {p["phrase"]: p["calls"] for p in team.rule_rates["forbidden_phrases"]} == phrases
    dead_air = sum(any(f["rule"] == "silence" and not f["hold_notice"] for f in results[n]["findings"]) for n in mine)
    assert team.rule_rates["dead_air_calls"] == dead_air
    assert len(team.listen_first) == len(mine)
    first = team.listen_first[0]
    assert first["fatal"] or not any("fatal" in results[n]["rubric"]["flags"] for n in mine)


@pytest.mark.slow
def test_the_page_and_the_table(store_of_sample_calls, tmp_path):
    db, _ = store_of_sample_calls
    page, table = tmp_path / "report.html", tmp_path / "report.csv"
    for target in (page, table):
        done = _cli("report", "--db", str(db), "--by", "agent", "-o", str(target))
        assert done.returncode == 0, done.stderr
    text = page.read_text(encoding="utf-8")
    assert "default-src 'none'" in text and "http://" not in text.replace("http://www.w3.org", "")
    assert text.count("<svg") >= 4 and "A1002" in text and "辅导要点" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv", "report.html"]  # no temporary left
    rows = list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"))))
    assert [r["agent"] for r in rows] == ["A1001", "A1002", "A1003", "全部"]
    assert rows[-1]["calls"] == str(len(METADATA))


@pytest.mark.slow
def test_the_page_renders_in_chromium_with_a_chart(store_of_sample_calls, tmp_path, chromium):
    from tests.browser import console_errors, open_page, run_js

    db, _ = store_of_sample_calls
    report = _report(db)
    page = tmp_path / "report.html"
    page.write_text(render_report_html(report), encoding="utf-8")
    open_page(chromium, page)
    assert console_errors(chromium) == []
    drawn = run_js(chromium, "return Array.from(document.querySelectorAll('.chart.trend svg path, "
                             ".chart.items svg path')).filter(p => {const b = p.getBBox(); "
                             "return b.width > 0 || b.height > 0}).length")
    assert drawn > 10


def test_unknown_agents_are_one_group_and_mismatches_are_counted(tmp_path):
    from tests.helpers import good_call, with_finding

    db = tmp_path / "qa.db"
    sheet = load_rubric()
    with Store(db) as store:
        for index, digits in enumerate(["1024", "2048", None]):
            result = good_call()
            if digits is None:
                result = with_finding(result, "greeting", agent_id_digits="", agent_id_complete=False)
            else:
                result = with_finding(result, "greeting", agent_id_digits=digits, agent_id_complete=True)
            result["rubric"] = {"items": [], "total": 90.0, "max_total": 100.0, "flags": []}
            from qa_audio.batch.store import FileKey

            store.add_result(FileKey(f"/calls/{index}.wav", 1, 0.0, f"{index:064d}"), result)
        store.attach_metadata(f"{1:064d}", {"agent_id": "A9999", "team": "丙组"})  # heard 2048: a mismatch
        report = build_report(store, sheet, load_categories(None, sheet), "agent")
    assert {g.key: g.calls for g in report.groups} == {"1024": 1, "A9999": 1, UNKNOWN: 1}
    assert {g.key: g.agent_id_mismatch for g in report.groups} == {"1024": 0, "A9999": 1, UNKNOWN: 0}


@pytest.mark.parametrize(("old", "new", "says"), [
    ('items: ["6", "7a"]', 'items: ["6", "7x"]', "item '7x' is not on the sheet"),
    ('items: ["6", "7a"]', 'items: ["6", "7a", "1a"]', "in two categories"),
    ("often_share_at_least: 0.3", "often_share_at_least: 3", "must be 0-1"),
])
def test_a_bad_categories_file_is_refused_with_file_and_line(rules, old, new, says):
    line = edit(rules / "categories.yaml", old, new)
    with pytest.raises(RuleFileError) as caught:
        load_categories(rules, load_rubric(rules))
    assert caught.value.path.name == "categories.yaml" and says in caught.value.reason
    assert caught.value.line == line


def test_the_table_neutralises_formula_cells(tmp_path):
    from qa_audio.coaching.figures import GroupFigures, Report

    group = GroupFigures(key="=HYPERLINK(\"x\")", team="+1", calls=1, reviewed=0, mean_total=1.0, max_total=2.0,
                         fatal=0, needs_review=0, agent_id_mismatch=0, item_scores=0, inspector_scores=0)
    report = Report(by="agent", since=None, until=None, sheet_title="t", groups=[group], centre=group, calls=1,
                    undated=0)
    out = io.StringIO()
    write_report_csv(report, out)
    row = list(csv.reader(io.StringIO(out.getvalue())))[1]
    assert row[0] == "'=HYPERLINK(\"x\")" and row[1] == "'+1"


def test_report_refuses_what_it_cannot_write(tmp_path):
    db = tmp_path / "qa.db"
    Store(db).close()
    wrong = _cli("report", "--db", str(db), "-o", str(tmp_path / "report.pdf"))
    assert wrong.returncode == 3 and ".html or .csv" in wrong.stderr
    bad_day = _cli("report", "--db", str(db), "--since", "30/11/2026", "-o", str(tmp_path / "r.html"))
    assert bad_day.returncode == 2 and "YYYY-MM-DD" in bad_day.stderr
    assert not (tmp_path / "r.html").exists()


def test_metadata_files_are_checked_line_by_line(tmp_path):
    from qa_audio.call_metadata import MetadataError, read_metadata_csv

    sidecar = tmp_path / "calls.csv"
    sidecar.write_text("file,agent_id,started_at\na.wav,A1,2026-11-02T09:00:00\nb.wav,A2,yesterday\n",
                       encoding="utf-8")
    with pytest.raises(MetadataError, match=r"calls.csv:3: started_at 'yesterday' is not an ISO 8601"):
        read_metadata_csv(sidecar)
    sidecar.write_text("name,agent\na.wav,A1\n", encoding="utf-8")
    with pytest.raises(MetadataError, match=r"calls.csv:1: the header has no file or agent_id column"):
        read_metadata_csv(sidecar)
    assert json.dumps(read_metadata_csv(_write(tmp_path, "file,agent_id,team\n/x/a.wav,A1,甲\n"))) == json.dumps(
        {"/x/a.wav": {"agent_id": "A1", "team": "甲"}, "a.wav": {"agent_id": "A1", "team": "甲"}}, ensure_ascii=True)


def test_file_names_and_the_csv_row_given_with_a_result(tmp_path):
    from qa_audio.batch.store import FileKey
    from qa_audio.call_metadata import from_file_name
    from tests.helpers import good_call, with_finding

    pattern = "{date:%Y%m%d}_{agent_id}_{seq}.wav"
    assert from_file_name("/archive/20261130_A1024_0007.wav", pattern) == {"agent_id": "A1024",
                                                                            "started_at": "2026-11-30"}
    assert from_file_name("/archive/20261345_A1024_0007.wav", pattern) is None  # not a date
    assert from_file_name("/archive/call.wav", pattern) is None
    result = with_finding(good_call(), "greeting", agent_id_digits="1024", agent_id_complete=True)
    with Store(tmp_path / "qa.db") as store:
        store.add_result(FileKey("/a/x.wav", 1, 0.0, "a" * 64), result, given={"agent_id": "B7", "team": "乙组"})
        row = store.metadata()["a" * 64]
    assert (row["agent_id"], row["team"], row["source"], row["heard_agent_id"], row["agent_id_mismatch"]) == \
        ("B7", "乙组", "csv", "1024", 1)


def test_a_bad_file_pattern_is_refused_with_file_and_line(rules):
    from qa_audio.checks.rulebook import load_rulebook

    line = edit(rules / "deployment.yaml", 'file_pattern: ""', 'file_pattern: "{date}_{agent}.wav"')
    with pytest.raises(RuleFileError) as caught:
        load_rulebook(rules)
    assert (caught.value.path.name, caught.value.line) == ("deployment.yaml", line)
    assert "unknown field {agent}" in caught.value.reason or "needs a strftime format" in caught.value.reason


def _write(folder: Path, text: str) -> Path:
    path = folder / "sidecar.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _version_1_store(db: Path) -> str:
    """A store as qa-audio wrote it before store version 2: no call_metadata, no item columns."""
    from qa_audio.batch.store import FileKey
    from tests.helpers import good_call, with_finding

    result = with_finding(good_call(), "greeting", agent_id_digits="1024", agent_id_complete=True)
    item = {"id": "1b", "name": "首问语", "points": 2, "score": 1.0, "status": "auto", "advice": ["首问语按标准话术"],
            "evidence": [{"start": 0.8, "note": "首问语缺工号"}]}
    result["rubric"] = {"items": [item], "total": 1.0, "max_total": 2.0, "flags": []}
    call_id = "b" * 64
    with Store(db) as store:
        store.add_result(FileKey("/a/old.wav", 1, 0.0, call_id), result)
    conn = sqlite3.connect(db)
    for column in ("advice", "moment", "moment_note"):
        conn.execute(f"ALTER TABLE rubric_items DROP COLUMN {column}")
    conn.execute("DROP TABLE call_metadata")
    conn.execute("UPDATE meta SET value='1' WHERE key='store_version'")
    conn.commit()
    conn.close()
    return call_id


def test_a_version_1_store_is_read_as_it_is_and_upgraded_by_a_writer(tmp_path):
    db = tmp_path / "qa.db"
    call_id = _version_1_store(db)
    sheet = load_rubric()
    with Store(db, read_only=True) as store:  # a reader leaves it as it is
        old = build_report(store, sheet, load_categories(None, sheet), "agent")
    assert [(g.key, g.calls) for g in old.groups] == [(UNKNOWN, 1)]
    assert old.groups[0].coaching[0].advice == "首问语按标准话术"  # from the JSON
    with Store(db) as store:  # a writer upgrades it
        version = store.conn.execute("SELECT value FROM meta WHERE key='store_version'").fetchone()[0]
        row = store.conn.execute("SELECT advice, moment, moment_note FROM rubric_items").fetchone()
        meta = store.metadata()[call_id]
        new = build_report(store, sheet, load_categories(None, sheet), "agent")
    assert version == str(STORE_VERSION) and tuple(row) == ('["首问语按标准话术"]', 0.8, "首问语缺工号")
    assert (meta["agent_id"], meta["source"]) == ("1024", "heard")
    assert [(g.key, g.calls) for g in new.groups] == [("1024", 1)]
    assert new.groups[0].coaching[0].moments[0].start == 0.8


def test_batch_metadata_reaches_calls_already_analysed_without_analysing_them(tmp_path):
    from qa_audio.batch.run import BatchOptions, plan
    from qa_audio.call_metadata import read_metadata_csv
    from tests.helpers import SAMPLE_CALLS, good_call

    recording = tmp_path / "20261130_A1024_0001.wav"
    recording.write_bytes((SAMPLE_CALLS / "call02_partial_script.wav").read_bytes())
    sidecar = _write(tmp_path, "file,agent_id,team,started_at\n"
                               "20261130_A1024_0001.wav,A1024,甲组,2026-11-30T09:00:00\n")
    with Store(tmp_path / "qa.db") as store:
        key = hash_file(recording)
        store.add_result(key, good_call())  # analysed last night, before the phone system's export came
        work = plan(store, [recording], BatchOptions(metadata=read_metadata_csv(sidecar)))
        row = store.metadata()[key.call_id]
    assert (work.jobs, work.skipped_done) == ([], 1)
    assert (row["agent_id"], row["team"], row["started_at"], row["source"]) == \
        ("A1024", "甲组", "2026-11-30T09:00:00", "csv")
