"""Where the models run: ``--device auto|cpu|cuda`` and ``--compute-type`` (``analyze`` and ``batch``).

faster-whisper (CTranslate2) and the diarizer (pyannote's segmentation model and CAM++, both torch)
go to the same device. ``auto`` takes a CUDA GPU where both torch and CTranslate2 see one, else the
CPU, so the same command runs on a laptop and on a GPU server. ``--compute-type default`` is int8 on
the CPU (float32 takes 1.46x its time, median over the 14 sample calls of ``bench/compute_types.py``)
and float16 on a GPU (CTranslate2's own advice for CUDA). int8's kernels differ per CPU (VNNI or
not, MKL or oneDNN) and so, on the hard calls, do a few words: over the 27 calls of
``bench/prescores.py`` three machines gave greeting 24-26/27, closing 26-27/27 and forbidden-phrase
recall 0.89-1.00, each missing other calls, where float32 gave the same figures under three kernel
sets of one machine, oneDNN's AVX-512 and AVX2 and MKL (greeting 26/27, closing 26/27, recall
1.00). So float32 is there for scores that do not move with a server's kernels; int8 stays the
default for the nightly batch's speed. A narrower beam does not buy float32's time back without
a cost (Zen 4; whole analyses, ``bench/compute_types.py --beam-size N``, median over the 14 sample
calls; pre-scores, ``bench/prescores.py --compute-type float32 --beam-size N``): beam 1 takes 1.07x
int8's time and keeps the pre-scores, but the agents' median CER rises from 0.089 to 0.113 (15 of
the 54 call-roles worse by more than 0.02); beam 2 takes 1.22x and loses h04's forbidden phrase as
int8 does; beam 3 takes 1.30x and keeps the pre-scores, median CER 0.091 / 0.125 against
0.089 / 0.152, 6 call-roles worse by more than 0.02 and 7 better (int8 itself moves as much
between two kernel sets of that CPU: 5 worse and 11 better with oneDNN held to AVX2). Nor does MKL
there: its int8 and int16 (``CT2_USE_MKL=1``) decoded 4-6x slower than oneDNN's int8 (three calls
timed by hand). The choice is echoed in every result's ``settings.device``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = ("default", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")
"""CTranslate2's compute types (``default`` is this module's choice per device)"""


class DeviceError(RuntimeError):
    """A device or compute type that cannot be used here; the message says why and what to use."""


@dataclass(frozen=True)
class DeviceChoice:
    requested: str
    device: str
    """cpu or cuda"""
    compute_type: str

    def settings(self) -> dict[str, str]:
        return {"requested": self.requested, "device": self.device, "compute_type": self.compute_type}


def cuda_visible() -> bool:
    """Whether torch and CTranslate2 both see a CUDA GPU (either alone would leave one model on the CPU)."""
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:  # asked first: torch takes a second or two to import
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_device(requested: str = "auto", compute_type: str = "default") -> DeviceChoice:
    if requested not in DEVICES:
        raise DeviceError(f"--device {requested!r}: expected one of {', '.join(DEVICES)}")
    if compute_type not in COMPUTE_TYPES:
        raise DeviceError(f"--compute-type {compute_type!r}: expected one of {', '.join(COMPUTE_TYPES)}")
    device = requested
    if requested == "auto":
        device = "cuda" if cuda_visible() else "cpu"
    elif requested == "cuda" and not cuda_visible():
        raise DeviceError("--device cuda: no CUDA GPU is visible here (torch or CTranslate2 sees none); "
                          "use --device cpu, or auto to take a GPU where there is one")
    if compute_type == "default":
        compute_type = "float16" if device == "cuda" else "int8"
    elif device == "cpu" and "float16" in compute_type:
        raise DeviceError(f"--compute-type {compute_type}: the CPU does not compute in float16; use int8 or "
                          "float32 (or default)")
    return DeviceChoice(requested, device, compute_type)
