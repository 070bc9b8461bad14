"""Shared fixtures: the real course model (loaded once) and tiny CNNs for fast, exact checks, on the device
chosen with ``--device`` (or the environment variable ``CNN_SEEING_DEVICE``; default: the CPU).

``python -m pytest --device cuda`` (``make test DEVICE=cuda``) puts the fixtures' models and batches on the
GPU and exports the variable, so the notebooks' kernels, started by nbval from this process, load their
model and preprocess their photos there too. Tests that build their own models stay on the CPU.
"""
import os

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from helpers import default_device, load_image, load_model
from helpers.hooks import DEVICE_VARIABLE


def pytest_addoption(parser):
    parser.addoption("--device", default=None,
                     help=f"run the unit tests' fixtures and the notebooks on this torch device (cpu, cuda, cuda:1, "
                          f"mps); default: ${DEVICE_VARIABLE}, else cpu")


def pytest_configure(config):
    chosen = config.getoption("--device", default=None)
    if chosen:
        os.environ[DEVICE_VARIABLE] = chosen  # inherited by the notebook kernels nbval starts
    try:
        device = default_device()  # a bad name or a missing GPU fails here, once, with the reason
    except (ValueError, RuntimeError) as error:
        raise pytest.UsageError(str(error)) from None
    if device.type == "cuda":
        # The checks compare float32 results at tolerances set on the CPU; TensorFloat-32, which cuDNN's
        # convolutions use by default on Ampere and later GPUs, keeps only 10 mantissa bits. Off here and,
        # through NVIDIA's variable, in the notebook kernels.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")


@pytest.fixture(scope="session")
def device():
    return default_device()


@pytest.fixture(scope="session")
def lite0(device):
    """(model, preprocess) for EfficientNet-Lite0 with its ImageNet weights."""
    return load_model("efficientnet_lite0", device=device)


@pytest.fixture(scope="session")
def photos(lite0, device):
    """A batch (2, 3, 224, 224): the cat and the coffee photos, preprocessed for Lite0."""
    _, preprocess = lite0
    return preprocess([load_image("cat"), load_image("coffee")], device=device)


class TinyCNN(nn.Module):
    """conv → ReLU → conv → ReLU → GAP → linear: the smallest network CAM and Grad-CAM apply to."""

    def __init__(self, classes=5, channels=6, inplace=False):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(inplace=inplace),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=inplace),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture
def tiny_cnn(device):
    torch.manual_seed(0)
    return TinyCNN().eval().to(device)


@pytest.fixture
def tiny_batch(device):
    return torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1)).to(device)
