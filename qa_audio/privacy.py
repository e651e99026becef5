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
        folder = tempfile.mkdtemp(prefix="qa-audio-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        for name in missing:
            os.environ[name] = os.path.join(folder, CACHE_VARIABLES[name])


def quiet_libraries(verbose: bool = False) -> None:
    """Hide library chatter that says nothing to a QA user (we never let torchcodec decode files)."""
    warnings.filterwarnings("ignore", message=r".*torchcodec is not installed correctly.*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pyannote\..*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torchaudio\..*")
    if not verbose:
        for name in ("faster_whisper", "pyannote", "speechbrain", "lightning", "pytorch_lightning", "jieba"):
            logging.getLogger(name).setLevel(logging.ERROR)
