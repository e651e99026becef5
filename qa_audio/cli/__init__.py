"""The ``qa-audio`` command line (Typer): thin, it parses, calls the stages and prints."""

from qa_audio.cli.main import app

__all__ = ["app"]
