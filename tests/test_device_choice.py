"""One environment variable, CNN_SEEING_DEVICE, chooses where the course runs: load_model and preprocess put
the model and the photos there, so the notebooks need no change; pytest's --device sets it for the unit
tests' fixtures and for the notebook kernels nbval starts."""
import os
import subprocess
import sys

import pytest
import torch

from helpers import default_device, load_image, load_model
from helpers.core.hooks import DEVICE_VARIABLE


def test_the_variable_moves_the_model_and_the_photos(monkeypatch):
    monkeypatch.setenv(DEVICE_VARIABLE, "meta")
    model, preprocess = load_model("efficientnet_lite0", weights=None)
    assert next(model.parameters()).device.type == "meta"
    assert preprocess(load_image("cat")).device.type == "meta"
    assert next(load_model("efficientnet_lite0", weights=None, device="cpu")[0].parameters()).device.type == "cpu"
    assert preprocess(load_image("cat"), device="cpu").device.type == "cpu"  # an explicit device wins


def test_without_the_variable_everything_stays_on_the_cpu(monkeypatch):
    monkeypatch.delenv(DEVICE_VARIABLE, raising=False)
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv(DEVICE_VARIABLE, "  ")
    assert default_device() == torch.device("cpu")


def test_a_bad_device_name_is_named(monkeypatch):
    monkeypatch.setenv(DEVICE_VARIABLE, "cdua")
    with pytest.raises(ValueError, match="CNN_SEEING_DEVICE='cdua' is not a device PyTorch knows"):
        load_model("efficientnet_lite0", weights=None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_a_gpu_that_is_not_there_says_what_to_install(monkeypatch):
    monkeypatch.setenv(DEVICE_VARIABLE, "cuda")
    with pytest.raises(RuntimeError, match="sees no CUDA GPU.*CUDA build of torch"):
        default_device()


def test_child_processes_like_notebook_kernels_get_the_tests_device(device):
    """nbval's kernels are children of this process: they see what --device chose."""
    code = "from helpers import default_device, load_model; print(default_device(), " \
           "next(load_model(weights=None)[0].parameters()).device.type)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.split() == [str(device), device.type]
