"""The batch commands: ``batch``, ``export``, ``import-reviews``, ``agreement``.

``qa_audio/cli/main.py`` adds them to the ``qa-audio`` app with :func:`register`; ``python -m
qa_audio.cli.batch`` runs them on their own. Exit codes as ``analyze``: 0 ok, 2 bad input
(a missing archive, an unreadable review sheet), 3 bad setup (the database, a missing model or
package), 1 anything unexpected. Failed recordings do not change the exit code: they are
recorded and summed up; ``--strict`` makes any failure exit 2.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from qa_audio import privacy
from qa_audio.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_BAD_SETUP,
    ComputeTypeOption,
    Device,
    DeviceOption,
    VocabularyOption,
)
from qa_audio.cli.common import configure_logging as _configure_logging
from qa_audio.cli.common import fail as _fail

DEFAULT_DB = Path("qa-audio.db")

DbOption = Annotated[Path, typer.Option("--db", help="The SQLite store (batch creates it if missing).",
                                         dir_okay=False)]


class Engine(StrEnum):
    local = "local"
    dask = "dask"


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


class StatusFilter(StrEnum):
    pending_review = "pending_review"
    reviewed = "reviewed"
    all = "all"


def register(app: typer.Typer) -> None:
    """Add ``batch``, ``export``, ``import-reviews`` and ``agreement`` to ``app``."""
    app.command("batch")(batch)
    app.command("export")(export)
    app.command("import-reviews")(import_reviews)
    app.command("agreement")(agreement)
    app.command("metadata")(metadata)
    app.command("report")(report)


def batch(
    archive: Annotated[list[Path], typer.Argument(help="Folders (walked recursively), recordings (by audio "
                                                  "extension), or list files (.txt, .lst, .list: UTF-8, one "
                                                  "path a line).")],
    db: DbOption = DEFAULT_DB,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes, each loading the models once "
                                         "(0: one per core, at most 8).")] = 0,
    threads: Annotated[int, typer.Option(min=0, help="CPU threads per worker (0: cores / workers).")] = 0,
    extensions: Annotated[str, typer.Option(help="Comma-separated extensions to pick up in folders.")]
    = ".wav,.flac,.mp3,.ogg",
    max_duration: Annotated[float, typer.Option(min=0.01, help="Record longer recordings (hours, from the header; "
                                                "fractions allowed, e.g. 0.5 = 30 min, at least 0.01 = 36 s) "
                                                "as failed without decoding them.")] = 4.0,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try again the files that failed in "
                                               "earlier runs (default: skip them).")] = False,
    engine: Annotated[Engine, typer.Option(help="local: worker processes here; dask: a Dask cluster.")]
    = Engine.local,
    scheduler: Annotated[str | None, typer.Option(help="dask: the scheduler address (default: a local "
                                                  "cluster of --workers processes).")] = None,
    asr_model: Annotated[str, typer.Option(help="As for analyze.")] = "base",
    device: DeviceOption = Device.auto,
    compute_type: ComputeTypeOption = "default",
    vocabulary: VocabularyOption = True,
    beam_size: Annotated[int, typer.Option(min=1, max=10, help="ASR beam width.")] = 5,
    asr_batch_size: Annotated[int, typer.Option(min=0, max=64, help="Speech chunks the ASR decodes "
                                                "together; 0 decodes one 30-s window after another "
                                                "(slower).")] = 8,
    agent_channel: Annotated[int, typer.Option(min=0, max=1, help="Stereo: the agent's channel.")] = 0,
    rules: Annotated[Path | None, typer.Option(help="A deployment's rules folder.", file_okay=False)] = None,
    metadata_csv: Annotated[Path | None, typer.Option("--metadata", help="The phone system's CSV: a header "
                                                      "with file and agent_id, optionally team, started_at "
                                                      "(ISO 8601), queue, direction; joined on the path, "
                                                      "else the file name.", dir_okay=False)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 2 when any file failed.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Analyse every recording in the archive that is not in the store yet; failures are recorded, not fatal."""
    privacy.keep_data_local()
    _configure_logging(verbose)
    from qa_audio.batch.run import BatchOptions, SourceError, WorkerSetupError, discover, run_batch
    from qa_audio.batch.store import StoreError
    from qa_audio.call_metadata import MetadataError, read_metadata_csv
    from qa_audio.devices import DeviceError, choose_device
    from qa_audio.models import ModelNotFoundError
    from qa_audio.pipeline import AnalyzeOptions
    from qa_audio.rule_files import RuleFileError
    from qa_audio.speech.asr import AsrOptions

    for source in archive:
        if not source.exists():
            _fail(f"{source}: no such file or folder", EXIT_BAD_INPUT)
    given = None
    if metadata_csv is not None:
        try:
            given = read_metadata_csv(metadata_csv)  # a bad row stops the night before it starts
        except MetadataError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
    try:
        choose_device(device.value, compute_type)  # refused once, here, not in every worker
    except DeviceError as exc:
        _fail(str(exc), EXIT_BAD_SETUP)
    options = BatchOptions(
        analyze=AnalyzeOptions(asr=AsrOptions(model=asr_model, beam_size=beam_size, batch_size=asr_batch_size),
                               agent_channel=agent_channel, rules_dir=rules, device=device.value,
                               compute_type=compute_type, vocabulary=vocabulary),
        workers=workers, threads=threads, max_duration=max_duration * 3600, retry_failed=retry_failed,
        engine=engine.value, scheduler=scheduler, metadata=given,
        extensions=tuple(e.strip() if e.strip().startswith(".") else "." + e.strip()
                         for e in extensions.split(",") if e.strip()),
    )
    try:
        discover(archive, options.extensions)  # a bad source or list file fails here, before anything starts
    except (OSError, SourceError) as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    store = _open_store(db)
    try:
        with _BatchBar(enabled=not quiet) as bar:
            summary = run_batch(archive, store, options, bar)
    except (RuleFileError, ModelNotFoundError, StoreError, WorkerSetupError) as exc:
        _fail(str(exc), EXIT_BAD_SETUP)
    finally:
        store.close()
    _print_summary(summary, db)
    if summary.interrupted:
        raise typer.Exit(130)
    if strict and summary.failed:
        raise typer.Exit(EXIT_BAD_INPUT)


