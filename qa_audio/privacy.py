"""Recordings are customers' personal data: nothing about them leaves the machine.

pyannote.audio reports usage metrics unless told not to, and huggingface_hub sends telemetry on
downloads. Both are switched off before either library is imported. Default models come from
installed packages, so no call reaches a model hub unless the user names a non-default model.
"""

from __future__ import annotations

import logging
import os
import warnings

OFFLINE_ENVIRONMENT = {
    "PYANNOTE_METRICS_ENABLED": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}


def keep_data_local() -> None:
    """Turn off every library's telemetry; an explicit user setting of these variables wins."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def quiet_libraries(verbose: bool = False) -> None:
    """Hide library chatter that says nothing to a QA user (we never let torchcodec decode files)."""
    warnings.filterwarnings("ignore", message=r".*torchcodec is not installed correctly.*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pyannote\..*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torchaudio\..*")
    if not verbose:
        for name in ("faster_whisper", "pyannote", "speechbrain", "lightning", "pytorch_lightning", "jieba"):
            logging.getLogger(name).setLevel(logging.ERROR)
