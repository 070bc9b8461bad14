"""The workloads: a model, a batch of up to 8 photos with their top-1 classes, and the layers the rows explain."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from helpers import Preprocess, load_image, load_model


@dataclass
class Workload:
    """A model, a batch of up to 8 inputs with their top-1 classes, and the layers the cases explain."""

    name: str
    model: nn.Module
    images: torch.Tensor
    targets: torch.Tensor
    value_range: tuple
    cam_layer: str
    feature_layer: str
    feature_size: int
    preprocess: object = None


def _tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1), relu1=nn.ReLU(), conv2=nn.Conv2d(8, 16, 3, padding=1), relu2=nn.ReLU(),
        pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(16, 10))).eval()


def make_workload(name, device) -> Workload:
    if name == "tiny":
        model = _tiny_model()
        images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
        value_range, layers, size = (-torch.ones(1, 3, 1, 1), torch.ones(1, 3, 1, 1)), ("relu2", "relu1"), 32
        preprocess = Preprocess(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    else:
        model, preprocess = load_model("efficientnet_lite0" if name == "lite0" else name,
                                       **({} if name == "lite0" else {"weights": None}))
        photos = preprocess([load_image(p) for p in ("cat", "coffee", "astronaut", "rocket", "flower")])
        images = torch.cat([photos, photos[:3].flip(-1)])
        value_range = preprocess.value_range
        layers, size = {"lite0": (("head.act", "blocks.8"), 128), "resnet50": (("layer4", "layer3"), 128)}[name]
    model = model.to(device).eval()
    images = images.to(device)
    with torch.no_grad():
        targets = model(images).argmax(1)
    return Workload(name, model, images, targets, tuple(v.to(device) for v in value_range), *layers, size, preprocess)


def generator():
    return torch.Generator().manual_seed(0)