def metadata(
    csv_file: Annotated[Path, typer.Argument(metavar="CSV", help="The phone system's CSV: a header with file and "
                                             "agent_id, optionally team, started_at (ISO 8601), queue, "
                                             "direction.", dir_okay=False)],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Attach who took each call (agent, team, start time) to calls already in the store, without analysing them."""
    from qa_audio.call_metadata import MetadataError, lookup, read_metadata_csv

    try:
        rows = read_metadata_csv(csv_file)
    except MetadataError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    store = _open_store(db, must_exist=True)
    try:
        attached = 0
        for call_id, paths in store.paths_by_call().items():
            row = lookup(rows, *paths)
            if row is not None and store.has_call(call_id) and store.attach_metadata(call_id, row):
                attached += 1
        mismatches = sum(1 for m in store.metadata().values() if m["agent_id_mismatch"])
    finally:
        store.close()
    typer.echo(f"metadata for {attached} call(s) in {db}; {mismatches} call(s) where the 工号 heard in the "
               "greeting is not the given agent's", err=True)


class ReportBy(StrEnum):
    agent = "agent"
    team = "team"


def report(
    db: DbOption = DEFAULT_DB,
    by: Annotated[ReportBy, typer.Option(help="One section per agent or per team.")] = ReportBy.agent,
    since: Annotated[str | None, typer.Option(help="Calls on or after this date (YYYY-MM-DD; the call's start "
                                              "time where known, else the analysis day).")] = None,
    until: Annotated[str | None, typer.Option(help="Calls on or before this date (YYYY-MM-DD).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="report.html (the page) or report.csv (the "
                                         "figures as a table).", dir_okay=False)] = Path("report.html"),
    rules: Annotated[Path | None, typer.Option(help="A deployment's rules folder (the sheet and "
                                               "categories.yaml).", file_okay=False)] = None,
) -> None:
    """Per-agent or per-team report: scores beside the team's, problems by category, weekly trend, coaching."""
    import time

    from qa_audio.coaching.categories import load_categories
    from qa_audio.coaching.figures import build_report
    from qa_audio.rubric.sheet import load_rubric
    from qa_audio.rule_files import RuleFileError

    suffix = output.suffix.lower()
    if suffix not in (".html", ".htm", ".csv"):
        _fail(f"{output}: give a .html or .csv file name", EXIT_BAD_SETUP)
    _check_output(output, db)
    started = time.perf_counter()
    try:
        sheet = load_rubric(rules)
        categories = load_categories(rules, sheet)
    except RuleFileError as exc:
        _fail(str(exc), EXIT_BAD_SETUP)
    store = _open_store(db, must_exist=True, read_only=True)
    try:
        figures = build_report(store, sheet, categories, by.value, since, until)
    except ValueError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    finally:
        store.close()
    try:
        _write_report(output, figures, suffix)
    except OSError as exc:
        _fail(f"{output}: cannot write: {exc.strerror or exc}", EXIT_BAD_SETUP)
    typer.echo(f"report by {by.value}: {len(figures.groups)} {by.value}(s), {figures.calls} call(s) -> {output} "
               f"({time.perf_counter() - started:.1f} s)", err=True)


def _write_report(output: Path, figures, suffix: str) -> None:
    from qa_audio.coaching.html import render_report_html
    from qa_audio.coaching.table import write_report_csv

    if suffix == ".csv":
        _write_whole(output, lambda handle: write_report_csv(figures, handle))
    else:
        _write_whole(output, lambda handle: handle.write(render_report_html(figures)))


def _write_whole(output: Path, write) -> None:
    """Write ``output`` whole or not at all: a temporary file beside it, renamed into place, so a
    kill or a full disk never leaves half an export where the QA queue would read it."""
    import tempfile

    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as a plain open() would have made it
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            write(out)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export(
    output: Annotated[Path, typer.Argument(help="The file to write ('-': stdout).", dir_okay=False)],
    db: DbOption = DEFAULT_DB,
    output_format: Annotated[ExportFormat | None, typer.Option("--format", "-f", help="jsonl or csv "
                                                               "(default: from the file's extension).")] = None,
    status: Annotated[StatusFilter, typer.Option(help="Calls with this status.")] = StatusFilter.pending_review,
    since: Annotated[str | None, typer.Option(help="Analysed on or after this date (YYYY-MM-DD, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Analysed on or before this date (YYYY-MM-DD, UTC).")] = None,
    flag: Annotated[list[str] | None, typer.Option(help="Only calls with this rubric flag (repeatable).")] = None,
    sample: Annotated[int, typer.Option(min=0, help="Calls drawn at random from the rest (抽检).")] = 10,
    seed: Annotated[int | None, typer.Option(help="Seed of the random sample (default: a new draw).")] = None,
    low_confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="Queue calls whose lowest "
                                                  "confidence is below this.")] = 0.6,
    low_total: Annotated[float, typer.Option(min=0.0, max=1.0, help="Queue calls scoring below this share of "
                                             "the maximum total.")] = 0.6,
    everything: Annotated[bool, typer.Option("--all", help="Write every matching call, not only the queue "
                                             "and the sample.")] = False,
) -> None:
    """Write the pre-scored calls for the manual QA queue, worst first, plus a random sample of the rest."""
    from qa_audio.batch.export import ExportOptions, export_rows, write_rows

    fmt = output_format.value if output_format else ("csv" if output.suffix.lower() == ".csv" else "jsonl")
    options = ExportOptions(status=status.value, since=since, until=until, flags=tuple(flag or ()), sample=sample,
                            seed=seed, low_confidence=low_confidence, low_total=low_total, everything=everything)
    if str(output) != "-":
        _check_output(output, db)  # before anything is opened or written
    store = _open_store(db, must_exist=True, read_only=True)
    try:
        rows = export_rows(store, options)
    except ValueError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    finally:
        store.close()
    try:
        if str(output) == "-":
            write_rows(rows, sys.stdout, fmt)
        else:
            _write_whole(output, lambda handle: write_rows(rows, handle, fmt))
    except OSError as exc:
        _fail(f"{output}: cannot write: {exc.strerror or exc}", EXIT_BAD_SETUP)
    reasons: dict[str, int] = {}
    for row in rows:
        reasons[row["review_reason"]] = reasons.get(row["review_reason"], 0) + 1
    typer.echo(f"exported {len(rows)} call(s) to {output}: "
               + (", ".join(f"{k} {v}" for k, v in reasons.items()) or "none"), err=True)


