"""The anchors: captum, torchcam and pytorch-grad-cam (PyPI name ``grad-cam``), used as their documentation
shows, where they offer the method. A missing one is skipped with a printed line."""
from __future__ import annotations

import importlib
import importlib.metadata

ANCHORS = {"captum": "captum.attr", "torchcam": "torchcam.methods", "grad-cam": "pytorch_grad_cam"}


def load_anchors(names) -> tuple[dict, dict]:
    """``({name: module}, {name: version})`` of the anchors among ``names`` that are installed."""
    anchors, versions = {}, {}
    for name in names:
        try:
            anchors[name] = importlib.import_module(ANCHORS[name])
            versions[name] = importlib.metadata.version(name)
        except ImportError:
            print(f"skipping {name}: not installed (pip install -e '.[bench]')")
    return anchors, versions


def torchcam_map(extractor, model, layer, x, target, **options):
    with extractor(model, layer, **options) as cam:
        scores = model(x)
        return cam(class_idx=target.tolist(), scores=scores, normalized=False)[0]


def pytorch_grad_cam_map(method, model, module, x, target):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with method(model=model, target_layers=[module]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in target])
