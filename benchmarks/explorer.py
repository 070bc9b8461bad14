"""The Grad-CAM explorer: what an update costs when only the class or the layer changes."""
from __future__ import annotations

import statistics
import time

import torch

from helpers.methods.cam import LayerPass, grad_cam

from .timing import clock
from .workloads import Workload


def explorer_costs(w: Workload, device, rounds: int):
    """Wall times of the Grad-CAM explorer's updates, and a function that makes one pass it caches
    (its memory is measured with the others, at the end)."""
    try:
        from helpers.widgets.cam import GradCamExplorer
    except ImportError as error:
        print(f"  skipping the Grad-CAM explorer: {error}")
        return None, None
    explorer = GradCamExplorer(w.model, w.preprocess, layer=w.cam_layer, layers=[w.cam_layer, w.feature_layer])
    with torch.no_grad():
        classes = w.model(explorer.x).topk(rounds + 1).indices[0].tolist()
    run = explorer._pass(w.cam_layer)
    out = {"class_change_seconds": [], "class_change_compute_seconds": [], "fresh_call_seconds": []}
    for c in classes[1:]:
        start = time.perf_counter()
        explorer.classes.value = c
        out["class_change_seconds"].append(time.perf_counter() - start)
        out["class_change_compute_seconds"].append(clock(lambda: run.grad_cam(c), device)[2])
        out["fresh_call_seconds"].append(clock(lambda: grad_cam(w.model, explorer.x, c, w.cam_layer), device)[2])
    for label, layer in (("new_layer_seconds", w.feature_layer), ("revisited_layer_seconds", w.cam_layer)):
        start = time.perf_counter()
        explorer.layer.value = layer
        out[label] = time.perf_counter() - start
    return ({"model": w.name, "layers": [w.cam_layer, w.feature_layer],
             **{k: statistics.median(v) if isinstance(v, list) else v for k, v in out.items()}},
            lambda: LayerPass(w.model, explorer.x, w.cam_layer))
