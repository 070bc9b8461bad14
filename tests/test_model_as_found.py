"""A researcher's model comes back as it was given: each module's own training flag (a train-mode model with
frozen batch norm, an MC-dropout layer left on in an eval model) and, on a quantisation-aware model, the
observers' statistics (``FakeQuantize`` in eval still observes every batch unless told not to)."""
import pytest
import torch
from torch import nn

from conftest import TinyCNN
from helpers import (ablation_cam, eigen_cam, explainable_layers, grad_cam, grad_cam_pp, integrated_gradients,
                     occlusion, saliency, score_cam, smooth_grad, smooth_grad_cam_pp)
from helpers.judging.sanity import cascade_layers, randomisation_cascade
from model_state import ModelState


def mixed_flag_cnn():
    """A model in train mode whose batch norms are frozen (eval), with an MC-dropout layer kept in train and a
    conv in eval: no single ``model.train(flag)`` gives these flags back."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.5),
                          nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
    model.train()
    model[1].eval(), model[5].eval(), model[4].eval()
    return model


def input_gradient_map(model, x, target):
    return saliency(model, x, target, reduce="sum")


MIXED_FLAG_CALLS = {
    "cascade_layers": lambda model, x: cascade_layers(model, x),
    "explainable_layers": lambda model, x: explainable_layers(model, input_size=(1, 3, 12, 12)),
    "randomisation_cascade": lambda model, x: randomisation_cascade(model, x, 1, input_gradient_map),
    "grad_cam on a layer without a map": lambda model, x: grad_cam(model, x, 1, "9"),
    "eigen_cam on a layer without a map": lambda model, x: eigen_cam(model, x, "7"),
}


@pytest.mark.parametrize("name", list(MIXED_FLAG_CALLS))
def test_each_modules_own_training_flag_comes_back(name, tiny_batch):
    model = mixed_flag_cnn()
    flags = [m.training for m in model.modules()]
    assert len(set(flags)) == 2                              # the test means something: the flags are mixed
    state = ModelState(model)
    try:
        MIXED_FLAG_CALLS[name](model, tiny_batch.cpu())
    except ValueError as error:
        assert "no map to explain" in str(error)
    state.assert_unchanged(model)


# --------------------------------------------------------------------------- #
# Quantisation-aware and calibrating models
# --------------------------------------------------------------------------- #
def qat_cnn():
    """TinyCNN prepared for quantisation-aware training (FakeQuantize on weights and activations), trained
    for one batch so its observers hold statistics, then put in eval, where FakeQuantize still observes."""
    torch.manual_seed(0)
    model = TinyCNN().train()
    model.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
    torch.ao.quantization.prepare_qat(model, inplace=True)
    model(torch.randn(4, 3, 12, 12))
    return model.eval()


def calibrating_cnn():
    """TinyCNN prepared for post-training quantisation: plain observers, between two calibration batches."""
    torch.manual_seed(0)
    model = TinyCNN().eval()
    model.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    torch.ao.quantization.prepare(model, inplace=True)
    model(torch.randn(4, 3, 12, 12))
    return model


LAYER = "features.3"
METHODS = {
    "grad_cam": lambda m, x: grad_cam(m, x, 1, LAYER),
    "grad_cam_pp": lambda m, x: grad_cam_pp(m, x, 1, LAYER),
    "smooth_grad_cam_pp": lambda m, x: smooth_grad_cam_pp(m, x, 1, LAYER, samples=2),
    "saliency": lambda m, x: saliency(m, x, 1),
    "smooth_grad": lambda m, x: smooth_grad(m, x, 1, samples=2),
    "integrated_gradients": lambda m, x: integrated_gradients(m, x, 1, steps=2),
    "eigen_cam": lambda m, x: eigen_cam(m, x, LAYER),
    "score_cam": lambda m, x: score_cam(m, x, 1, LAYER),
    "ablation_cam": lambda m, x: ablation_cam(m, x, 1, LAYER),
    "occlusion": lambda m, x: occlusion(m, x, 1, window=6, stride=6),
    "explainable_layers": lambda m, x: explainable_layers(m, input_size=(1, 3, 12, 12)),
    "cascade_layers": lambda m, x: cascade_layers(m, x),
}


@pytest.mark.parametrize("prepared", [qat_cnn, calibrating_cnn])
@pytest.mark.parametrize("method", list(METHODS))
def test_observers_are_frozen_during_an_explanation_and_the_model_comes_back_unchanged(method, prepared, tiny_batch):
    model = prepared()
    x = tiny_batch.cpu() * 5                                 # outside the range the observers saw: they would move
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    METHODS[method](model, x)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"{method} changed {changed}"
    assert [m.training for m in model.modules()] == flags
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks


def test_frozen_observers_still_fake_quantise_with_the_scales_they_had(tiny_batch):
    """Freezing stops the statistics, not the quantisation: the explained logits are the model's own at its
    current scales (those of a copy whose observers were switched off the PyTorch way)."""
    model = qat_cnn()
    reference = qat_cnn().apply(torch.ao.quantization.disable_observer)
    x = tiny_batch.cpu() * 5
    gradient = saliency(model, x, lambda logits: logits[:, 1], reduce=None)
    expected_gradient = saliency(reference, x, lambda logits: logits[:, 1], reduce=None)
    assert torch.equal(gradient, expected_gradient) and gradient.abs().sum() > 0
