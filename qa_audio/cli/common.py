"""What every qa-audio command shares: exit codes, the one-line error, logging set-up."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import typer

from qa_audio import privacy

EXIT_BAD_INPUT = 2
"""the input cannot be analysed (bad audio, no speech, a missing source)"""
EXIT_BAD_SETUP = 3
"""a bad rule file, database or output path, or a missing model"""


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"qa-audio: error: {message}", err=True)
    raise typer.Exit(code)


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    privacy.quiet_libraries(verbose)
