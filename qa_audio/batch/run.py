"""The nightly batch: every recording in an archive analysed once, results in the store.

Flow (see ``docs/batch.md``):
1. :func:`discover` lists the recordings (folders walked recursively by extension, list files read).
2. :func:`plan` hashes each one (sha256, streamed) and sorts it: already in the store (skipped,
   its path noted), failed before (skipped unless ``retry_failed``), a duplicate of another file in
   this run, unreadable or longer than ``max_duration`` (recorded as failed without decoding), or to do.
   Anything that is not a regular file (a FIFO, a socket, a device) is recorded as failed from
   ``stat`` alone, never opened.
3. The jobs run on N worker processes (``engine="local"``: :func:`_run_local`, each process builds
   one :class:`~qa_audio.pipeline.Analyzer` and takes one call at a time over its own pipe, so a
   worker that dies names the one call it had) or on a Dask cluster (``engine="dask"``). Workers
   only analyse and return plain dicts; this process alone writes the store, one transaction per
   call, so a kill loses at most the calls in flight.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from qa_audio.batch.store import FileKey, Store, hash_file
from qa_audio.call_metadata import lookup
from qa_audio.pipeline import AnalyzeOptions, Analyzer

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
"""what a folder walk picks up by default (``--extensions``): the formats the decoder reads"""
RECORDING_EXTENSIONS = AUDIO_EXTENSIONS + (".m4a", ".mp4", ".aac", ".amr", ".awb", ".wma", ".opus", ".oga", ".aif",
                                           ".aiff", ".au", ".snd", ".caf", ".gsm", ".vox", ".wv", ".ape", ".3gp",
                                           ".webm", ".mka")
"""a file named as a source with one of these is a recording (an unreadable format fails as bad input)"""
LIST_EXTENSIONS = (".txt", ".lst", ".list")
"""a file named as a source with one of these is a list file (UTF-8, one path a line)"""
DEFAULT_MAX_DURATION = 4 * 3600.0
MAX_AUTO_WORKERS = 8
# dask: jobs queued per worker beyond the one it runs (the local engine gives each worker one at a time).
QUEUE_DEPTH = 1
# local: a call that was in hand each time this many worker processes died is recorded as failed;
# before that it is tried again on a new worker (an out-of-memory kill may have been bad luck).
MAX_WORKER_DEATHS = 2

BAD_INPUT = "bad_input"
TOO_LONG = "too_long"
UNREADABLE = "unreadable"
ERROR = "error"
WORKER_DIED = "worker_died"
SETUP = "setup"


class SourceError(ValueError):
    """A batch source that is neither a folder, a recording nor a usable list file; one line naming it."""


class WorkerSetupError(RuntimeError):
    """A worker could not build its Analyzer (a missing model, a bad rules folder): stops the batch."""


@dataclass(frozen=True)
class BatchOptions:
    analyze: AnalyzeOptions = field(default_factory=AnalyzeOptions)
    workers: int = 0
    """worker processes; 0: one per core (at most 8)"""
    threads: int = 0
    """CPU threads per worker (ASR and torch); 0: cores // workers"""
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS
    max_duration: float = DEFAULT_MAX_DURATION
    retry_failed: bool = False
    engine: str = "local"
    """local (processes on this machine) or dask"""
    scheduler: str | None = None
    """dask: a scheduler address; None starts a LocalCluster"""
    metadata: dict[str, dict[str, str]] | None = None
    """the phone system's CSV rows (call_metadata.read_metadata_csv), stored with each call"""


@dataclass(frozen=True)
class Job:
    key: FileKey
    duration: float | None
    """seconds, from the header (None when the header cannot be read: the worker says why)"""


@dataclass
class Outcome:
    call_id: str
    path: str
    result: dict[str, Any] | None = None
    error: str | None = None
    kind: str | None = None
    seconds: float = 0.0


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    skipped_done: int = 0
    skipped_failed: int = 0
    duplicates: int = 0
    failed: list[tuple[FileKey, str, str]] = field(default_factory=list)
    """(file, error, kind) found before decoding: unreadable or too long"""

    @property
    def skipped(self) -> int:
        return self.skipped_done + self.skipped_failed + self.duplicates


