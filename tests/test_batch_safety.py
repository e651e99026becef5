"""The batch against hostile archives: FIFOs, sockets and devices; rich markup in file names; sources
that are not recordings or list files; a short --max-duration; a worker process killed mid-call.

Each refusal is one line naming the file; a bad file is recorded as failed and the rest go on. The
fast tests never start a worker (every file fails before decoding); the three `slow` ones run the real
models on the shortest sample call (call03, 27 s).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qa_audio.batch.run import BatchOptions, BatchProgress, Job, SourceError, discover, plan, run_batch
from qa_audio.batch.store import Store
from tests.helpers import ROOT, SAMPLE_CALLS

SHORT_CALL = "call03_minimal_script.wav"  # 27.4 s, the shortest sample call
CLI_TIMEOUT = 120  # a FIFO opened for reading would block for ever: the run must end well before


def write_wav_header(path: Path, seconds: float, rate: int = 8000) -> None:
    """A 16-bit mono WAV whose header says ``seconds`` long, as a sparse file (no disk used)."""
    data_bytes = int(seconds * rate) * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes)
    with path.open("wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)


def batch_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "qa_audio.cli.batch", "batch", *args, "--quiet"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("qa-audio: error:")]


def runs(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT finished_at IS NOT NULL, done, failed FROM runs ORDER BY run_id").fetchall()


def special_files(archive: Path) -> dict[str, str]:
    """A FIFO, a socket and a character device (a link to /dev/null) with audio names: name -> kind."""
    os.mkfifo(archive / "call.wav")
    (archive / "sub").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(archive / "sub" / "sock.wav"))
    server.close()  # the socket file stays
    (archive / "null.wav").symlink_to(os.devnull)
    return {"call.wav": "FIFO", "sub/sock.wav": "socket", "null.wav": "character device"}


# ---------------------------------------------------------------------------------------------
# 1. not a regular file


def test_fifo_socket_and_device_are_failed_never_opened(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    kinds = special_files(archive)
    db = tmp_path / "qa.db"
    result = batch_cli(str(archive), "--db", str(db), cwd=tmp_path)  # it used to hang on call.wav for ever
    assert result.returncode == 0, result.stderr
    store = Store(db)
    failures = {Path(f["path"]).relative_to(archive).as_posix(): f for f in store.failures()}
    assert set(failures) == set(kinds)
    for name, kind in kinds.items():
        assert failures[name]["kind"] == "unreadable"
        assert f"not a regular file ({kind})" in failures[name]["error"]
        assert failures[name]["error"].startswith(str(archive / name))
        assert f"failed {archive / name}: not a regular file ({kind})" in result.stderr
    assert runs(db) == [(1, 0, 3)]
    # a rerun skips them (failed before) and still opens nothing
    again = run_batch([archive], store, BatchOptions())
    assert (again.skipped_failed, again.failed, again.done) == (3, 0, 0)


def test_a_fifo_list_file_is_refused_in_one_line(tmp_path):
    os.mkfifo(tmp_path / "tonight.txt")
    result = batch_cli("tonight.txt", "--db", "qa.db", cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["qa-audio: error: tonight.txt: not a regular file (FIFO); a list file "
                                          "must be a regular file"]
    assert not (tmp_path / "qa.db").exists()


# ---------------------------------------------------------------------------------------------
# 2. rich markup in a path


def test_markup_in_a_failed_path_is_printed_as_text(tmp_path):
    archive = tmp_path / "archive"
    (archive / "x[").mkdir(parents=True)
    write_wav_header(archive / "x[" / "bold].wav", seconds=5 * 3600)  # x[/bold].wav: fails before decoding
    write_wav_header(archive / "[red]y[link=a].wav", seconds=6 * 3600)  # other bytes: not a duplicate
    db = tmp_path / "qa.db"
    result = batch_cli(str(archive), "--db", str(db), cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # it used to exit 1 with a MarkupError traceback
    assert "Traceback" not in result.stderr
    assert f"failed {archive}/x[/bold].wav: 5.0 h long, over --max-duration 4 h" in result.stderr
    assert f"failed {archive}/[red]y[link=a].wav: 6.0 h long" in result.stderr
    assert "batch done" in result.stderr and "failed 2" in result.stderr
    assert runs(db) == [(1, 0, 2)]


def test_summary_falls_back_to_plain_lines_when_rich_fails(monkeypatch, capsys, tmp_path):
    import rich.console

    from qa_audio.batch.run import Summary
    from qa_audio.cli.batch import _print_summary

    def broken(*args, **kwargs):
        raise RuntimeError("no console")

    monkeypatch.setattr(rich.console.Console, "print", broken)
    _print_summary(Summary(files=1, failures=[("/a/x[/bold].wav", "/a/x[/bold].wav: empty file")]), tmp_path)
    err = capsys.readouterr().err
    assert "batch done" in err and "  failed /a/x[/bold].wav: empty file" in err


# ---------------------------------------------------------------------------------------------
# 3. what a source is


def test_sources_are_folders_recordings_or_list_files_by_extension(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    (tmp_path / "b.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A \xff\xfe")  # binary: a recording, not a list
    (tmp_path / "tonight.lst").write_text("a.wav\n# comment\n\nb.m4a\n", encoding="utf-8")
    (tmp_path / "bom.txt").write_bytes("\ufeffa.wav\n".encode())  # Notepad's UTF-8 with a BOM
    assert discover([tmp_path / "b.m4a"]) == [tmp_path / "b.m4a"]
    assert discover([tmp_path / "tonight.lst"]) == [tmp_path / "a.wav", tmp_path / "b.m4a"]
    assert discover([tmp_path / "bom.txt"]) == [tmp_path / "a.wav"]
    (tmp_path / "README.md").write_text("# notes\n" + "some line\n" * 156, encoding="utf-8")
    (tmp_path / "tonight").write_text("a.wav\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("/archive/r\xe9union.wav\n".encode("latin-1"))
    (tmp_path / "nul.list").write_bytes(b"a.wav\x00\n")
    for name, words in [("README.md", "not a recording or a list file (list files end in .txt, .lst or .list"),
                        ("tonight", "not a recording or a list file"),
                        ("latin1.txt", "not UTF-8 text (byte 10)"),
                        ("nul.list", "not a text file (holds NUL bytes)")]:
        with pytest.raises(SourceError) as error:
            discover([tmp_path / name])
        assert str(error.value).startswith(f"{tmp_path / name}: {words}"), str(error.value)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("name, content, reason", [
    ("README.md", "# qa-audio\n\nsome text\n", "README.md: not a recording or a list file (list files end in .txt"),
    ("calls.txt", b"\xff\xfe/a.wav\n", "calls.txt: not UTF-8 text (byte 0); a list file holds one path a line"),
])
def test_a_bad_source_is_refused_in_one_line(tmp_path, name, content, reason):
    source = tmp_path / name
    source.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = batch_cli(name, "--db", "qa.db", cwd=tmp_path)
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"qa-audio: error: {reason}"), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "qa.db").exists()


# ---------------------------------------------------------------------------------------------
# 4. --max-duration below an hour


def test_max_duration_in_fractions_of_an_hour(tmp_path):
    write_wav_header(tmp_path / "long.wav", seconds=72)
    write_wav_header(tmp_path / "short.wav", seconds=18)
    store = Store(tmp_path / "plan.db")
    work = plan(store, [tmp_path / "long.wav", tmp_path / "short.wav"], BatchOptions(max_duration=0.01 * 3600))
    assert [Path(job.key.path).name for job in work.jobs] == ["short.wav"]
    ((key, error, kind),) = work.failed
    assert kind == "too_long" and error == f"{key.path}: 1.2 min long, over --max-duration 0.01 h; not decoded"
    result = batch_cli("long.wav", "--db", "qa.db", "--max-duration", "0.01", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "failed long.wav: 1.2 min long, over --max-duration 0.01 h; not decoded" in result.stderr
    too_small = batch_cli("long.wav", "--db", "qa.db", "--max-duration", "0.001", cwd=tmp_path)
    assert too_small.returncode == 2 and "--max-duration" in too_small.stderr


# ---------------------------------------------------------------------------------------------
# the same with real workers


@pytest.mark.slow
def test_bad_files_among_a_good_call_real_run(tmp_path):
    """A FIFO, garbage bytes under a markup name and a binary .m4a given as a source, beside a good
    call: each bad one failed with its one-line reason, the call analysed, the summary printed."""
    archive = tmp_path / "archive"
    (archive / "x[").mkdir(parents=True)
    (archive / SHORT_CALL).write_bytes((SAMPLE_CALLS / SHORT_CALL).read_bytes())
    os.mkfifo(archive / "call.wav")
    (archive / "x[" / "bold].wav").write_bytes(os.urandom(20000))
    (tmp_path / "voice.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + os.urandom(4000))
    db = tmp_path / "qa.db"
    result = batch_cli(str(archive), str(tmp_path / "voice.m4a"), "--db", str(db), "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    store = Store(db)
    assert [Path(c["path"]).name for c in store.calls()] == [SHORT_CALL]
    failures = {Path(f["path"]).name: f for f in store.failures()}
    assert set(failures) == {"call.wav", "bold].wav", "voice.m4a"}
    assert "not a regular file (FIFO)" in failures["call.wav"]["error"]
    for name in ("bold].wav", "voice.m4a"):
        assert failures[name]["kind"] == "bad_input"
        assert "not a recognised audio file" in failures[name]["error"]
    assert f"failed {archive}/x[/bold].wav: not a recognised audio file" in result.stderr
    assert "UnicodeDecodeError" not in result.stderr and "Traceback" not in result.stderr
    assert runs(db) == [(1, 1, 3)]


def worker_pids() -> list[int]:
    """This process's multiprocessing workers (spawned children; not the resource tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


