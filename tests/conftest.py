"""Shared fixtures: the real course model (loaded once) and tiny CNNs for fast, exact checks."""
import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

from helpers import load_image, load_model


@pytest.fixture(scope="session")
def lite0():
    """(model, preprocess) for EfficientNet-Lite0 with its ImageNet weights."""
    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def photos(lite0):
    """A batch (2, 3, 224, 224): the cat and the coffee photos, preprocessed for Lite0."""
    _, preprocess = lite0
    return preprocess([load_image("cat"), load_image("coffee")])


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
def tiny_cnn():
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture
def tiny_batch():
    return torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
