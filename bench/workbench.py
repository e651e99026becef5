"""The workbench (`qa-audio serve`) over a big store: page latency idle and under load, and nothing lost.

    .venv/bin/python bench/workbench.py                          # 100,000 calls, 20 inspectors x 10 reviews
    .venv/bin/python bench/workbench.py --calls 2000 --seconds 60 # a quick check
    .venv/bin/python bench/workbench.py --keep /tmp/qa-wb-100k.db # build once, reuse it next time

The store is synthetic but every call carries a real analysis: ``sample_calls/call02_partial_script.wav``
run once through the pipeline (``qa-audio analyze``, about 30 s; ``--result`` gives a saved JSON instead),
its transcript, acoustics, masked number and findings, with the sheet's scores drawn within each item's
bands (about 2% fatal with a 0-2 band 服务忌语, 3% with a 3-5 band one, 8% with an unsure auto item,
weaker calls scored lower), so the queue holds fatal (~2%), low-confidence (~9%), low-total (~18%)
and routine (~71%) calls. Call ids are uniform hex (sha256), as the calibration choice
and the random sample expect. ~5% of the calls carry an imported review. Each call's path is its own
symbolic link to one copy of the recording, so the call page's player works and no two calls share a
path. The rows are written with SQL in bulk, in the store's own schema (``Store`` creates it), in one
transaction; then one lead and ``--inspectors`` inspectors get accounts.

Then the real server runs in a subprocess (``python -m qa_audio serve``, waitress, 127.0.0.1, a free
port), and the bench times over HTTP:

1. **idle**: signed in as the lead and as an inspector, ``--repeat`` GETs of the queue's first page
   (待我复核), a deep page (page 500, or the last), the queue of one agent, ``flag=fatal``, one week of
   calls, the call page and a Range of the audio of five different calls; p50 / p95 (and the first,
   cold, request) per page kind;
2. **under load**: the lead assigns each inspector its own ``--reviews`` calls (and a calibration call
   also to the next inspector, for a second opinion), then one thread per inspector loops: its queue
   (``assigned=me&status=todo``), the first call's page, a Range of its audio, the review POSTed
   (``then=next``) with every item scored as the page pre-fills it (the first allowed value where it
   does not); meanwhile a batch writer in another process adds a new call every ``--write-every``
   seconds with ``Store.add_result`` (one transaction per call, as the batch does). Until every
   review is in or ``--seconds`` pass. Every status is counted (5xx, 4xx, exceptions) and the
   latencies of the queue, the call page, the audio and the review POST (and of each batch write);
3. **nothing lost or duplicated**: in the store afterwards, one ``review_notes`` row per accepted POST
   (302), ``reviews`` rows = first opinions x items, ``second_reviews`` rows = second opinions x
   items (calibration calls only), one first opinion per call, its items all by one inspector, the
   calls marked reviewed, ``review_history`` rows for every score, note and assignment, every call the
   writer added present, ``PRAGMA integrity_check`` ok. The last line is ``OK`` or ``FAILED: …``
   (exit 1).

A store kept with ``--keep`` is reused: the workbench's state of an earlier run (sessions,
assignments, notes, the workbench's reviews) is removed first (the history keeps the removals).

The default run takes 5 to 6.5 minutes on 2 cores (measured 4 min 43 s and 6 min 24 s on a shared
machine) and needs ~5 GB in the temporary folder: the analysis 0.5, building the 100,000 calls (4.7 GB)
about 1-1.5, the idle pages about 1, the load phase 2 to ``--seconds`` (3), the checks
(``integrity_check`` of the whole file) about 0.5. ``--calls 2000 --seconds 60`` takes under a minute.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import math
import multiprocessing
import random
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa_audio.batch.reviews import is_calibration  # noqa: E402
from qa_audio.batch.store import FileKey, Store, now  # noqa: E402
from qa_audio.rubric import load_rubric  # noqa: E402
from qa_audio.workbench.accounts import add_user, create_account_tables  # noqa: E402
from qa_audio.workbench.settings import load_workbench_settings  # noqa: E402

SAMPLE = ROOT / "sample_calls" / "call02_partial_script.wav"
PASSWORD = "bench password 2026"
LEAD = "lead01"
START = date(2026, 9, 7)
DAYS = 84
AGENTS = 200
CHUNK = 2000
TIMEOUT = 120.0
FATAL_PHRASES = ["你投诉都没用的", "你问我，我问谁"]
SEVERE_PHRASES = ["我不知道", "我不清楚"]
DYNAMIC = ("call", "roles", "findings", "rubric")
RUBRIC_DYNAMIC = ("total", "flags", "review_reasons", "summary", "items")

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CALL_LINK = re.compile(r'class="call-link" href="/calls/([0-9a-f]{64})"')
PAGES = re.compile(r"第 \d+ / (\d+) 页")
SELECT = re.compile(r'<select name="(score_[^"]+)".*?</select>', re.S)
OPTION = re.compile(r'<option value="([^"]*)"\s*(selected)?')


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- the synthetic calls
@dataclass
class Drawn:
    """One synthetic call: the parts of its result that differ from the real analysis, and its columns."""

    call: dict[str, Any]
    roles: dict[str, Any]
    findings: list[dict[str, Any]]
    findings_json: str
    rubric: dict[str, Any]
    item_json: list[str]
    total: float
    max_total: float
    flags: list[str]
    min_confidence: float | None
    fatal: int
    severe: int
    reason: str
    """the queue class it falls in: fatal, low_confidence, low_total or routine"""

    def result(self, base: dict[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in base.items() if k not in DYNAMIC}, "call": self.call, "roles": self.roles,
                "findings": self.findings, "rubric": self.rubric}


class Synthesizer:
    """Calls shaped like one real analysis: its transcript, acoustics and findings (a 服务忌语 or a
    silence added to some), the sheet's scores drawn within each item's bands, the flags, totals and
    confidences that follow from them, and a who-took-the-call section."""

    def __init__(self, base: dict[str, Any], low_confidence: float, low_total: float):
        sheet = load_rubric()
        self.base = base
        self.low_confidence, self.low_total = low_confidence, low_total
        self.needs_review_below, self.low_role_confidence = sheet.needs_review_below, sheet.low_role_confidence
        self.sheet_items = {item.id: item for item in sheet.items}
        self.head = _dumps({k: v for k, v in base.items() if k not in DYNAMIC})[:-1]
        rubric = base["rubric"]
        self.rubric_static = {k: v for k, v in rubric.items() if k not in RUBRIC_DYNAMIC}
        self.rubric_head = _dumps(self.rubric_static)[:-1]
        self.items = rubric["items"]
        self.max_total = float(rubric["max_total"])
        self.role_confidence = float((base.get("roles") or {}).get("confidence") or 1.0)
        self._items: dict[tuple[str, float | None, float | None], tuple[dict[str, Any], str]] = {}
        self._findings: dict[tuple[str | None, bool], tuple[list[dict[str, Any]], str]] = {}
        self._roles: dict[float, tuple[dict[str, Any], str]] = {}

    def _item(self, item: dict[str, Any], score: float | None, confidence: float | None) -> tuple[dict, str]:
        key = (item["id"], score, confidence)
        if key not in self._items:
            band = next((b.text for b in self.sheet_items[item["id"]].bands
                         if score is not None and b.min <= score <= b.max), None)
            lost = score is not None and score < item["points"]
            data = {**item, "score": None if score is None else _whole(score), "confidence": confidence,
                    "band": band if score is not None else None,
                    "advice": list(item.get("advice") or []) if lost else []}
            self._items[key] = (data, _dumps(data))
        return self._items[key]

    def _findings_of(self, phrase: str | None, silence: bool) -> tuple[list[dict[str, Any]], str]:
        key = (phrase, silence)
        if key not in self._findings:
            findings = list(self.base.get("findings") or [])
            if silence:
                findings.append({"rule": "silence", "role": "none", "start": 22.0, "end": 28.5, "text": "",
                                 "confidence": None, "duration": 6.5, "hold_notice": False,
                                 "hold_notice_text": None, "hold_notice_start": None})
            if phrase:
                severity = "0-2" if phrase in FATAL_PHRASES else "3-5"
                findings.append({"rule": "forbidden_phrase", "role": "agent", "start": 14.2, "end": 15.4,
                                 "text": phrase, "confidence": 0.95, "phrase": phrase, "severity": severity,
                                 "score": 0.95, "source": "forbidden_phrases.yaml:31"})
            self._findings[key] = (findings, _dumps(findings))
        return self._findings[key]

    def _roles_of(self, confidence: float) -> tuple[dict[str, Any], str]:
        if confidence not in self._roles:
            roles = {**(self.base.get("roles") or {}), "confidence": confidence}
            self._roles[confidence] = (roles, _dumps(roles))
        return self._roles[confidence]

    def draw(self, rng: random.Random, agent: int, day: date) -> Drawn:
        kind = rng.random()
        fatal, severe = kind < 0.02, 0.02 <= kind < 0.05
        quality = rng.random()
        unsure_item = rng.choice([i["id"] for i in self.items if i["status"] == "auto"]) if rng.random() < 0.08 \
            else None
        role_conf = 0.5 if rng.random() < 0.01 else self.role_confidence
        items, texts, total = [], [], 0.0
        for item in self.items:
            confidence = item.get("confidence")
            if item["status"] == "inspector":
                score = None
            else:
                bands = sorted(((float(lo), float(hi)) for lo, hi in item["bands"]), reverse=True)
                if quality < 0.83:  # a good call: the top band, sometimes the next
                    index = 0 if rng.random() < 0.9 else 1
                elif quality < 0.95:  # a fair one
                    index = rng.choice((0, 0, 0, 1, 1, 2))
                else:  # a weak one
                    index = rng.randrange(len(bands))
                if item["id"] == "7b" and (fatal or severe):
                    index = len(bands) - 1 if fatal else len(bands) - 2
                elif item["id"] == "2a" and (fatal or severe):
                    index = len(bands) - 2
                low, high = bands[min(index, len(bands) - 1)]
                score = float(rng.randint(math.ceil(low), math.floor(high))) if high > low else low
                if item["id"] == unsure_item:
                    confidence = rng.choice((0.45, 0.5, 0.55, 0.62, 0.66))
                total += score
            data, text = self._item(item, score, confidence)
            items.append(data)
            texts.append(text)
        total = round(total, 2)
        auto = [d for d in items if d["status"] == "auto"]
        low_auto = [d["id"] for d in auto if d["confidence"] is not None and d["confidence"] < self.needs_review_below]
        flags = (["fatal"] if fatal else []) + (
            ["needs_review"] if low_auto or role_conf < self.low_role_confidence else [])
        reasons = ([f"自动判定项置信度低：{', '.join(low_auto)}"] if low_auto else []) + (
            [f"角色判定置信度低（{role_conf:.2f}）"] if role_conf < self.low_role_confidence else [])
        auto_total = sum(d["score"] for d in auto if d["score"] is not None)
        static = self.rubric_static
        summary = (f"合计 {total:g}/{self.max_total:g}（自动判定 {auto_total:g}/{static['auto_max']:g} 分，"
                   f"建议分 {total - auto_total:g}/{static['scored_max'] - static['auto_max']:g} 分，"
                   f"待质检员评定 {static['inspector_points']:g} 分）")
        rubric = {**static, "total": _whole(total), "flags": flags, "review_reasons": reasons, "summary": summary,
                  "items": items}
        phrase = rng.choice(FATAL_PHRASES) if fatal else rng.choice(SEVERE_PHRASES) if severe else None
        findings, findings_json = self._findings_of(phrase, rng.random() < 0.08)
        roles, _ = self._roles_of(role_conf)
        confidences = [d["confidence"] for d in auto if d["confidence"] is not None] + [role_conf]
        min_conf = round(min(confidences), 4)
        call = {"agent_id": f"A{1000 + agent}", "team": f"T{agent % 20:02d}",
                "started_at": f"{day.isoformat()}T{9 + agent % 9:02d}:{agent % 60:02d}:00", "queue": "billing",
                "direction": "inbound", "source": "csv", "heard_agent_id": None, "agent_id_mismatch": False}
        if fatal:
            reason = "fatal"
        elif "needs_review" in flags or min_conf < self.low_confidence:
            reason = "low_confidence"
        elif total / self.max_total < self.low_total:
            reason = "low_total"
        else:
            reason = "routine"
        return Drawn(call=call, roles=roles, findings=findings, findings_json=findings_json, rubric=rubric,
                     item_json=texts, total=total, max_total=self.max_total, flags=flags, min_confidence=min_conf,
                     fatal=int(fatal), severe=int(severe), reason=reason)

    def result_json(self, drawn: Drawn) -> str:
        """``json.dumps(drawn.result(base))`` (same keys, same values), from the parts dumped once."""
        rubric = (self.rubric_head + f', "total": {_dumps(drawn.rubric["total"])}, "flags": {_dumps(drawn.flags)}, '
                  f'"review_reasons": {_dumps(drawn.rubric["review_reasons"])}, '
                  f'"summary": {_dumps(drawn.rubric["summary"])}, "items": [{", ".join(drawn.item_json)}]}}')
        return (self.head + f', "call": {_dumps(drawn.call)}, "roles": {self._roles_of(drawn.roles["confidence"])[1]}, '
                f'"findings": {drawn.findings_json}, "rubric": {rubric}}}')


def _whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def bench_id(label: str, n: int) -> str:
    """A uniform call id, like a recording's sha256."""
    return hashlib.sha256(f"{label}-{n}".encode()).hexdigest()


