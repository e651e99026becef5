"""The ``qa-audio`` command. Thin: parse, call the pipeline, print.

Exit codes: 0 ok; 2 the input cannot be analysed (bad audio, no speech); 3 a bad rule file, a
missing model or an output path that cannot be written (the input itself, a folder, a missing
folder: refused before anything is decoded); 1 anything unexpected.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from qa_audio import __version__, privacy
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
from qa_audio.cli.common import one_line as _one_line
from qa_audio.cli.progress import StageProgress

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Offline auto-QA for Mandarin call-centre recordings.")


class OutputFormat(StrEnum):
    json = "json"
    md = "md"
    html = "html"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qa-audio {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Offline auto-QA for Mandarin call-centre recordings."""


@app.command()
def analyze(
    audio: Annotated[Path, typer.Argument(help="The recording: WAV (PCM, float, G.711), FLAC, MP3 or OGG.")],
    output_format: Annotated[OutputFormat, typer.Option("--format", "-f", help="json (the QA queue's "
                                                        "contract), md (transcript and sheet) or html (a report "
                                                        "page with the audio).")] = OutputFormat.json,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    asr_model: Annotated[str, typer.Option(help="'base' (packaged, offline), another faster-whisper "
                                           "model name, or a local CTranslate2 model folder.")] = "base",
    beam_size: Annotated[int, typer.Option(min=1, max=10, help="ASR beam width.")] = 5,
    asr_batch_size: Annotated[int, typer.Option(min=0, max=64, help="Speech chunks the ASR decodes "
                                                "together; 0 decodes one 30-s window after another "
                                                "(slower).")] = 8,
    agent_channel: Annotated[int, typer.Option(min=0, max=1, help="Stereo: the agent's channel.")] = 0,
    num_speakers: Annotated[int | None, typer.Option(min=1, max=6, help="Mono: the number of voices, "
                                                     "if known.")] = None,
    rules: Annotated[Path | None, typer.Option(help="A deployment's rules folder (default: the shipped "
                                               "rules/).", file_okay=False)] = None,
    device: DeviceOption = Device.auto,
    compute_type: ComputeTypeOption = "default",
    vocabulary: VocabularyOption = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each stage.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Transcribe one call, split it into agent and customer turns, and print the result."""
    privacy.keep_data_local()
    _configure_logging(verbose)
    if output is not None:
        problem = output_problem(output, audio)
        if problem:
            _fail(f"{output}: {problem}", EXIT_BAD_SETUP)
    from qa_audio.audio import AudioError, probe_long_recording
    from qa_audio.devices import DeviceError
    from qa_audio.models import ModelNotFoundError
    from qa_audio.pipeline import AnalyzeOptions, Analyzer
    from qa_audio.rule_files import RuleFileError
    from qa_audio.speech.asr import AsrOptions

    options = AnalyzeOptions(
        asr=AsrOptions(model=asr_model, beam_size=beam_size, batch_size=asr_batch_size),
        agent_channel=agent_channel,
        num_speakers=num_speakers,
        rules_dir=rules,
        device=device.value,
        compute_type=compute_type,
        vocabulary=vocabulary,
    )
    warning = probe_long_recording(audio)
    if warning:
        typer.echo(f"qa-audio: warning: {_one_line(warning)}", err=True)
    try:
        analyzer = Analyzer(options)
        with StageProgress(enabled=not quiet) as hook:
            analysis = analyzer.analyze(audio, progress=hook)
    except AudioError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except (RuleFileError, ModelNotFoundError, DeviceError) as exc:
        _fail(str(exc), EXIT_BAD_SETUP)
    if output_format is OutputFormat.json:
        from qa_audio.report.json_output import to_json

        text = to_json(analysis)
    elif output_format is OutputFormat.md:
        from qa_audio.report.markdown import render_markdown

        text = render_markdown(analysis)
    else:
        from qa_audio.report.html import render_html

        text = render_html(analysis, audio)
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            _fail(f"{output}: cannot write: {exc.strerror or exc}", EXIT_BAD_SETUP)


@app.command("redact-audio")
def redact_audio(
    source: Annotated[Path, typer.Argument(help="The recording: WAV (PCM, float, G.711), FLAC, MP3 or OGG.")],
    target: Annotated[Path, typer.Argument(help="Where the redacted copy goes; same format, so the same "
                                           "file extension as SOURCE.")],
    from_json: Annotated[Path | None, typer.Option("--from-json", help="The `analyze` JSON of SOURCE: use "
                                                   "its spans instead of analysing again.",
                                                   dir_okay=False)] = None,
    asr_model: Annotated[str, typer.Option(help="As for analyze.")] = "base",
    agent_channel: Annotated[int, typer.Option(min=0, max=1, help="Stereo: the agent's channel.")] = 0,
    num_speakers: Annotated[int | None, typer.Option(min=1, max=6, help="Mono: the number of voices.")] = None,
    rules: Annotated[Path | None, typer.Option(help="A deployment's rules folder.", file_okay=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each stage.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write a copy of a recording with the customer's personal data (numbers, names) replaced by a tone."""
    privacy.keep_data_local()
    _configure_logging(verbose)
    problem = output_problem(target, source)
    if problem is None and target.suffix.lower() != source.suffix.lower():
        problem = f"the copy is written in the input's format: give it the extension {source.suffix or '(none)'}"
    if problem:
        _fail(f"{target}: {problem}", EXIT_BAD_SETUP)
    from qa_audio.audio import AudioError, load_audio
    from qa_audio.models import ModelNotFoundError
    from qa_audio.redact import load_personal_data_rules
    from qa_audio.redact.audio import write_redacted_audio
    from qa_audio.rule_files import RuleFileError

    try:
        personal_rules = load_personal_data_rules(rules)
        if from_json is not None:
            spans = _spans_from_json(from_json, load_audio(source).duration)
        else:
            from qa_audio.pipeline import AnalyzeOptions, Analyzer
            from qa_audio.speech.asr import AsrOptions

            analyzer = Analyzer(AnalyzeOptions(asr=AsrOptions(model=asr_model), agent_channel=agent_channel,
                                               num_speakers=num_speakers, rules_dir=rules))
            with StageProgress(enabled=not quiet) as hook:
                spans = analyzer.analyze(source, progress=hook).personal_data
        write_redacted_audio(source, target, spans, personal_rules.tone)
    except AudioError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except (RuleFileError, ModelNotFoundError) as exc:
        _fail(str(exc), EXIT_BAD_SETUP)
    except OSError as exc:
        _fail(f"{target}: cannot write: {exc.strerror or exc}", EXIT_BAD_SETUP)
    from qa_audio.labels import describe_personal_data

    found = describe_personal_data(spans, personal_rules.type_names()) or "nothing found, copied as it is"
    typer.echo(f"qa-audio: {target}: {found}", err=True)


def _spans_from_json(path: Path, duration: float) -> list:
    """The spans of a saved ``analyze`` JSON, refused unless it is this recording's (same length)."""
    import json

    from qa_audio.schema import personal_data_from_dict

    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _fail(f"{path}: not an analyze JSON: {exc}", EXIT_BAD_INPUT)
    if not isinstance(result, dict) or "personal_data" not in result:
        _fail(f"{path}: holds no personal_data (analysed before schema 1.4?): run analyze again", EXIT_BAD_INPUT)
    heard = float((result.get("audio") or {}).get("duration") or 0.0)
    if abs(heard - duration) > 0.05:
        _fail(f"{path}: is the analysis of a {heard:.2f}-s recording, not of this {duration:.2f}-s one",
              EXIT_BAD_INPUT)
    return [personal_data_from_dict(span) for span in result["personal_data"]]


def output_problem(output: Path, audio: Path) -> str | None:
    """Why ``-o output`` cannot be written for ``audio``, checked before any audio is decoded, or None.

    Writing the report over the recording would destroy the customer's call; a folder that is not
    there or a path that is a folder would otherwise fail only after the whole analysis.
    """
    try:
        # samefile also catches a hard link; resolve() a symlink or a path that is not there yet.
        same = (os.path.samefile(output, audio) if output.exists() and audio.exists()
                else output.resolve() == audio.resolve())
    except (OSError, RuntimeError):
        same = False  # an unreadable path: the checks below or the write itself say what is wrong
    if same:
        return "is the input recording; give another path for the report"
    if output.is_dir():
        return "is a directory; give a file path for the report"
    parent = output.parent
    if not parent.is_dir():
        return f"cannot write: the folder {parent} does not exist"
    return None


def _register_batch_commands() -> None:
    from qa_audio.cli.batch import register
    from qa_audio.cli.serve import register as register_workbench

    register(app)
    register_workbench(app)


_register_batch_commands()