def import_reviews(
    sheet: Annotated[Path, typer.Argument(help="Inspector scores: JSON Lines or CSV with call_id, item_id, "
                                          "inspector_score, inspector, reviewed_at.", exists=True, dir_okay=False)],
    db: DbOption = DEFAULT_DB,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Store the good rows and list the bad ones "
                                           "(default: one bad row and nothing is stored).")] = False,
) -> None:
    """Read the inspectors' confirmed or corrected scores back; their calls become 'reviewed'.

    Every row is checked against its call's rubric (the call, the item, the score within the item's
    points and bands); a bad row is listed as file:line: reason and, without --skip-bad, nothing
    is stored (exit 2)."""
    from qa_audio.batch.export import ReviewSheetError, read_reviews
    from qa_audio.batch.store import ReviewsRefused

    try:
        rows = read_reviews(sheet, keep_bad=True)
    except ReviewSheetError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    store = _open_store(db, must_exist=True)
    try:
        stored, skipped = store.add_reviews(rows, skip_bad=skip_bad)
    except ReviewsRefused as exc:
        for problem in exc.problems:
            typer.echo(f"qa-audio: error: {problem}", err=True)
        _fail(f"{sheet}: {len(exc.problems)} bad row(s), nothing imported (--skip-bad imports the good rows)",
              EXIT_BAD_INPUT)
    finally:
        store.close()
    for problem in skipped:
        typer.echo(f"qa-audio: warning: skipped {problem}", err=True)
    typer.echo(f"imported {stored} score(s) from {sheet}"
               + (f", skipped {len(skipped)} bad row(s)" if skipped else ""), err=True)