@dataclass
class Summary:
    files: int = 0
    done: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    duplicates: int = 0
    already_stored: int = 0
    """analysed here but stored meanwhile by a racing run: not stored twice"""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of each file that failed in this run"""
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    workers: int = 0
    threads: int = 0
    engine: str = "local"
    interrupted: bool = False
    worker_deaths: int = 0
    """local engine: worker processes that died with a call in hand (the call was retried or failed)"""

    @property
    def skipped(self) -> int:
        return self.skipped_done + self.skipped_failed + self.duplicates

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def real_time_factor(self) -> float | None:
        """wall seconds per second of audio analysed (below 1: faster than real time)"""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else None


class BatchProgress:
    """What the batch reports while it runs; the CLI draws a bar from it. Default: nothing."""

    def planned(self, jobs: int, audio_seconds: float) -> None:
        """the work to do is known"""

    def started(self, job: Job, worker_pid: int) -> None:
        """a worker process (local engine) has been handed ``job``"""

    def finished(self, outcome: Outcome, audio_seconds: float) -> None:
        """one job is stored (done or failed)"""


# ---------------------------------------------------------------------------------------------
# finding and sorting the files


def discover(sources: Iterable[Path | str], extensions: Iterable[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Every recording under ``sources``, in order, each once.

    A source is, by what it is and then by its extension (case-insensitive):

    - a folder: walked recursively; every entry with one of ``extensions`` is taken (a FIFO or socket
      with such a name too: :func:`plan` records it as failed without opening it), others are ignored;
    - a file ending in one of ``extensions`` or another audio extension (:data:`RECORDING_EXTENSIONS`,
      e.g. ``.m4a``): a recording, taken as is (the decoder says whether it can read it);
    - a file ending in ``.txt``, ``.lst`` or ``.list`` (:data:`LIST_EXTENSIONS`): a list file, UTF-8
      text, one path a line, ``#`` comments, relative paths relative to the list's folder;
    - anything else: :class:`SourceError`, one line naming it (a README or a stray binary given by
      mistake is not read as a list of paths).

    A missing source raises ``FileNotFoundError``; a list file that is not a regular file or not
    UTF-8 text raises :class:`SourceError`. A missing file named in a list is returned, and fails
    as unreadable.
    """
    wanted = tuple(e.lower() for e in extensions)
    found: list[Path] = []
    for source in map(Path, sources):
        suffix = source.suffix.lower()
        if source.is_dir():
            found += sorted(p for p in source.rglob("*") if p.suffix.lower() in wanted and not p.is_dir())
        elif suffix in wanted or suffix in RECORDING_EXTENSIONS:
            found.append(source)
        elif not source.exists() and not source.is_symlink():
            raise FileNotFoundError(f"{source}: no such file or folder")
        elif suffix in LIST_EXTENSIONS:
            found += read_list_file(source)
        else:
            raise SourceError(f"{source}: not a recording or a list file (list files end in "
                              f"{', '.join(LIST_EXTENSIONS[:-1])} or {LIST_EXTENSIONS[-1]}; recordings in "
                              f"{', '.join(dict.fromkeys(wanted + AUDIO_EXTENSIONS))}, …)")
    seen: set[Path] = set()
    unique = []
    for path in found:
        if path not in seen:
            seen.add(path)
            unique.append(path)
    return unique


def read_list_file(source: Path) -> list[Path]:
    """The paths in a list file (see :func:`discover`); :class:`SourceError` when it cannot be one."""
    problem = not_a_regular_file(source)
    if problem:
        raise SourceError(f"{source}: {problem}; a list file must be a regular file")
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise SourceError(f"{source}: cannot read the list file: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{source}: not UTF-8 text (byte {exc.start}); a list file holds one path a "
                          "line") from None
    if "\0" in text:
        raise SourceError(f"{source}: not a text file (holds NUL bytes); a list file holds one path a line")
    paths = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entry = Path(line)
            paths.append(entry if entry.is_absolute() else source.parent / entry)
    return paths


