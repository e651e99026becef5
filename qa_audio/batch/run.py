"""The nightly batch: every recording in an archive analysed once, results in the store.

Flow (see ``docs/batch.md``):
1. :func:`discover` lists the recordings (folders walked recursively by extension, list files read).
2. :func:`plan` hashes each one (sha256, streamed) and sorts it: already in the store (skipped,
   its path noted), failed before (skipped unless ``retry_failed``), a duplicate of another file in
   this run, unreadable or longer than ``max_duration`` (recorded as failed without decoding), or to do.
3. The jobs run on N worker processes (``engine="local"``: a ``ProcessPoolExecutor`` whose
   initializer builds one :class:`~qa_audio.pipeline.Analyzer` per process) or on a Dask cluster
   (``engine="dask"``). Workers only analyse and return plain dicts; this process alone writes the
   store, one transaction per call, so a kill loses at most the calls in flight.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from qa_audio.batch.store import FileKey, Store, hash_file
from qa_audio.pipeline import AnalyzeOptions, Analyzer

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
DEFAULT_MAX_DURATION = 4 * 3600.0
MAX_AUTO_WORKERS = 8
# Jobs queued per worker beyond the one it runs: keeps workers busy without piling up lost work.
QUEUE_DEPTH = 1

BAD_INPUT = "bad_input"
TOO_LONG = "too_long"
UNREADABLE = "unreadable"
ERROR = "error"
WORKER_DIED = "worker_died"
SETUP = "setup"


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

    def finished(self, outcome: Outcome, audio_seconds: float) -> None:
        """one job is stored (done or failed)"""


# ---------------------------------------------------------------------------------------------
# finding and sorting the files


def discover(sources: Iterable[Path | str], extensions: Iterable[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Every recording under ``sources``: folders recursively by extension, audio files as given,
    any other file as a list of paths (one a line, ``#`` comments, relative to the list's folder).

    A missing source raises ``FileNotFoundError``; a missing file named in a list is returned, and
    fails as unreadable.
    """
    wanted = tuple(e.lower() for e in extensions)
    found: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found += sorted(p for p in source.rglob("*") if p.suffix.lower() in wanted and not p.is_dir())
        elif source.suffix.lower() in wanted:
            found.append(source)
        elif source.is_file():
            for line in source.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    entry = Path(line)
                    found.append(entry if entry.is_absolute() else source.parent / entry)
        else:
            raise FileNotFoundError(f"{source}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for path in found:
        if path not in seen:
            seen.add(path)
            unique.append(path)
    return unique


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
        key = hash_file(path)
        if key.call_id is None:
            if store.failure(key.failure_key) and not options.retry_failed:
                result.skipped_failed += 1
            else:
                result.failed.append((key, key.error or f"{path}: cannot read", UNREADABLE))
            continue
        if store.has_call(key.call_id):
            store.note_path(key.call_id, key.path)
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
            result.failed.append((key, f"{key.path}: {duration / 3600:.1f} h long, over --max-duration "
                                       f"{options.max_duration / 3600:g} h; not decoded", TOO_LONG))
            continue
        result.jobs.append(Job(key, duration))
    # Longest first: the night ends sooner when the long calls do not start last.
    result.jobs.sort(key=lambda job: -(job.duration or 0.0))
    return result


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
    options = options or BatchOptions()
    progress = progress or BatchProgress()
    started = time.perf_counter()
    paths = discover(sources, options.extensions)
    work = plan(store, paths, options)
    workers, threads = worker_layout(options, len(work.jobs))
    summary = Summary(files=len(paths), skipped_done=work.skipped_done, skipped_failed=work.skipped_failed,
                      duplicates=work.duplicates, workers=workers, threads=threads, engine=options.engine)
    settings = {"sources": [str(s) for s in sources], "workers": workers, "threads": threads,
                "max_duration": options.max_duration, "retry_failed": options.retry_failed,
                "analyze": asdict(options.analyze)}
    run_id = store.start_run(options.engine, settings)
    for key, error, kind in work.failed:
        store.add_failure(key, error, kind, run_id)
        summary.failures.append((key.path, error))
    logger.info("%d files: %d to analyse, %d skipped, %d failed before decoding", len(paths), len(work.jobs),
                work.skipped, len(work.failed))
    progress.planned(len(work.jobs), sum(job.duration or 0.0 for job in work.jobs))

    def commit(job: Job, outcome: Outcome) -> None:
        if outcome.kind == SETUP:
            raise WorkerSetupError(outcome.error or "a worker could not start")
        audio_seconds = job.duration or 0.0
        if outcome.result is not None:
            audio_seconds = float((outcome.result.get("audio") or {}).get("duration") or audio_seconds)
            if store.add_result(job.key, outcome.result, run_id, outcome.seconds):
                summary.done += 1
            else:
                summary.already_stored += 1
            summary.audio_seconds += audio_seconds
        else:
            error = outcome.error or f"{job.key.path}: unknown error"
            store.add_failure(job.key, error, outcome.kind or ERROR, run_id)
            summary.failures.append((job.key.path, error))
        progress.finished(outcome, job.duration or audio_seconds)

    try:
        if work.jobs:
            analyze_options = _with_threads(options.analyze, threads)
            if options.engine == "dask":
                _run_dask(work.jobs, analyze_options, threads, workers, options.scheduler, commit)
            elif options.engine == "local":
                _run_local(work.jobs, analyze_options, threads, workers, commit)
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


def _with_threads(options: AnalyzeOptions, threads: int) -> AnalyzeOptions:
    return replace(options, threads=threads, asr=replace(options.asr, cpu_threads=threads))


def _run_local(jobs: list[Job], options: AnalyzeOptions, threads: int, workers: int,
               commit: Callable[[Job, Outcome], None]) -> None:
    import multiprocessing

    # spawn, not fork: workers start clean (no copy of this process's SQLite handle or threads).
    context = multiprocessing.get_context("spawn")
    queue = deque(jobs)
    while queue:
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                                   initargs=(options, threads, os.getpid()))
        in_flight: dict[Future, Job] = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < workers * (1 + QUEUE_DEPTH):
                    job = queue.popleft()
                    in_flight[pool.submit(analyze_job, job.key.path, job.key.call_id or "")] = job
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = in_flight.pop(future)
                    commit(job, future.result())
        except BrokenProcessPool:
            # A worker died (out of memory, a crash in native code): which call killed it is unknown,
            # so every call in flight is recorded as failed (--retry-failed retries them) and the
            # night goes on with a fresh pool.
            for job in in_flight.values():
                commit(job, Outcome(job.key.call_id or "", job.key.path, kind=WORKER_DIED,
                                    error=f"{job.key.path}: a worker process died while this call was in flight "
                                          "(out of memory or a crash); rerun with --retry-failed"))
            logger.error("a worker process died; %d call(s) recorded as failed, starting new workers",
                         len(in_flight))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        else:
            pool.shutdown(wait=True)
            return
        pool.shutdown(wait=False, cancel_futures=True)


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
                error = future.exception()
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