def get_analysis(folder: Path, given: Path | None) -> dict[str, Any]:
    """The real analysis of the sample call: ``given``, or ``qa-audio analyze`` run once (cached in ``folder``)."""
    out = given or folder / "call02.analysis.json"
    if not out.exists():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qa_audio", "analyze", str(SAMPLE), "--format", "json", "-o", str(out)],
                       check=True, capture_output=True, cwd=ROOT)
        print(f"analysis: {SAMPLE.name} analysed in {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(out.read_text(encoding="utf-8"))


def audio_folder(db: Path) -> Path:
    return db.parent / f"{db.name}-audio"


def build_store(db: Path, calls: int, base: dict[str, Any], seed: int = 7) -> Counter:
    """``calls`` synthetic calls in bulk SQL, one transaction; returns how many fall in each queue class."""
    settings = load_workbench_settings()
    synth = Synthesizer(base, settings.low_confidence, settings.low_total)
    rng = random.Random(seed)
    folder = audio_folder(db)
    folder.mkdir(parents=True, exist_ok=True)
    recording = folder / SAMPLE.name
    if not recording.exists():
        recording.write_bytes(SAMPLE.read_bytes())
    size = recording.stat().st_size
    shares: Counter = Counter()
    stamp = now()
    with Store(db) as store:
        conn = store.conn
        # One big transaction: with a rollback journal the ~4.7 GB are written once, not to the WAL and
        # then again into the file; the store is put back in WAL mode (as the batch keeps it) after.
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("BEGIN IMMEDIATE")
        for start in range(0, calls, CHUNK):
            call_rows, item_rows, finding_rows, meta_rows, path_rows, review_rows = [], [], [], [], [], []
            for n in range(start, min(calls, start + CHUNK)):
                call_id = bench_id("bench", n)
                agent = rng.randrange(AGENTS)
                day = START + timedelta(days=rng.randrange(DAYS))
                drawn = synth.draw(rng, agent, day)
                shares[drawn.reason] += 1
                if n == 0:  # the fast serialisation is the plain one
                    assert json.loads(synth.result_json(drawn)) == json.loads(_dumps(drawn.result(base)))
                day_folder = folder / day.isoformat()
                day_folder.mkdir(exist_ok=True)
                path = day_folder / f"call-{n:06d}.wav"
                if not path.is_symlink():
                    path.symlink_to(recording)
                analysed = f"{day.isoformat()}T23:{n % 60:02d}:00+00:00"
                reviewed = rng.random() < 0.05
                call_rows.append((call_id, str(path), size, analysed, base["audio"]["duration"],
                                  base["audio"]["channels"], drawn.total, drawn.max_total, _dumps(drawn.flags),
                                  drawn.min_confidence, "reviewed" if reviewed else "pending_review", 20.5,
                                  len(drawn.findings), drawn.fatal, drawn.severe, synth.result_json(drawn)))
                for item, text in zip(drawn.rubric["items"], drawn.item_json, strict=True):
                    evidence = (item.get("evidence") or [{}])[0]
                    item_rows.append((call_id, item["id"], item["name"], item["points"], item["score"],
                                      item["confidence"], item["status"], text, _dumps(item["advice"]),
                                      evidence.get("start"), evidence.get("note")))
                    if reviewed:
                        score = item["score"] if item["score"] is not None else float(item["bands"][-1][1])
                        review_rows.append((call_id, item["id"], score, f"import{n % 5}", analysed, analysed,
                                            item["score"], "import"))
                for index, finding in enumerate(drawn.findings):
                    finding_rows.append((call_id, index, finding["rule"], finding["role"], finding.get("start"),
                                         finding.get("end"), finding.get("severity"), finding.get("level"),
                                         _dumps(finding)))
                meta = drawn.call
                meta_rows.append((call_id, meta["agent_id"], meta["team"], meta["started_at"], meta["queue"],
                                  meta["direction"], "csv", None, 0, stamp))
                path_rows.append((call_id, str(path), analysed, analysed))
            conn.executemany(
                "INSERT INTO calls (call_id, path, size, analysed_at, duration, channels, total, max_total, flags, "
                "min_confidence, status, processing_seconds, finding_count, fatal_finding, severe_finding, "
                "result_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", call_rows)
            conn.executemany("INSERT INTO rubric_items (call_id, item_id, name, points, score, confidence, status, "
                             "data, advice, moment, moment_note) VALUES (?,?,?,?,?,?,?,?,?,?,?)", item_rows)
            conn.executemany('INSERT INTO findings (call_id, idx, rule, role, start, "end", severity, level, data) '
                             "VALUES (?,?,?,?,?,?,?,?,?)", finding_rows)
            conn.executemany("INSERT INTO call_metadata (call_id, agent_id, team, started_at, queue, direction, "
                             "source, heard_agent_id, agent_id_mismatch, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                             meta_rows)
            conn.executemany("INSERT INTO paths (call_id, path, first_seen, last_seen) VALUES (?,?,?,?)", path_rows)
            conn.executemany("INSERT INTO reviews (call_id, item_id, inspector_score, inspector, reviewed_at, "
                             "imported_at, prefill, source) VALUES (?,?,?,?,?,?,?,?)", review_rows)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('bench_workbench_calls', ?)", (str(calls),))
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
    return shares


def ensure_audio(db: Path) -> None:
    """A kept store's links to the recording, made again where they are gone."""
    folder = audio_folder(db)
    recording = folder / SAMPLE.name
    folder.mkdir(parents=True, exist_ok=True)
    if not recording.exists():
        recording.write_bytes(SAMPLE.read_bytes())
    with Store(db, read_only=True) as store:
        for (path,) in store.conn.execute("SELECT path FROM calls"):
            link = Path(path)
            if not link.exists() and link.parent.parent == folder:
                link.parent.mkdir(exist_ok=True)
                if link.is_symlink():
                    link.unlink()
                link.symlink_to(recording)


def prepare_accounts(db: Path, inspectors: list[str]) -> int:
    """The accounts (made where missing), the workbench's state of an earlier run removed; returns the
    history's last sequence number before this run."""
    settings = load_workbench_settings()
    with Store(db) as store, store.transaction() as conn:
        create_account_tables(conn)
        have = {row[0] for row in conn.execute("SELECT name FROM users")}
        for name, role in [(LEAD, "lead")] + [(name, "inspector") for name in inspectors]:
            if name not in have:
                add_user(conn, name, role, PASSWORD, settings)
        for table in ("sessions", "login_failures", "assignments", "review_notes", "second_reviews"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("DELETE FROM reviews WHERE source = 'workbench'")
        conn.execute("UPDATE calls SET status = 'pending_review' WHERE status = 'reviewed' AND NOT EXISTS "
                     "(SELECT 1 FROM reviews r WHERE r.call_id = calls.call_id)")
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM review_history").fetchone()[0])


# --------------------------------------------------------------------------- the batch writer (another process)
def batch_writer(db: str, folder: str, base_json: str, label: str, every: float, ready: Any, stop: Any,
                 out: str) -> None:
    """New calls into the store as the batch adds them: ``Store.add_result``, one transaction per call."""
    base = json.loads(base_json)
    settings = load_workbench_settings()
    synth = Synthesizer(base, settings.low_confidence, settings.low_total)
    rng = random.Random(label)
    recording = Path(folder) / SAMPLE.name
    new = Path(folder) / f"writer-{label}"
    new.mkdir(parents=True, exist_ok=True)
    written, seconds, errors = [], [], []
    with Store(db) as store:
        ready.set()
        n = 0
        next_at = time.perf_counter()
        while not stop.is_set():
            call_id = bench_id(f"bench-writer-{label}", n)
            path = new / f"call-{n:06d}.wav"
            path.symlink_to(recording)
            stat = path.stat()
            agent = rng.randrange(AGENTS)
            result = synth.draw(rng, agent, date.today()).result(base)
            started = time.perf_counter()
            try:
                store.add_result(FileKey(str(path), stat.st_size, stat.st_mtime, call_id), result,
                                 processing_seconds=20.5)
                written.append(call_id)
            except sqlite3.Error as exc:
                errors.append(f"{call_id[:12]}: {exc}")
            seconds.append(time.perf_counter() - started)
            n += 1
            next_at += every
            stop.wait(max(0.0, next_at - time.perf_counter()))
    Path(out).write_text(_dumps({"written": written, "seconds": seconds, "errors": errors}), encoding="utf-8")


# --------------------------------------------------------------------------- HTTP
@dataclass
class Log:
    """Every answer: its status by page kind, latencies, exceptions."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.seconds.setdefault(kind, []).append(seconds)
            self.statuses[(kind, status)] += 1

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def count(self, low: int, high: int) -> int:
        return sum(n for (_, status), n in self.statuses.items() if low <= status < high)


class Client:
    """One signed-in browser: a session cookie, its CSRF token, every request timed into ``log``."""

    def __init__(self, base: str, name: str, log: Log):
        self.base, self.name, self.log = base, name, log
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy for 127.0.0.1
        page = self.http.get(f"{base}/login", timeout=TIMEOUT)
        token = CSRF.search(page.text).group(1)
        started = time.perf_counter()
        answer = self.http.post(f"{base}/login", data={"name": name, "password": PASSWORD, "csrf_token": token,
                                                       "next": "/queue"}, allow_redirects=False, timeout=TIMEOUT)
        log.add("sign-in (Argon2)", answer.status_code, time.perf_counter() - started)
        if answer.status_code != 302:
            raise RuntimeError(f"{name}: sign-in answered {answer.status_code}: {answer.text[:200]}")
        self.csrf = CSRF.search(self.get("/queue?status=reviewed", "sign-in (Argon2)", record=False).text).group(1)

    def request(self, method: str, path: str, kind: str, record: bool = True, expect: tuple[int, ...] = (200,),
                **options: Any) -> requests.Response | None:
        started = time.perf_counter()
        try:
            answer = self.http.request(method, self.base + path, allow_redirects=False, timeout=TIMEOUT, **options)
        except requests.RequestException as exc:
            self.log.error(f"{self.name} {method} {path[:90]}: {type(exc).__name__}: {exc}")
            self.log.add(kind, -1, time.perf_counter() - started)
            return None
        elapsed = time.perf_counter() - started
        if record:
            self.log.add(kind, answer.status_code, elapsed)
        if answer.status_code not in expect:
            self.log.error(f"{self.name} {method} {path[:90]}: {answer.status_code} {_message(answer.text)}")
        return answer

    def get(self, path: str, kind: str, record: bool = True, **options: Any) -> requests.Response:
        answer = self.request("GET", path, kind, record, **options)
        if answer is None or answer.status_code != 200:
            raise RuntimeError(f"{self.name} GET {path}: {answer.status_code if answer is not None else 'failed'}")
        return answer


def _message(page: str) -> str:
    found = re.search(r"<p[^>]*>(.*?)</p>", page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()[:160] if found else page[:160]


def review_form(page: str, csrf: str, inspector: str) -> dict[str, str]:
    """The call page's review form as a browser submits it: each select's chosen value, or its first
    allowed value where nothing is chosen (the items left to the inspector)."""
    form = {"csrf_token": csrf, "problems": f"（基准测试）{inspector}：首问语未报工号",
            "suggestions": "按标准话术报工号", "summary": "整体尚可", "then": "next"}
    for select in SELECT.finditer(page):
        options = OPTION.findall(select.group(0))
        chosen = [value for value, selected in options if selected and value]
        form[select.group(1)] = chosen[0] if chosen else next(value for value, _ in options if value)
    return form


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: Path, port: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen([sys.executable, "-m", "qa_audio", "serve", "--db", str(db), "--host", "127.0.0.1",
                                "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}): {log_path.read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/login", timeout=5).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the server did not answer within 120 s: {log_path.read_text()[-2000:]}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- figures
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def print_table(title: str, log: Log, cold: dict[str, float] | None = None) -> None:
    print(title, flush=True)
    width = max(len(kind) for kind in log.seconds)
    for kind, values in log.seconds.items():
        ms = [v * 1000 for v in values]
        first = f"  first {cold[kind] * 1000:7.0f}" if cold and kind in cold else ""
        print(f"  {kind:<{width}}  n {len(ms):4d}  p50 {statistics_median(ms):7.0f} ms  "
              f"p95 {percentile(ms, 0.95):7.0f} ms  max {max(ms):7.0f} ms{first}", flush=True)


def statistics_median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# --------------------------------------------------------------------------- the phases
def idle_phase(base: str, lead: Client, inspector: Client, repeat: int) -> None:
    """Each page kind ``repeat`` times as the lead and as an inspector, one request at a time."""
    week_since = (START + timedelta(days=28)).isoformat()
    week_until = (START + timedelta(days=34)).isoformat()
    for client in (lead, inspector):
        client.log = Log()
        cold: dict[str, float] = {}
        first = client.get("/queue", "queue, first page", record=False).text
        pages = int(PAGES.search(first).group(1))
        deep = min(500, pages)
        calls = CALL_LINK.findall(first)[:5]
        kinds = [("queue, first page (todo)", ["/queue"]),
                 (f"queue, page {deep} of {pages}", [f"/queue?page={deep}"]),
                 ("queue, agent A1007", ["/queue?agent=A1007"]),
                 ("queue, flag=fatal", ["/queue?flag=fatal"]),
                 ("queue, one week", [f"/queue?status=all&since={week_since}&until={week_until}"]),
                 (f"call page ({len(calls)} calls)", [f"/calls/{c}" for c in calls]),
                 ("audio, Range 64 KB", [f"/calls/{c}/audio" for c in calls])]
        for kind, paths in kinds:
            headers = {"Range": "bytes=0-65535"} if kind.startswith("audio") else {}
            expect = (206,) if headers else (200,)
            started = time.perf_counter()
            client.request("GET", paths[0], kind, record=False, expect=expect, headers=headers)
            cold[kind] = time.perf_counter() - started
            for i in range(repeat):
                client.request("GET", paths[i % len(paths)], kind, expect=expect, headers=headers)
        role = "lead" if client is lead else "inspector"
        print_table(f"idle, signed in as {client.name} ({role}), {repeat} requests per kind, one at a time "
                    f"(first: the untimed cold request before them):", client.log, cold)
        if client.log.errors or client.log.count(300, 600) or client.log.count(-1, 0):
            raise RuntimeError(f"idle pages failed: {client.log.errors[:5]}")


def assign_calls(lead: Client, inspectors: list[str], per_inspector: int, share: float) -> dict[str, list[str]]:
    """Each inspector its own calls from the lead's queue (待复核, worst first), a calibration call also
    to the next inspector; returns the calls each inspector is to review."""
    wanted = len(inspectors) * per_inspector
    chosen: list[str] = []
    page = 1
    while len(chosen) < wanted:
        found = CALL_LINK.findall(lead.get(f"/queue?status=pending_review&page={page}", "assign: queue").text)
        if not found:
            raise RuntimeError(f"the queue has only {len(chosen)} calls to assign, {wanted} wanted")
        chosen += [c for c in found if c not in chosen]
        page += 1
    todo: dict[str, list[str]] = {name: [] for name in inspectors}
    for index, name in enumerate(inspectors):
        own = chosen[index * per_inspector:(index + 1) * per_inspector]
        todo[name] += own
        second = inspectors[(index + 1) % len(inspectors)]
        if len(inspectors) > 1:
            todo[second] += [c for c in own if is_calibration(c, share)]
    for name, calls in todo.items():
        form = [("csrf_token", lead.csrf), ("inspector", name), ("action", "assign"), ("back", "/queue")]
        answer = lead.request("POST", "/assign", "assign: POST", expect=(302,),
                              data=form + [("call_id", c) for c in calls])
        if answer is None or answer.status_code != 302:
            raise RuntimeError(f"assigning calls to {name} failed: {lead.log.errors[-1:]}")
    return todo


@dataclass
class Accepted:
    call_id: str
    inspector: str
    location: str


def inspector_loop(client: Client, expected: int, deadline: float, accepted: list[Accepted],
                   lock: threading.Lock) -> None:
    """Queue, call page, audio, review POST, until the inspector's queue is empty (or time is up)."""
    refused: set[str] = set()
    attempts = 0
    while time.monotonic() < deadline and attempts < 3 * expected + 3:
        attempts += 1
        answer = client.request("GET", f"/queue?assigned={client.name}&status=todo", "queue (assigned, todo)")
        if answer is None or answer.status_code != 200:
            continue
        calls = [c for c in CALL_LINK.findall(answer.text) if c not in refused]
        if not calls:
            return
        call_id = calls[0]
        page = client.request("GET", f"/calls/{call_id}", "call page")
        if page is None or page.status_code != 200:
            continue
        client.request("GET", f"/calls/{call_id}/audio", "audio, Range 64 KB", expect=(206,),
                       headers={"Range": "bytes=0-65535"})
        form = review_form(page.text, client.csrf, client.name)
        posted = client.request("POST", f"/calls/{call_id}/review", "review POST (then=next)", expect=(302,),
                                data=form)
        if posted is None:
            continue
        if posted.status_code == 302:
            with lock:
                accepted.append(Accepted(call_id, client.name, posted.headers.get("Location", "")))
        elif 400 <= posted.status_code < 500:
            refused.add(call_id)


def load_phase(base: str, lead: Client, inspectors: list[Client], per_inspector: int, seconds: float,
               db: Path, folder: Path, analysis: dict[str, Any], every: float, share: float
               ) -> tuple[Log, list[Accepted], dict[str, list[str]], dict[str, Any], float]:
    todo = assign_calls(lead, [c.name for c in inspectors], per_inspector, share)
    log = Log()
    for client in inspectors:
        client.log = log
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    out = folder / "writer.json"
    writer = context.Process(target=batch_writer, args=(str(db), str(audio_folder(db)), _dumps(analysis),
                                                        secrets.token_hex(4), every, ready, stop, str(out)))
    writer.start()
    accepted: list[Accepted] = []
    lock = threading.Lock()
    try:
        if not ready.wait(120):
            raise RuntimeError("the batch writer did not open the store within 120 s")
        started = time.perf_counter()
        deadline = time.monotonic() + seconds
        threads = [threading.Thread(target=inspector_loop, args=(client, len(todo[client.name]), deadline, accepted,
                                                                 lock), daemon=True) for client in inspectors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 2 * TIMEOUT)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        writer.join(120)
        if writer.is_alive():
            writer.terminate()
            writer.join()
    written = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"written": [], "seconds": [],
                                                                                 "errors": ["no report"]}
    return log, accepted, todo, written, elapsed


# --------------------------------------------------------------------------- the checks
def check_store(db: Path, accepted: list[Accepted], todo: dict[str, list[str]], written: dict[str, Any],
                start_seq: int, share: float) -> list[str]:
    """What is wrong in the store after the load (nothing: [])."""
    problems: list[str] = []
    with Store(db, read_only=True) as store:
        conn = store.conn
        one = conn.execute
        notes = one("SELECT call_id, inspector, second_opinion FROM review_notes").fetchall()
        pairs = {(r["call_id"], r["inspector"]) for r in notes}
        posted = [(a.call_id, a.inspector) for a in accepted]
        first = [r for r in notes if not r["second_opinion"]]
        second = [r for r in notes if r["second_opinion"]]
        items = {r[0]: r[1] for r in one("SELECT call_id, COUNT(*) FROM rubric_items WHERE call_id IN "
                                         "(SELECT call_id FROM review_notes) GROUP BY call_id")}
        reviews = one("SELECT COUNT(*) FROM reviews WHERE source='workbench'").fetchone()[0]
        seconds = one("SELECT COUNT(*) FROM second_reviews").fetchone()[0]
        want_reviews = sum(items.get(r["call_id"], 0) for r in first)
        want_seconds = sum(items.get(r["call_id"], 0) for r in second)
        history = dict(one("SELECT what, COUNT(*) FROM review_history WHERE seq > ? GROUP BY what", (start_seq,))
                       .fetchall())
        scores_by = one("SELECT call_id, COUNT(DISTINCT inspector) AS who, COUNT(*) AS n FROM reviews "
                        "WHERE source='workbench' GROUP BY call_id").fetchall()
        first_by = Counter(r["call_id"] for r in first)
        by_call = Counter(r["call_id"] for r in notes)
        inspector_of = {r["call_id"]: r["inspector"] for r in first}
        mismatched = one("SELECT COUNT(*) FROM reviews r JOIN review_notes n ON n.call_id = r.call_id AND "
                         "n.second_opinion = 0 WHERE r.source='workbench' AND r.inspector IS NOT n.inspector"
                         ).fetchone()[0]
        unmarked = one("SELECT COUNT(*) FROM review_notes n JOIN calls c ON c.call_id = n.call_id "
                       "WHERE c.status <> 'reviewed'").fetchone()[0]
        assigned = one("SELECT COUNT(*) FROM assignments").fetchone()[0]
        ids = written["written"]
        present = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            present += one(f"SELECT COUNT(*) FROM calls c JOIN call_metadata m ON m.call_id = c.call_id WHERE "
                           f"c.call_id IN ({','.join('?' * len(chunk))}) AND EXISTS (SELECT 1 FROM rubric_items i "
                           f"WHERE i.call_id = c.call_id)", chunk).fetchone()[0]
        superseded = one("SELECT COUNT(*) FROM calls WHERE superseded_by IS NOT NULL").fetchone()[0]
        started = time.perf_counter()
        integrity = store.integrity_check()
        integrity_s = time.perf_counter() - started
        total_calls = one("SELECT COUNT(*) FROM calls").fetchone()[0]
    wal = Path(f"{db}-wal")
    wal_mb = wal.stat().st_size / 1e6 if wal.exists() else 0.0

    expected = sum(len(calls) for calls in todo.values())
    print(f"store after the load: {total_calls} calls; review POSTs accepted (302) {len(accepted)} of {expected} "
          f"assigned reviews; review_notes {len(notes)} ({len(first)} first opinions, {len(second)} second "
          f"opinions); reviews (workbench) {reviews} rows (want {want_reviews}); second_reviews {seconds} rows "
          f"(want {want_seconds}); assignments {assigned}; review_history since the start: "
          + ", ".join(f"{what} {n}" for what, n in sorted(history.items()))
          + f"; batch writer: {len(ids)} calls written, {present} present with their items and metadata, "
          f"{len(written['errors'])} errors; superseded calls {superseded}; integrity_check {integrity!r} "
          f"({integrity_s:.0f} s); -wal file {wal_mb:.0f} MB", flush=True)
    if len(posted) != len(set(posted)):
        problems.append(f"{len(posted) - len(set(posted))} reviews accepted twice for the same inspector and call")
    if pairs != set(posted):
        problems.append(f"review_notes and the accepted POSTs differ: {len(pairs - set(posted))} rows without a 302, "
                        f"{len(set(posted) - pairs)} accepted POSTs without a row")
    if reviews != want_reviews:
        problems.append(f"reviews holds {reviews} workbench rows, {want_reviews} wanted (first opinions x items)")
    if seconds != want_seconds:
        problems.append(f"second_reviews holds {seconds} rows, {want_seconds} wanted (second opinions x items)")
    if any(n != 1 for n in first_by.values()) or set(first_by) != set(by_call):
        problems.append("a reviewed call has no first opinion, or more than one")
    if any(r["who"] != 1 for r in scores_by) or mismatched:
        problems.append(f"{mismatched} confirmed scores are not by the call's first inspector")
    twice = [c for c, n in by_call.items() if n > 1]
    if any(not is_calibration(c, share) or n > 2 for c, n in by_call.items() if n > 1):
        problems.append("a call that is not a calibration call was reviewed by two inspectors (or one by three)")
    if any(r["inspector"] == inspector_of.get(r["call_id"]) for r in second):
        problems.append("a second opinion by the call's first inspector")
    if unmarked:
        problems.append(f"{unmarked} reviewed calls are not marked reviewed")
    if history.get("score", 0) < reviews:
        problems.append(f"review_history has {history.get('score', 0)} score rows for {reviews} stored scores")
    if history.get("second opinion", 0) < seconds:
        problems.append(f"review_history has {history.get('second opinion', 0)} second-opinion rows for {seconds}")
    if history.get("notes", 0) < len(notes):
        problems.append(f"review_history has {history.get('notes', 0)} notes rows for {len(notes)} notes")
    if history.get("assigned", 0) < assigned:
        problems.append(f"review_history has {history.get('assigned', 0)} assigned rows for {assigned} assignments")
    if present != len(ids) or written["errors"]:
        problems.append(f"batch writer: {len(ids) - present} of its calls missing, errors {written['errors'][:3]}")
    if not ids:
        problems.append("the batch writer wrote nothing")
    if superseded:
        problems.append(f"{superseded} calls superseded (no call shares a path here)")
    if integrity != "ok":
        problems.append(f"integrity_check: {integrity[:200]}")
    print(f"calibration calls reviewed twice (first + second opinion): {len(twice)}", flush=True)
    return problems


def next_targets(accepted: list[Accepted], todo: dict[str, list[str]]) -> Counter:
    """Where each accepted review's ``then=next`` redirect led: one of the inspector's own assigned calls
    still to do, a call nobody assigned to them, or the queue (nothing left)."""
    done: dict[str, set[str]] = {}
    targets: Counter = Counter()
    for review in accepted:  # in the order they were accepted
        done.setdefault(review.inspector, set()).add(review.call_id)
        found = re.search(r"/calls/([0-9a-f]{64})", review.location)
        if found is None:
            targets["the queue (nothing left)" if "/queue" in review.location else review.location[:40]] += 1
        elif found.group(1) in done[review.inspector]:
            targets["a call they had reviewed"] += 1
        elif found.group(1) in todo[review.inspector]:
            targets["an assigned call still to do"] += 1
        else:
            targets["a call not assigned to them"] += 1
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="build the store here (and reuse it when it is there)")
    parser.add_argument("--inspectors", type=int, default=20)
    parser.add_argument("--reviews", type=int, default=10, help="calls assigned to each inspector")
    parser.add_argument("--repeat", type=int, default=20, help="requests per page kind, idle")
    parser.add_argument("--seconds", type=float, default=180, help="the load phase's limit")
    parser.add_argument("--write-every", type=float, default=0.1, help="the batch writer's pace (s per call)")
    parser.add_argument("--result", type=Path, help="an `analyze --format json` result of "
                        f"{SAMPLE.name} to use instead of analysing it")
    args = parser.parse_args()
    settings = load_workbench_settings()
    names = [f"insp{n:02d}" for n in range(1, args.inspectors + 1)]
    with tempfile.TemporaryDirectory(prefix="qa-audio-workbench-") as tmp:
        folder = Path(tmp)
        db = (args.keep or folder / "qa.db").absolute()
        analysis = get_analysis(db.parent if args.keep else folder, args.result)
        if not db.exists():
            started = time.perf_counter()
            shares = build_store(db, args.calls, analysis)
            built = time.perf_counter() - started
            size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())
            print(f"store: {args.calls} calls built in {built:.0f} s ({size / 1e9:.2f} GB, result_json "
                  f"{len(_dumps(analysis).encode()) / 1e3:.0f} KB a call); queue classes: "
                  + ", ".join(f"{k} {100 * n / args.calls:.1f}%" for k, n in shares.most_common()), flush=True)
        else:
            ensure_audio(db)
            with Store(db, read_only=True) as store:
                count = store.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            print(f"store: reusing {db} ({count} calls, {db.stat().st_size / 1e9:.2f} GB)", flush=True)
        started = time.perf_counter()
        start_seq = prepare_accounts(db, names)
        print(f"accounts: {LEAD} and {len(names)} inspectors ready in {time.perf_counter() - started:.1f} s",
              flush=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        server = start_server(db, port, folder / "serve.log")
        try:
            print(f"server: qa-audio serve on {base} answered in {time.perf_counter() - started:.1f} s", flush=True)
            sign_log = Log()
            lead = Client(base, LEAD, sign_log)
            inspectors = [Client(base, name, sign_log) for name in names]
            print_table(f"sign-in of {1 + len(names)} accounts:", sign_log)
            idle_phase(base, lead, inspectors[0], args.repeat)
            lead.log = Log()
            log, accepted, todo, written, elapsed = load_phase(base, lead, inspectors, args.reviews, args.seconds,
                                                               db, folder, analysis, args.write_every,
                                                               settings.calibration_share)
        finally:
            stop_server(server)
        answers = sum(log.statuses.values())
        print_table(f"under load: {len(names)} inspectors at once for {elapsed:.0f} s, a batch writer adding a "
                    f"call every {args.write_every:g} s ({len(accepted)} reviews, {answers} requests):", log)
        if written["seconds"]:
            ms = [s * 1000 for s in written["seconds"]]
            print(f"  batch writer add_result: n {len(ms)}  p50 {statistics_median(ms):.0f} ms  "
                  f"p95 {percentile(ms, 0.95):.0f} ms  max {max(ms):.0f} ms", flush=True)
        fivexx, fourxx, failed = log.count(500, 600), log.count(400, 500), log.count(-1, 0)
        print("statuses under load: " + ", ".join(f"{kind} {status}: {n}" for (kind, status), n in
                                                    sorted(log.statuses.items())), flush=True)
        print(f"5xx {fivexx}, 4xx {fourxx}, exceptions {failed}", flush=True)
        for line in log.errors[:10]:
            print(f"  {line}", flush=True)
        problems = check_store(db, accepted, todo, written, start_seq, settings.calibration_share)
        if fivexx or fourxx or failed:
            problems.insert(0, f"{fivexx} 5xx, {fourxx} 4xx, {failed} exceptions under load")
        missing = sum(len(c) for c in todo.values()) - len(accepted)
        if missing:
            print(f"note: {missing} assigned reviews were not submitted within --seconds {args.seconds:g}", flush=True)
        print("then=next sent the inspector to: " + ", ".join(
            f"{what} {n}" for what, n in next_targets(accepted, todo).most_common()), flush=True)
    if problems:
        print("FAILED: " + "; ".join(problems), flush=True)
        return 1
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