def not_a_regular_file(path: Path | str) -> str | None:
    """``"not a regular file (FIFO)"`` and the like, from ``stat`` alone (nothing is opened: opening
    a FIFO blocks until a writer comes, a device may act on open); None for a regular file or a path
    that cannot be stat'ed (the caller's read reports that)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return f"not a regular file ({kind})"
    return "not a regular file"


def header_duration(path: str) -> float | None:
    import soundfile

    try:
        info = soundfile.info(path)
    except Exception:  # the worker's decoder gives the precise reason
        return None
    return float(info.frames) / info.samplerate if info.samplerate else None


def plan(store: Store, paths: Iterable[Path], options: BatchOptions) -> Plan:
    """Hash every file and decide what to do with it (see the module docstring)."""
    result = Plan()
    seen: set[str] = set()
    for path in paths:
        key = _regular_file_key(path) or hash_file(path)
        if key.call_id is None:
            if store.failure(key.failure_key) and not options.retry_failed:
                result.skipped_failed += 1
            else:
                result.failed.append((key, key.error or f"{path}: cannot read", UNREADABLE))
            continue
        if store.has_call(key.call_id):
            store.note_path(key.call_id, key.path)
            given = lookup(options.metadata or {}, key.path)
            if given:
                store.attach_metadata(key.call_id, given)  # metadata that came after the analysis
            result.skipped_done += 1
            continue
        if key.call_id in seen:
            store.note_path(key.call_id, key.path)
            result.duplicates += 1
            continue
        seen.add(key.call_id)
        if store.failure(key.failure_key) and not options.retry_failed:
            result.skipped_failed += 1
            continue
        duration = header_duration(key.path)
        if duration is not None and duration > options.max_duration:
            result.failed.append((key, f"{key.path}: {_length(duration)} long, over --max-duration "
                                       f"{options.max_duration / 3600:g} h; not decoded", TOO_LONG))
            continue
        result.jobs.append(Job(key, duration))
    # Longest first: the night ends sooner when the long calls do not start last.
    result.jobs.sort(key=lambda job: -(job.duration or 0.0))
    return result


def _regular_file_key(path: Path | str) -> FileKey | None:
    """A failed key for anything that is not a regular file (never opened, never hashed), else None.

    Keyed by ``path:size:mtime`` like any unreadable file, so a rerun skips it unless --retry-failed.
    """
    problem = not_a_regular_file(path)
    if problem is None:
        return None
    try:
        status = os.stat(path)
    except OSError:  # gone meanwhile: hash_file says so
        return None
    return FileKey(str(path), status.st_size, status.st_mtime, None, f"{path}: {problem}; never opened")


def _length(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def worker_layout(options: BatchOptions, jobs: int) -> tuple[int, int]:
    """(worker processes, threads each): together about one thread per core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = options.workers or min(cores, MAX_AUTO_WORKERS)
    workers = max(1, min(workers, max(jobs, 1)))
    threads = options.threads or max(1, cores // workers)
    return workers, threads


# ---------------------------------------------------------------------------------------------
# running


def run_batch(sources: Iterable[Path | str], store: Store, options: BatchOptions | None = None,
              progress: BatchProgress | None = None) -> Summary:
    """Analyse every recording under ``sources`` not yet in ``store``; return what happened."""
    sources = list(sources)  # read twice: discovered, then noted in the run's settings
    options = options or BatchOptions()
    progress = _Guarded(progress or BatchProgress())
    started = time.perf_counter()
    paths = discover(sources, options.extensions)
    work = plan(store, paths, options)
    workers, threads = worker_layout(options, len(work.jobs))
    summary = Summary(files=len(paths), skipped_done=work.skipped_done, skipped_failed=work.skipped_failed,
                      duplicates=work.duplicates, workers=workers, threads=threads, engine=options.engine)
    settings = {"sources": [str(s) for s in sources], "workers": workers, "threads": threads,
                "metadata_rows": len(options.metadata or {}),
                "max_duration": options.max_duration, "retry_failed": options.retry_failed,
                "analyze": asdict(options.analyze)}
    run_id = store.start_run(options.engine, settings)

    def commit(job: Job, outcome: Outcome) -> None:
        if outcome.kind == SETUP:
            raise WorkerSetupError(outcome.error or "a worker could not start")
        audio_seconds = job.duration or 0.0
        if outcome.result is not None:
            audio_seconds = float((outcome.result.get("audio") or {}).get("duration") or audio_seconds)
            given = lookup(options.metadata or {}, job.key.path)
            if store.add_result(job.key, outcome.result, run_id, outcome.seconds, given):
                summary.done += 1
            else:
                summary.already_stored += 1
            summary.audio_seconds += audio_seconds
        else:
            error = outcome.error or f"{job.key.path}: unknown error"
            store.add_failure(job.key, error, outcome.kind or ERROR, run_id)
            summary.failures.append((job.key.path, error))
        progress.finished(outcome, job.duration or audio_seconds)

    try:  # from here on the run row is finished whatever happens
        for key, error, kind in work.failed:
            store.add_failure(key, error, kind, run_id)
            summary.failures.append((key.path, error))
        logger.info("%d files: %d to analyse, %d skipped, %d failed before decoding", len(paths),
                    len(work.jobs), work.skipped, len(work.failed))
        progress.planned(len(work.jobs), sum(job.duration or 0.0 for job in work.jobs))
        if work.jobs:
            analyze_options = _with_threads(options.analyze, threads)
            if options.engine == "dask":
                _run_dask(work.jobs, analyze_options, threads, workers, options.scheduler, commit)
            elif options.engine == "local":
                summary.worker_deaths = _run_local(work.jobs, analyze_options, threads, workers, commit,
                                                   progress.started)
            else:
                raise ValueError(f"unknown engine {options.engine!r} (local or dask)")
    except KeyboardInterrupt:
        summary.interrupted = True
        logger.warning("interrupted: calls in flight were not stored; rerun to finish")
    finally:
        summary.wall_seconds = time.perf_counter() - started
        store.finish_run(run_id, summary.done, summary.skipped, summary.failed, summary.audio_seconds,
                         summary.wall_seconds)
    return summary


class _Guarded(BatchProgress):
    """A progress display that fails (a terminal gone, a bug in drawing) is logged and switched off:
    it must not stop the night or lose the run row."""

    def __init__(self, inner: BatchProgress):
        self.inner: BatchProgress | None = inner

    def _call(self, name: str, *args: Any) -> None:
        method = getattr(self.inner, name, None)  # a display may leave out what it does not show
        if method is None:
            return
        try:
            method(*args)
        except Exception as exc:
            logger.warning("progress display failed (%s: %s); the batch goes on without it", type(exc).__name__,
                           _one_line(str(exc)))
            self.inner = None

    def planned(self, jobs: int, audio_seconds: float) -> None:
        self._call("planned", jobs, audio_seconds)

    def started(self, job: Job, worker_pid: int) -> None:
        self._call("started", job, worker_pid)

    def finished(self, outcome: Outcome, audio_seconds: float) -> None:
        self._call("finished", outcome, audio_seconds)


def _with_threads(options: AnalyzeOptions, threads: int) -> AnalyzeOptions:
    return replace(options, threads=threads, asr=replace(options.asr, cpu_threads=threads))


def _run_local(jobs: list[Job], options: AnalyzeOptions, threads: int, workers: int,
               commit: Callable[[Job, Outcome], None], started: Callable[[Job, int], None] | None = None) -> int:
    """Run ``jobs`` on ``workers`` processes, one call at a time each, so a dead worker names its call.

    Each worker has its own pipe: it says ``ready`` once its models are loaded, then takes one job,
    returns its outcome, takes the next. When a worker dies (its process sentinel fires: SIGKILL,
    the kernel's OOM killer, a crash in native code), the one call it was analysing is the only call
    concerned: it goes back to the end of the queue and is tried once more on a new worker; a call
    that has killed :data:`MAX_WORKER_DEATHS` workers is recorded as failed (``worker_died``). The
    other workers and their calls are not touched. Returns how many workers died with a call in hand.
    """
    import multiprocessing
    from multiprocessing.connection import wait as wait_for

    # spawn, not fork: workers start clean (no copy of this process's SQLite handle or threads).
    context = multiprocessing.get_context("spawn")
    queue = deque(jobs)
    deaths: dict[str, int] = {}
    """failure key -> workers that died while analysing that call"""
    setup_deaths = 0
    pool: list[_Worker | None] = [_Worker(context, options, threads) for _ in range(workers)]
    try:
        while queue or any(w is not None and w.job is not None for w in pool):
            idle = sum(1 for w in pool if w is not None and w.job is None)
            for i, worker in enumerate(pool):  # a dead worker is replaced only while there is work for it
                if worker is None and len(queue) > idle:
                    pool[i] = _Worker(context, options, threads)
                    idle += 1
            live = [w for w in pool if w is not None]
            wait_for([w.conn for w in live] + [w.process.sentinel for w in live])
            finished: list[tuple[Job, Outcome]] = []
            for i, worker in enumerate(pool):
                if worker is None:
                    continue
                for kind, payload in worker.receive():
                    if kind == "ready":
                        if payload is not None:
                            raise WorkerSetupError(payload)
                        worker.ready = True
                        setup_deaths = 0
                    elif kind == "done" and worker.job is not None:
                        finished.append((worker.job, payload))
                        worker.job = None
                if worker.process.is_alive() and not worker.broken:
                    if worker.ready and worker.job is None and queue:
                        worker.assign(queue.popleft(), started)  # before the commits: it is not kept waiting
                    continue
                pool[i] = None
                how = worker.reap()
                job = worker.job
                if job is None:
                    if not worker.ready:
                        setup_deaths += 1
                        if setup_deaths > MAX_WORKER_DEATHS:
                            raise WorkerSetupError(f"worker processes keep dying while loading the models "
                                                   f"({how}; out of memory?)")
                    logger.error("a worker process died (%s) with no call in hand", how)
                    continue
                key = job.key.failure_key
                deaths[key] = deaths.get(key, 0) + 1
                if deaths[key] >= MAX_WORKER_DEATHS:
                    logger.error("%s: a worker died while analysing this file, %d times (%s); recorded as failed",
                                 job.key.path, deaths[key], how)
                    finished.append((job, Outcome(
                        job.key.call_id or "", job.key.path, kind=WORKER_DIED,
                        error=f"{job.key.path}: worker died while analysing this file ({deaths[key]} times, "
                              f"last {how}: out of memory or a crash in native code); rerun with --retry-failed")))
                else:
                    logger.warning("%s: the worker analysing it died (%s); it goes back in the queue, to be tried "
                                   "once more on a new worker", job.key.path, how)
                    queue.append(job)
            for job, outcome in finished:
                commit(job, outcome)
    except BaseException:
        for worker in pool:
            if worker is not None:
                worker.kill()
        raise
    for worker in pool:
        if worker is not None:
            worker.ask_to_stop()
    for worker in pool:
        if worker is not None:
            worker.stop()
    return sum(deaths.values())


class _Worker:
    """One worker process of the local engine and the parent's end of its pipe."""

    def __init__(self, context: Any, options: AnalyzeOptions, threads: int):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, options, threads, os.getpid()),
                                       name="qa-audio-worker")
        self.process.start()
        child.close()
        self.ready = False
        self.broken = False
        self.job: Job | None = None

    def assign(self, job: Job, started: Callable[[Job, int], None] | None) -> None:
        self.job = job
        try:
            self.conn.send((job.key.path, job.key.call_id or ""))
        except OSError:  # it is dying: its sentinel says so next
            self.broken = True
            return
        logger.info("%s: analysing (worker pid %s)", job.key.path, self.process.pid)
        if started is not None:
            started(job, self.process.pid or 0)

    def receive(self) -> list[tuple[str, Any]]:
        messages = []
        try:
            while not self.broken and self.conn.poll():
                messages.append(self.conn.recv())
        except (EOFError, OSError):
            self.broken = True  # died (or is dying): the process is reaped by the caller
        return messages

    def reap(self) -> str:
        """Wait for the dead process; how it ended, in words."""
        self.process.join(timeout=10)
        if self.process.exitcode is None:  # its pipe broke but it lives on: end it
            self.process.kill()
            self.process.join()
        self.conn.close()
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def ask_to_stop(self) -> None:
        """No more jobs: it exits when it has read this (its own clean-up runs)."""
        with contextlib.suppress(OSError):
            self.conn.send(None)

    def stop(self, timeout: float = 30.0) -> None:
        """Wait for it to exit after :meth:`ask_to_stop`; kill it after ``timeout`` seconds."""
        self.process.join(timeout=timeout)
        self.kill()

    def kill(self) -> None:
        if self.process.exitcode is None:
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