def agreement(
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per rubric item: how often the pre-fill matched the inspector (exact, within one band, Cohen's kappa)."""
    from qa_audio.batch.export import agreement_report

    store = _open_store(db, must_exist=True, read_only=True)
    try:
        report = agreement_report(store)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"pre-fill vs inspector ({report['calls']} reviewed call(s))")
    for column in ("item", "n", "exact", "within one band", "Cohen's kappa"):
        table.add_column(column, justify="left" if column == "item" else "right")
    for item in report["items"]:
        kappa = "—" if item["kappa"] is None else f"{item['kappa']:.2f}"
        table.add_row(item["item_id"], str(item["n"]), f"{item['exact']:.0%}", f"{item['within_one_band']:.0%}",
                      kappa)
    Console().print(table)
    if not report["items"]:
        typer.echo("no reviewed items with a pre-filled score yet (import-reviews first)", err=True)


# ---------------------------------------------------------------------------------------------


def _open_store(db: Path, must_exist: bool = False, read_only: bool = False):
    """The store (exit 3 when it cannot be used); ``read_only`` for the commands that only read it."""
    from qa_audio.batch.store import Store, StoreError

    if (must_exist or read_only) and not db.exists():
        _fail(f"{db}: no such database (run qa-audio batch --db {db} first)", EXIT_BAD_SETUP)
    try:
        return Store(db, read_only=read_only)
    except StoreError as exc:
        _fail(str(exc), EXIT_BAD_SETUP)


def _check_output(output: Path, db: Path) -> None:
    """Refuse (exit 3) an export path that is the store, its -wal/-shm file, or any SQLite database."""
    from qa_audio.batch.store import is_sqlite_file

    def resolved(path: Path) -> Path:
        try:
            return path.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            return path.absolute()

    store_files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    target = resolved(output)
    for store_file in store_files:
        same = target == resolved(store_file)
        if not same and output.exists() and store_file.exists():
            try:
                same = os.path.samefile(output, store_file)
            except OSError:
                same = False
        if same:
            what = "the store" if store_file is db else f"the store's {store_file.name[len(db.name):]} file"
            _fail(f"{output}: is {what} (--db {db}); export to another file", EXIT_BAD_SETUP)
    if output.exists() and is_sqlite_file(output):
        _fail(f"{output}: is an SQLite database; not overwriting it with an export", EXIT_BAD_SETUP)




def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def _print_summary(summary, db: Path) -> None:
    """The end-of-run summary on stderr. Paths and reasons are printed as text, never read as rich
    markup (a file named ``x[/bold].wav`` is a file name); should rich fail anyway, plain lines."""
    lines = _summary_lines(summary, db)
    printed = 0
    try:
        from rich.console import Console
        from rich.markup import escape

        console = Console(stderr=True, highlight=False)
        for style, text in lines:
            console.print(f"[{style}]{escape(text)}[/{style}]" if style else escape(text), soft_wrap=True)
            printed += 1
    except Exception:  # the summary must come out: the run is stored already
        for _, text in lines[printed:]:
            typer.echo(text, err=True)


def _summary_lines(summary, db: Path) -> list[tuple[str, str]]:
    """(rich style or "", plain text) of each summary line."""
    rtf = summary.real_time_factor
    speed = f", real-time factor {rtf:.3f} ({1 / rtf:.1f}× real time)" if rtf else ""
    lines = [("bold", f"{'interrupted' if summary.interrupted else 'batch done'} in {summary.wall_seconds:.0f} s "
                      f"({summary.workers} worker(s) × {summary.threads} thread(s), {summary.engine}): "
                      f"{summary.files} file(s)"),
             ("", f"  done {summary.done} · skipped {summary.skipped} (already done {summary.skipped_done}, "
                  f"failed before {summary.skipped_failed}, duplicate {summary.duplicates}) · failed "
                  f"{summary.failed}"),
             ("", f"  audio analysed {_hours(summary.audio_seconds)}{speed}")]
    if summary.already_stored:
        lines.append(("", f"  {summary.already_stored} call(s) were stored meanwhile by another run (kept once)"))
    if getattr(summary, "worker_deaths", 0):
        lines.append(("yellow", f"  {summary.worker_deaths} worker process(es) died with a call in hand (killed, "
                                "out of memory or a crash): that call was tried once more on a new worker, "
                                "failed after two deaths"))
    for path, reason in summary.failures[:50]:
        lines.append(("red", f"  failed {reason if reason.startswith(path) else f'{path}: {reason}'}"))
    if summary.failed > 50:
        lines.append(("", f"  … and {summary.failed - 50} more (see the failures table in {db})"))
    return lines


class _BatchBar:
    """A rich progress bar on stderr over the audio to analyse: rate (× real time) and ETA."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty() and not os.environ.get("CI")
        self._bar = None
        self._task = None
        self._files = 0
        self._done = 0
        self._failed = 0

    def __enter__(self) -> _BatchBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=Console(stderr=True))
            self._bar.__enter__()
        return self

    def planned(self, jobs: int, audio_seconds: float) -> None:
        self._files = jobs
        if self._bar is not None:
            self._task = self._bar.add_task(self._describe(), total=max(audio_seconds, 1.0), rate="")

    def finished(self, outcome, audio_seconds: float) -> None:
        if outcome.result is not None:
            self._done += 1
        else:
            self._failed += 1
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, audio_seconds)
            speed = self._bar.tasks[0].speed
            self._bar.update(self._task, description=self._describe(),
                             rate=f"{speed:.1f}× real time" if speed else "")

    def _describe(self) -> str:
        return f"calls {self._done + self._failed}/{self._files} (failed {self._failed})"

    def __exit__(self, *exc: object) -> bool:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
        return False


if __name__ == "__main__":
    _app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="qa-audio batch commands (also registered on the qa-audio app).")
    register(_app)
    _app()
