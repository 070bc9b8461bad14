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
from helpers.core.hooks import DEVICE_VARIABLE


def pytest_addoption(parser):
    parser.addoption("--device", default=None,
                     help=f"run the unit tests' fixtures and the notebooks on this torch device (cpu, cuda, cuda:1, "
                          f"mps); default: ${DEVICE_VARIABLE}, else cpu")


# The files that take longest, longest first (measure with `--durations=0`). pytest-xdist gives each worker
# the next file left as it frees up, so starting with the longest keeps every core busy to the end instead
# of leaving one notebook running alone.
LONGEST_FIRST = [
    "tests/test_nbgrader_course.py", "notebooks/08_judging_explanations.ipynb", "tests/test_classroom.py",
    "tests/test_browser.py", "tests/test_evaluate_explorer.py", "notebooks/10_ground_truth.ipynb",
    "notebooks/07_integrated_gradients.ipynb", "tests/test_benchmark_smoke.py", "tests/test_explain_runs.py",
    "tests/test_book.py", "tests/test_synthetic_retraining.py", "notebooks/09_cam_variants.ipynb",
    "notebooks/06_filters_and_deep_dream.ipynb", "notebooks/05_smoothgrad.ipynb", "tests/test_explain_cli.py",
    "tests/test_cam_widgets.py", "tests/test_install.py", "notebooks/03_grad_cam_pp.ipynb", "tests/test_device_choice.py",
]
# What `make check` leaves out: whole notebooks, a browser, the website, nbgrader, a wheel install, torchrun,
# notebook 10's two models trained in full.
SLOW = {"tests/test_nbgrader_course.py", "tests/test_classroom.py", "tests/test_browser.py", "tests/test_book.py",
        "tests/test_install.py", "tests/test_explain_runs.py", "tests/test_benchmark_smoke.py",
        "tests/test_synthetic_retraining.py"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a notebook, a browser, the website, nbgrader, a wheel install, torchrun or "
                                       "a full training run (make check leaves these out)")
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:  # each worker, and the notebook kernels it starts, gets its share of the cores, not all of them
        threads = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
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


def pytest_collection_modifyitems(config, items):
    def path(item):
        return item.path.relative_to(config.rootpath).as_posix()

    def rank(item):
        return LONGEST_FIRST.index(path(item)) if path(item) in LONGEST_FIRST else len(LONGEST_FIRST)

    for item in items:
        if path(item) in SLOW or item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
    items.sort(key=rank)  # stable: within a file, and among the others, the collection order stays


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