def _run_dask(jobs: list[Job], options: AnalyzeOptions, threads: int, workers: int, scheduler: str | None,
              commit: Callable[[Job, Outcome], None]) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise RuntimeError("the dask engine needs the 'dask[distributed]' package") from exc

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        queue = deque(jobs)
        by_key: dict[str, Job] = {}
        capacity = max(workers, len(client.scheduler_info().get("workers", {})) or workers) * (1 + QUEUE_DEPTH)

        def submit() -> Any:
            job = queue.popleft()
            future = client.submit(dask_analyze_job, job.key.path, job.key.call_id or "", options, threads,
                                   pure=False, retries=0)
            by_key[future.key] = job
            return future

        pending = as_completed([submit() for _ in range(min(capacity, len(queue)))])
        for future in pending:
            job = by_key.pop(future.key)
            if future.status == "finished":
                outcome = future.result()
            else:
                try:
                    error = future.exception()
                except Exception as exc:  # cancelled (the scheduler gave it up): that is the reason
                    error = exc
                outcome = Outcome(job.key.call_id or "", job.key.path, kind=WORKER_DIED,
                                  error=f"{job.key.path}: the dask task failed ({type(error).__name__}: "
                                        f"{_one_line(str(error))})")
            commit(job, outcome)
            future.release()
            if queue:
                pending.add(submit())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------------------------------