class KillAfterFirstCommit(BatchProgress):
    """When the first call is stored, SIGKILL one worker process; every worker has a call then."""

    def __init__(self):
        self.killed: list[int] = []
        self.started_names: list[str] = []

    def started(self, job: Job, worker_pid: int) -> None:
        self.started_names.append(Path(job.key.path).name)

    def finished(self, outcome, audio_seconds: float) -> None:
        if not self.killed:
            pids = worker_pids()
            assert pids, "no worker processes found"
            os.kill(pids[0], signal.SIGKILL)
            self.killed.append(pids[0])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers in /proc")
def test_a_worker_killed_mid_run_fails_no_call(tmp_path):
    """One worker SIGKILLed while every worker has a call (the OOM killer's way): the calls of the
    other workers go on, the killed one's call is analysed again; every call stored once, none failed.
    (It used to record every call in flight as worker_died.)"""
    archive = tmp_path / "archive"
    archive.mkdir()
    data = (SAMPLE_CALLS / SHORT_CALL).read_bytes()
    names = [f"call{n}.wav" for n in range(4)]
    for n, name in enumerate(names):  # four calls, each its own bytes
        (archive / name).write_bytes(data[:-2] + bytes([n, 0]))
    store = Store(tmp_path / "qa.db")
    progress = KillAfterFirstCommit()
    summary = run_batch([archive], store, BatchOptions(workers=2, threads=1), progress)
    assert len(progress.killed) == 1
    assert (summary.done, summary.failed, summary.skipped) == (4, 0, 0), summary.failures
    assert store.failures() == []
    rows = store.conn.execute("SELECT path, COUNT(*) FROM calls GROUP BY call_id").fetchall()
    assert sorted((Path(p).name, n) for p, n in rows) == [(name, 1) for name in names]
    # the killed worker's call was handed out twice, every other call once
    assert len(progress.started_names) == 5 and set(progress.started_names) == set(names)
    assert summary.worker_deaths == 1
    assert runs(store.path) == [(1, 4, 0)]


