"""Recordings are customers' personal data: nothing about them leaves the machine.

pyannote.audio reports usage metrics unless told not to, and huggingface_hub sends telemetry on
downloads. Both are switched off before either library is imported. Default models come from
installed packages, so no call reaches a model hub unless the user names a non-default model.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import stat
import tempfile
import warnings

OFFLINE_ENVIRONMENT = {
    "PYANNOTE_METRICS_ENABLED": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    # onnxruntime (Silero VAD) 1.32 keeps a device id under ~/.cache/Microsoft and uploads usage
    # events on Linux unless this is set before it starts.
    "ORT_DISABLE_TELEMETRY": "1",
}

CACHE_VARIABLES = {"MPLCONFIGDIR": "matplotlib", "TORCHINDUCTOR_CACHE_DIR": "torchinductor"}


def keep_data_local() -> None:
    """Turn off every library's telemetry; an explicit user setting of these variables wins."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # pyannote.audio pulls in matplotlib (through torchmetrics) and torch's compiler, which would
    # leave a font cache in the user's home and a cache folder in /tmp. Give them one private
    # folder that is removed when the process ends.
    missing = [name for name in CACHE_VARIABLES if name not in os.environ]
    if missing:
        folder = private_folder()
        for name in missing:
            os.environ[name] = os.path.join(folder, CACHE_VARIABLES[name])


PRIVATE_FOLDER_VARIABLE = "QA_AUDIO_PRIVATE_TMP"
"""Names the private folder to worker processes, which reuse it: they end with ``os._exit``, which
skips ``atexit``, so a folder of their own would be left behind."""

def private_folder() -> str:
    """The private temporary folder (mode 0700) of this run, made on first use, removed at exit.

    For the caches libraries would otherwise leave in the shared ``$TMPDIR`` (jieba's dictionary
    cache) or the user's home. The process that made it removes it; it is recorded in
    ``QA_AUDIO_PRIVATE_TMP``, where later calls and the workers (forked or spawned) find it.
    """
    inherited = os.environ.get(PRIVATE_FOLDER_VARIABLE)
    if inherited and _is_private(inherited):
        return inherited
    folder = tempfile.mkdtemp(prefix="qa-audio-")
    atexit.register(_remove, folder, os.getpid())
    os.environ[PRIVATE_FOLDER_VARIABLE] = folder
    return folder


def _is_private(folder: str) -> bool:
    try:
        status = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid() and not status.st_mode & 0o077


def _remove(folder: str, owner: int) -> None:
    if os.getpid() == owner:  # an atexit handler inherited by a forked child is not its to run
        shutil.rmtree(folder, ignore_errors=True)


def quiet_libraries(verbose: bool = False) -> None:
    """Hide library chatter that says nothing to a QA user (we never let torchcodec decode files)."""
    warnings.filterwarnings("ignore", message=r".*torchcodec is not installed correctly.*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pyannote\..*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torchaudio\..*")
    if not verbose:
        for name in ("faster_whisper", "pyannote", "speechbrain", "lightning", "pytorch_lightning", "jieba"):
            logging.getLogger(name).setLevel(logging.ERROR)