# the worker side

_analyzer: Analyzer | None = None
_setup_error: str | None = None


def init_worker(options: AnalyzeOptions, threads: int, parent_pid: int | None = None) -> None:
    """Build this process's Analyzer (models loaded once) with ``threads`` CPU threads."""
    global _analyzer, _setup_error
    from qa_audio import privacy

    privacy.keep_data_local()
    privacy.quiet_libraries()
    if parent_pid is not None:
        # Ctrl-C is the parent's to handle; and a worker whose parent was killed exits.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    try:
        import torch

        torch.set_num_threads(threads)
        _analyzer = Analyzer(_with_threads(options, threads))
        _analyzer.transcriber  # noqa: B018  (load the ASR model now, not inside the first call)
    except Exception as exc:  # reported with the first job: a broken pool would hide the reason
        logger.exception("worker setup failed")
        _setup_error = _one_line(str(exc)) or type(exc).__name__


def _worker_main(conn: Any, options: AnalyzeOptions, threads: int, parent_pid: int) -> None:
    """A local-engine worker: load the models, say ``ready`` (or why not), then one job at a time."""
    init_worker(options, threads, parent_pid)
    try:
        conn.send(("ready", _setup_error))
        while (message := conn.recv()) is not None:
            path, call_id = message
            conn.send(("done", analyze_job(path, call_id)))
    except (EOFError, OSError):  # the batch process is gone
        pass


