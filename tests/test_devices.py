"""``--device auto|cpu|cuda`` and ``--compute-type``: chosen once, refused in one line where they cannot
run, and echoed in every result. (The GPU path itself runs only where a GPU is: ``bench/``.)"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from qa_audio.cli import app
from qa_audio.devices import DeviceError, choose_device, cuda_visible
from tests.helpers import SAMPLE_CALLS, sample_call_truths


def test_cpu_is_int8_by_default_and_auto_takes_a_gpu_only_where_there_is_one():
    assert choose_device("cpu").settings() == {"requested": "cpu", "device": "cpu", "compute_type": "int8"}
    assert choose_device("cpu", "float32").compute_type == "float32"
    auto = choose_device("auto")
    assert auto.device == ("cuda" if cuda_visible() else "cpu")
    assert auto.compute_type == ("float16" if cuda_visible() else "int8")


@pytest.mark.parametrize(("device", "compute_type", "message"), [
    ("tpu", "default", "--device 'tpu'"),
    ("cpu", "float8", "--compute-type 'float8'"),
    ("cpu", "float16", "the CPU does not compute in float16"),
])
def test_impossible_choices_are_refused(device, compute_type, message):
    with pytest.raises(DeviceError, match=message):
        choose_device(device, compute_type)


@pytest.mark.skipif(cuda_visible(), reason="this machine has a GPU: --device cuda is valid here")
def test_cuda_without_a_gpu_is_one_line_and_exit_3_before_anything_is_decoded(tmp_path):
    runner = CliRunner()
    out = tmp_path / "x.json"
    for args in (["analyze", str(SAMPLE_CALLS / "call09_talkover_stereo.wav"), "-o", str(out), "-q"],
                 ["batch", str(SAMPLE_CALLS / "call09_talkover_stereo.wav"), "--db", str(tmp_path / "qa.db"), "-q"]):
        result = runner.invoke(app, [*args, "--device", "cuda"])
        assert result.exit_code == 3 and "no CUDA GPU is visible here" in result.output, args
        assert result.output.count("qa-audio: error:") == 1
    assert not out.exists() and not (tmp_path / "qa.db").exists()


@pytest.mark.slow
def test_the_device_is_echoed_in_the_result(analyses):
    truth = next(t for t in sample_call_truths() if t["name"].startswith("call09"))
    settings = analyses(truth).settings
    expected = choose_device("auto")
    assert settings["device"] == expected.settings()
    assert (settings["asr"]["device"], settings["asr"]["compute_type"]) == (expected.device, expected.compute_type)
