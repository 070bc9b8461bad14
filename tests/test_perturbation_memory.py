"""Score-CAM, Ablation-CAM and Occlusion keep memory bounded by the chunk: with twice the channels or patch
positions at a fixed ``batch_size``, the work doubles and the largest batch any layer sees stays the same."""
import pytest
import torch

from conftest import TinyCNN
from helpers import ablation_cam, eigen_cam, occlusion, score_cam


def largest_batches(model, explain):
    """(largest batch any module of ``model`` was given, rows its last layer saw in all) during ``explain()``."""
    seen, last = [], []
    hooks = [module.register_forward_pre_hook(lambda module, inputs: seen.append(len(inputs[0])))
             for module in model.modules()]
    hooks.append(model.fc.register_forward_pre_hook(lambda module, inputs: last.append(len(inputs[0]))))
    try:
        explain()
    finally:
        for hook in hooks:
            hook.remove()
    return max(seen), sum(last)


@pytest.mark.parametrize("method", [score_cam, ablation_cam])
def test_channel_methods_never_see_more_than_batch_size_rows(method, tiny_batch):
    results = {}
    for channels in (6, 12):
        torch.manual_seed(0)
        model = TinyCNN(channels=channels).eval()
        results[channels] = largest_batches(
            model, lambda: method(model, tiny_batch, 1, "features.3", batch_size=4, progress=False))
    (largest_6, rows_6), (largest_12, rows_12) = results[6], results[12]
    assert rows_12 - len(tiny_batch) == 2 * (rows_6 - len(tiny_batch))   # one row per image and channel ...
    assert rows_6 - len(tiny_batch) == len(tiny_batch) * 6                # ... after the clean pass
    assert largest_12 == largest_6 <= max(4, len(tiny_batch))             # ... but never more than a chunk at once


def test_occlusion_never_sees_more_than_batch_size_rows(tiny_cnn, tiny_batch):
    results = {}
    for width in (2, 1):                                   # 6 then 12 patch positions across a 12-pixel row
        results[width] = largest_batches(tiny_cnn, lambda: occlusion(tiny_cnn, tiny_batch, 1, window=(12, width),
                                                                     stride=(12, width), batch_size=4, progress=False))
    (largest_6, rows_6), (largest_12, rows_12) = results[2], results[1]
    assert (rows_6 - len(tiny_batch), rows_12 - len(tiny_batch)) == (len(tiny_batch) * 6, len(tiny_batch) * 12)
    assert largest_12 == largest_6 <= max(4, len(tiny_batch))


@pytest.mark.parametrize("name", ["eigen_cam", "occlusion", "ablation_cam", "score_cam"])
def test_clean_passes_are_chunked_so_memory_does_not_grow_with_the_batch(name):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    explain = {"eigen_cam": lambda x: eigen_cam(model, x, "features.3", batch_size=4),
               "occlusion": lambda x: occlusion(model, x, 1, window=12, stride=12, batch_size=4, progress=False),
               "ablation_cam": lambda x: ablation_cam(model, x, 1, "features.3", channels=[0], batch_size=4,
                                                      progress=False),
               "score_cam": lambda x: score_cam(model, x, 1, "features.3", channels=[0], batch_size=4,
                                                progress=False)}[name]
    largest = {n: largest_batches(model, lambda: explain(torch.randn(n, 3, 12, 12)))[0] for n in (8, 64)}
    assert largest[64] == largest[8] <= 4