def analyze_job(path: str, call_id: str) -> Outcome:
    """One call, in a worker: the result JSON, or the one-line reason it failed."""
    from qa_audio.audio import AudioError
    from qa_audio.report.json_output import to_json_dict

    started = time.perf_counter()
    if _setup_error is not None or _analyzer is None:
        return Outcome(call_id, path, error=_setup_error or "init_worker() was not called", kind=SETUP)
    try:
        analysis = _analyzer.analyze(path)
        result = to_json_dict(analysis)
    except AudioError as exc:
        return Outcome(call_id, path, error=_one_line(str(exc)), kind=BAD_INPUT,
                       seconds=time.perf_counter() - started)
    except MemoryError:
        return Outcome(call_id, path, error=f"{path}: out of memory while analysing", kind=ERROR,
                       seconds=time.perf_counter() - started)
    except Exception as exc:  # one bad call must not stop the night
        logger.exception("%s: analysis failed", path)
        return Outcome(call_id, path, error=f"{path}: {type(exc).__name__}: {_one_line(str(exc))}", kind=ERROR,
                       seconds=time.perf_counter() - started)
    return Outcome(call_id, path, result=result, seconds=time.perf_counter() - started)


def dask_analyze_job(path: str, call_id: str, options: AnalyzeOptions, threads: int) -> Outcome:
    """``analyze_job`` on a Dask worker: the Analyzer is built on the worker's first call and kept."""
    if _analyzer is None and _setup_error is None:
        init_worker(options, threads)
    return analyze_job(path, call_id)


def _exit_with_parent(parent_pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
