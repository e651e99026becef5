"""How long `qa-audio report` takes over a big store: 100,000 calls, 200 agents, 20 teams, 12 weeks.

    .venv/bin/python bench/report.py                      # 100,000 calls, median of 3 runs per report
    .venv/bin/python bench/report.py --calls 20000 --repeat 5 --keep /tmp/qa-100k.db

The store is synthetic but shaped like a real one: every call has the shipped sheet's items (scores
drawn within each item's bands, the advice and evidence an item carries when it loses points), the
findings the team report reads (answer delay, greeting with the 工号, dead air in ~8% of calls, a
forbidden phrase in ~5%, a pace outlier in ~10%), call metadata, and inspector reviews on ~10% of
the calls. It is written with SQL in bulk (the batch would take days to analyse 100,000 calls), in
the store's own schema (``Store`` creates it). Timed: ``build_report`` (the SQL) and rendering the
HTML or CSV, for ``--by agent`` and ``--by team``, on a read-only connection as the command opens it,
and the whole ``qa-audio report`` command in a new process.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa_audio.batch.store import Store  # noqa: E402
from qa_audio.coaching.categories import load_categories  # noqa: E402
from qa_audio.coaching.figures import build_report  # noqa: E402
from qa_audio.coaching.html import render_report_html  # noqa: E402
from qa_audio.coaching.table import write_report_csv  # noqa: E402
from qa_audio.rubric import load_rubric  # noqa: E402

PHRASES = ["我不知道", "我不清楚", "你问我，我问谁", "你投诉都没用的"]
ADVICE = "按标准话术改进（合成数据）"


def build_store(path: Path, calls: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    sheet = load_rubric()
    start = date(2026, 9, 7)
    with Store(path) as store:
        conn = store.conn
        conn.execute("BEGIN")
        call_rows, item_rows, finding_rows, meta_rows, review_rows = [], [], [], [], []
        for n in range(calls):
            call_id = f"{n:064x}"
            agent = rng.randrange(200)
            day = start + timedelta(days=rng.randrange(84))
            fatal = rng.random() < 0.03
            total, max_total = 0.0, 0.0
            for item in sheet.items:
                low, high = min(b.min for b in item.bands), max(b.max for b in item.bands)
                choices = [high, high, high, low, (low + high) // 2]
                score = None if item.status == "inspector" else float(rng.choice(choices))
                if score is not None:
                    total += score
                max_total += item.points
                lost = score is not None and score < item.points
                data = {"id": item.id, "name": item.name, "points": item.points, "score": score, "status": item.status,
                        "advice": [ADVICE + item.id] if lost else [],
                        "evidence": [{"start": round(rng.uniform(0, 120), 2), "note": "合成证据"}] if lost else []}
                item_rows.append((call_id, item.id, item.name, item.points, score, 0.8, item.status,
                                  json.dumps(data, ensure_ascii=False), json.dumps(data["advice"], ensure_ascii=False),
                                  data["evidence"][0]["start"] if lost else None, "合成证据" if lost else None))
                if score is not None and rng.random() < 0.1:
                    review_rows.append((call_id, item.id, float(high), "bench", day.isoformat(), day.isoformat()))
            findings = [{"rule": "answer_delay", "role": "agent", "seconds": round(rng.uniform(0.3, 20), 2),
                         "within_limit": rng.random() > 0.05},
                        {"rule": "greeting", "role": "agent", "agent_id_digits": f"{1000 + agent}",
                         "agent_id_complete": True}]
            if rng.random() < 0.08:
                findings.append({"rule": "silence", "role": "none", "hold_notice": False, "duration": 6.0})
            if rng.random() < 0.05 or fatal:
                phrase = rng.choice(PHRASES[2:] if fatal else PHRASES[:2])
                findings.append({"rule": "forbidden_phrase", "role": "agent", "phrase": phrase,
                                 "severity": "0-2" if fatal else "3-5"})
            if rng.random() < 0.1:
                findings.append({"rule": "speech_rate", "role": "agent", "direction": "too_fast"})
            for index, finding in enumerate(findings):
                finding_rows.append((call_id, index, finding["rule"], finding["role"], 0.0, 1.0,
                                     finding.get("severity"), None, json.dumps(finding, ensure_ascii=False)))
            flags = ["fatal"] if fatal else (["needs_review"] if rng.random() < 0.1 else [])
            call_rows.append((call_id, f"/archive/{day.isoformat()}/{n}.wav", 1, day.isoformat() + "T23:00:00+00:00",
                              120.0, 1, total, max_total, json.dumps(flags), 0.8,
                              "reviewed" if rng.random() < 0.1 else "pending_review", "{}"))
            meta_rows.append((call_id, f"A{1000 + agent}", f"T{agent % 20:02d}", day.isoformat() + "T10:00:00",
                              "csv", f"{1000 + agent}", 0, day.isoformat()))
        conn.executemany("INSERT INTO calls (call_id, path, size, analysed_at, duration, channels, total, max_total, "
                         "flags, min_confidence, status, result_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", call_rows)
        conn.executemany("INSERT INTO rubric_items (call_id, item_id, name, points, score, confidence, status, data, "
                         "advice, moment, moment_note) VALUES (?,?,?,?,?,?,?,?,?,?,?)", item_rows)
        conn.executemany('INSERT INTO findings (call_id, idx, rule, role, start, "end", severity, level, data) '
                         "VALUES (?,?,?,?,?,?,?,?,?)", finding_rows)
        conn.executemany("INSERT INTO call_metadata (call_id, agent_id, team, started_at, source, heard_agent_id, "
                         "agent_id_mismatch, updated_at) VALUES (?,?,?,?,?,?,?,?)", meta_rows)
        conn.executemany("INSERT OR IGNORE INTO reviews VALUES (?,?,?,?,?,?)", review_rows)
        conn.execute("COMMIT")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the store here (and reuse it when it is there)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qa-audio-report-") as folder:
        db = args.keep or Path(folder) / "qa.db"
        if not db.exists():
            started = time.perf_counter()
            build_store(db, args.calls)
            print(f"store: {args.calls} calls built in {time.perf_counter() - started:.0f} s "
                  f"({db.stat().st_size / 1e6:.0f} MB)", flush=True)
        sheet = load_rubric()
        categories = load_categories(None, sheet)
        for by in ("agent", "team"):
            figures_s, html_s, csv_s = [], [], []
            for _ in range(args.repeat):
                with Store(db, read_only=True) as store:
                    started = time.perf_counter()
                    report = build_report(store, sheet, categories, by)
                    figures_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                page = render_report_html(report)
                html_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                write_report_csv(report, io.StringIO())
                csv_s.append(time.perf_counter() - started)
            command_s = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "qa_audio", "report", "--db", str(db), "--by", by, "-o",
                                str(Path(folder) / f"report-{by}.html")], check=True, capture_output=True)
                command_s.append(time.perf_counter() - started)
            print(f"--by {by}: {len(report.groups)} groups, {report.calls} calls; median figures (SQL) "
                  f"{statistics.median(figures_s):.2f} s, HTML {statistics.median(html_s):.2f} s "
                  f"({len(page) / 1e6:.1f} MB), CSV {statistics.median(csv_s):.3f} s; the whole command "
                  f"`qa-audio report -o report.html` (a new process: imports, rules, figures, page) median "
                  f"{statistics.median(command_s):.2f} s (min {min(command_s):.2f}, max {max(command_s):.2f})",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
