"""What every qa-audio command shares: exit codes, the one-line error, logging set-up."""

from __future__ import annotations

import logging
import sys
import unicodedata
from enum import StrEnum
from typing import Annotated, NoReturn

import typer

from qa_audio import privacy

EXIT_BAD_INPUT = 2
"""the input cannot be analysed (bad audio, no speech, a missing source)"""
EXIT_BAD_SETUP = 3
"""a bad rule file, database or output path, or a missing model"""


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


DeviceOption = Annotated[Device, typer.Option(help="Where the ASR and the diarizer run: auto (a CUDA GPU where "
                                              "there is one, else the CPU), cpu or cuda.")]
VocabularyOption = Annotated[bool, typer.Option(
    "--vocabulary/--no-vocabulary",
    help="Rewrite near-homophones of the deployment's words (rules/vocabulary.yaml: 心和通信 → 星河通信) "
         "and list each rewrite; --no-vocabulary keeps the words as the recogniser wrote them.")]
ComputeTypeOption = Annotated[str, typer.Option(help="CTranslate2's compute type (int8, float16, float32, …); "
                                                "default: int8 on the CPU, float16 on a GPU.")]


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"qa-audio: error: {one_line(message)}", err=True)
    raise typer.Exit(code)


# Control and format characters (newlines, ESC, bidi overrides), surrogates from undecodable file
# names, and the Unicode line and paragraph separators.
_ESCAPED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def one_line(message: str) -> str:
    """``message`` as one line of inert text: control characters written as ``\\n``, ``\\x1b``, ...

    A file name may hold a newline or terminal escape codes; printed raw they would split the
    one-line error or recolour (or retitle) the user's terminal.
    """
    return "".join(ch.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(ch) in _ESCAPED_CATEGORIES else ch for ch in message)


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    privacy.quiet_libraries(verbose)