class KillingProgress(BatchProgress):
    """Sends SIGKILL to the worker a second after it was handed one of ``victims`` (name -> kills)."""

    def __init__(self, victims: dict[str, int]):
        self.victims = dict(victims)
        self.handed: list[tuple[str, int]] = []
        self.timers: list[threading.Timer] = []

    def started(self, job: Job, worker_pid: int) -> None:
        name = Path(job.key.path).name
        self.handed.append((name, worker_pid))
        if self.victims.get(name, 0) > 0:
            self.victims[name] -= 1
            # a second in, it is decoding or transcribing (call03 takes several seconds on one thread)
            timer = threading.Timer(1.0, os.kill, (worker_pid, signal.SIGKILL))
            timer.start()
            self.timers.append(timer)


@pytest.mark.slow
def test_a_killed_worker_costs_only_its_own_call(tmp_path):
    """Workers are SIGKILLed mid-call (what the OOM killer does): the call in hand is retried on a new
    worker; one that killed two workers is failed with that reason; nothing else is redone or lost."""
    archive = tmp_path / "archive"
    archive.mkdir()
    data = (SAMPLE_CALLS / SHORT_CALL).read_bytes()
    (archive / "innocent.wav").write_bytes(data)
    (archive / "killed_once.wav").write_bytes(data[:-2] + b"\x01\x00")  # other bytes: another call
    (archive / "killed_twice.wav").write_bytes(data[:-2] + b"\x02\x00")
    store = Store(tmp_path / "qa.db")
    progress = KillingProgress({"killed_once.wav": 1, "killed_twice.wav": 2})
    summary = run_batch([archive], store, BatchOptions(workers=2, threads=1), progress)
    for timer in progress.timers:
        timer.join()
    handed = [name for name, _ in progress.handed]
    assert sorted(handed) == ["innocent.wav", "killed_once.wav", "killed_once.wav", "killed_twice.wav",
                              "killed_twice.wav"], progress.handed
    assert summary.worker_deaths == 3 and (summary.done, summary.failed) == (2, 1)
    rows = store.conn.execute("SELECT path, COUNT(*) FROM calls GROUP BY call_id").fetchall()
    assert sorted((Path(p).name, n) for p, n in rows) == [("innocent.wav", 1), ("killed_once.wav", 1)]
    (failure,) = store.failures()
    assert Path(failure["path"]).name == "killed_twice.wav" and failure["kind"] == "worker_died"
    assert "worker died while analysing this file (2 times, last killed by SIGKILL" in failure["error"]
    assert failure["attempts"] == 1 and "\n" not in failure["error"]
    assert store.integrity_check() == "ok"
    assert runs(store.path) == [(1, 2, 1)]
