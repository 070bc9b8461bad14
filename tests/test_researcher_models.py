"""Models as researchers bring them: channels-last layers (ConvNeXt), outputs that are dicts (Hugging Face style),
``torch.compile``d models, and wrapped models (a normalisation in front, ``DataParallel``) in the cascade. Each
gets a right answer or an error that says what to do, before any work is done."""
import pytest
import torch
import torchvision
from torch import nn

from conftest import TinyCNN
from helpers import (ablation_cam, cam, eigen_cam, explainable_layers, grad_cam, grad_cam_pp, guided_backprop,
                     integrated_gradients, saliency, score_cam, smooth_grad)
from helpers.methods.cam import LayerPass
from helpers.judging.sanity import cascade_layers, randomisation_cascade
from model_state import no_hooks_left


# --------------------------------------------------------------------------- #
# Channels-last layers
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def convnext():
    torch.manual_seed(0)
    return torchvision.models.convnext_tiny(weights=None).eval()


@pytest.fixture(scope="module")
def small_input():
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_explainable_layers_leave_out_the_channels_last_layers_inside_convnext_blocks(convnext):
    layers = {info.name: info for info in explainable_layers(convnext, input_size=(1, 3, 64, 64))}
    widths = {96, 192, 384, 768}
    assert {"features.1", "features.1.0", "features.3.2", "features.7"} <= set(layers)
    inside = [name for name in layers if ".block." in name]
    assert inside and all(name.endswith((".block.0", ".block.6")) for name in inside)  # the conv, the permute back
    assert all(info.shape[1] in widths for info in layers.values())   # dimension 1 is always the channels


CHANNEL_METHODS = {
    "grad_cam": lambda m, x, layer: grad_cam(m, x, 1, layer),
    "eigen_cam": lambda m, x, layer: eigen_cam(m, x, layer),
    "score_cam": lambda m, x, layer: score_cam(m, x, 1, layer),
    "ablation_cam": lambda m, x, layer: ablation_cam(m, x, 1, layer),
}


@pytest.mark.parametrize("method", list(CHANNEL_METHODS))
def test_a_channels_last_layer_is_refused_with_the_block_around_it(method, convnext, small_input):
    with pytest.raises(ValueError) as error:
        CHANNEL_METHODS[method](convnext, small_input, "features.1.0.block.4")
    message = str(error.value)
    assert "'features.1.0.block.4' outputs (1, 16, 16, 384)" in message and "channels last" in message
    assert "'features.1.0'" in message and "explainable_layers" in message
    assert no_hooks_left(convnext)


def test_a_stage_output_of_convnext_is_explained(convnext, small_input):
    maps = grad_cam(convnext, small_input, 1, "features.5")
    assert maps.shape == (1, 4, 4) and torch.isfinite(maps).all()


class ChannelsLastNet(nn.Module):
    """conv → permute to (N, h, w, C) → linear over channels → permute back → GAP → linear. With 8 channels on an
    8 × 8 input every feature map is (N, 8, 8, 8): the shape alone cannot tell the layouts apart."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Linear(8, 8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        features = self.conv(x)
        mixed = self.mix(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.fc(mixed.mean((2, 3)))


def test_the_layout_is_read_from_how_the_map_follows_the_input_not_from_its_shape():
    torch.manual_seed(0)
    model, x = ChannelsLastNet().eval(), torch.randn(2, 3, 8, 8)
    assert [info.name for info in explainable_layers(model, input_size=(1, 3, 8, 8))] == ["conv"]
    assert grad_cam(model, x, 1, "conv").shape == (2, 8, 8)
    with pytest.raises(ValueError, match=r"'mix' outputs \(2, 8, 8, 8\).*channels last.*'conv'"):
        grad_cam(model, x, 1, "mix")


# --------------------------------------------------------------------------- #
# Outputs that are not a logits tensor
# --------------------------------------------------------------------------- #
class DictOutput(nn.Module):
    """A classifier returning ``{"logits": ...}``, as Hugging Face models do."""

    def __init__(self):
        super().__init__()
        self.net = TinyCNN()

    def forward(self, x):
        return {"logits": self.net(x)}


DICT_CALLS = {
    "saliency": lambda m, x, t: saliency(m, x, t),
    "smooth_grad": lambda m, x, t: smooth_grad(m, x, t, samples=2),
    "integrated_gradients": lambda m, x, t: integrated_gradients(m, x, t, steps=2),
    "grad_cam": lambda m, x, t: grad_cam(m, x, t, "net.features.3"),
    "grad_cam_pp": lambda m, x, t: grad_cam_pp(m, x, t, "net.features.3"),
    "score_cam": lambda m, x, t: score_cam(m, x, t, "net.features.3"),
}


@pytest.mark.parametrize("target", [1, lambda logits: logits[:, 1]], ids=["class", "callable"])
@pytest.mark.parametrize("method", list(DICT_CALLS))
def test_a_model_returning_a_dict_gets_an_error_that_says_how_to_wrap_it(method, target, tiny_batch):
    model = DictOutput().eval()
    with pytest.raises(TypeError) as error:
        DICT_CALLS[method](model, tiny_batch.cpu(), target)
    message = str(error.value)
    assert "dict" in message and "'logits'" in message and "LogitsOf(model" in message
    assert no_hooks_left(model)


def test_the_wrapper_the_message_names_explains_the_same_network(tiny_batch):
    from helpers import LogitsOf

    model = DictOutput().eval()
    wrapped = LogitsOf(model, "logits")
    assert torch.equal(saliency(wrapped, tiny_batch.cpu(), 1), saliency(model.net, tiny_batch.cpu(), 1))
    assert torch.equal(grad_cam(wrapped, tiny_batch.cpu(), 1, "model.net.features.3"),
                       grad_cam(model.net, tiny_batch.cpu(), 1, "features.3"))


# --------------------------------------------------------------------------- #
# torch.compile
# --------------------------------------------------------------------------- #
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act = nn.Conv2d(6, 6, 3, padding=1), nn.ReLU()

    def forward(self, x):
        return x + self.act(self.conv(x))


class Blocks(nn.Module):
    """stem → two residual blocks → mean → linear: small enough to compile in a few seconds."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.blocks = nn.Sequential(Block(), Block())
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def test_why_a_compiled_model_is_refused_a_layer_asked_second_seems_not_to_run(tiny_batch):
    """The code compiled for the first call runs whichever hooks existed then (PyTorch does not guard compiled
    code on module hooks: ``torch._dynamo.config.skip_nnmodule_hook_guards``): recording a second layer of
    the original module through the compiled one finds nothing, the error learners met. torch.compile's own
    eager backend shows it in seconds; if a PyTorch release starts to guard hooks, this test says so."""
    from helpers import explaining, record

    torch.manual_seed(0)
    net = Blocks().eval()
    compiled = torch.compile(net, backend="eager")
    recorded = []
    for layer in ("blocks.1", "stem"):
        with explaining(net), record(net, layer, leaf=True) as recording:
            compiled(tiny_batch.cpu())
        recorded.append(recording.activations is not None)
    torch._dynamo.reset()
    assert recorded == [True, False]


COMPILED_CALLS = {
    "cam": lambda m, x: cam(m, x, 1),
    "grad_cam": lambda m, x: grad_cam(m, x, 1, "_orig_mod.features.3"),
    "eigen_cam": lambda m, x: eigen_cam(m, x, "_orig_mod.features.3"),
    "LayerPass": lambda m, x: LayerPass(m, x, "_orig_mod.features.1"),
    "guided_backprop": lambda m, x: guided_backprop(m, x, 1),
    "explainable_layers": lambda m, x: explainable_layers(m, input_size=(1, 3, 12, 12)),
    "cascade_layers": lambda m, x: cascade_layers(m, x),
}


@pytest.mark.parametrize("method", list(COMPILED_CALLS))
def test_a_compiled_model_is_refused_up_front_with_the_original_module_named(method, tiny_batch):
    torch.manual_seed(0)
    net = TinyCNN().eval()
    compiled = torch.compile(net)                            # never run: the refusal comes before any forward pass
    with pytest.raises(TypeError, match=r"torch\.compile.*hooks.*model\._orig_mod"):
        COMPILED_CALLS[method](compiled, tiny_batch.cpu())
    assert no_hooks_left(net)


def test_gradient_methods_without_hooks_still_take_a_compiled_model(tiny_batch):
    torch.manual_seed(0)
    net = TinyCNN().eval()
    compiled = torch.compile(net, backend="eager")
    assert torch.allclose(saliency(compiled, tiny_batch.cpu(), 1), saliency(net, tiny_batch.cpu(), 1))
    torch._dynamo.reset()


# --------------------------------------------------------------------------- #
# The randomisation cascade on layers it cannot reset, and on wrapped models
# --------------------------------------------------------------------------- #
def test_the_cascade_refuses_a_layer_it_cannot_reset_before_any_map_with_its_full_path(convnext, small_input):
    calls = []

    def explain(model, x, target):
        calls.append(1)
        return grad_cam(model, x, target, "features.7")

    with pytest.raises(TypeError, match=r"'features\.7\.0' \(CNBlock: layer_scale\)"):
        randomisation_cascade(convnext, small_input, 1, explain)
    assert not calls                                         # refused before the original maps were computed


def test_the_cascade_refuses_a_vision_transformers_encoder_up_front():
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16,
                            num_classes=5).eval()
    with pytest.raises(TypeError, match=r"'encoder' \(Encoder: pos_embedding\)"):
        randomisation_cascade(vit, torch.randn(1, 3, 32, 32), 1, lambda m, x, t: x[:, 0])


class Normalise(nn.Module):
    def forward(self, x):
        return (x - 0.5) / 0.25


@pytest.mark.parametrize("wrap, prefix", [(lambda net: nn.Sequential(Normalise(), net), "1."),
                                          (nn.DataParallel, "module."),
                                          (lambda net: nn.Sequential(nn.Sequential(Normalise(), net)), "0.1.")],
                         ids=["normalise", "DataParallel", "nested"])
def test_the_cascade_descends_into_a_wrapper_around_the_network(wrap, prefix, tiny_cnn, tiny_batch):
    model = wrap(tiny_cnn.cpu())
    expected = [prefix + name for name in ("fc", "features.2", "features.0")]
    assert cascade_layers(model, tiny_batch.cpu()) == expected
    result = randomisation_cascade(model, tiny_batch.cpu(), 1, lambda m, x, t: saliency(m, x, t, reduce="sum"))
    assert result.layers == ["original", *expected]


class WithTemperature(nn.Module):
    """TinyCNN whose logits are divided by a learned temperature held by the model itself, as a ViT holds its
    class token: a parameter in no layer group."""

    def __init__(self):
        super().__init__()
        self.net, self.temperature = TinyCNN(), nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        return self.net(x) / self.temperature


def test_the_cascade_names_the_parameters_it_leaves_trained(tiny_batch):
    torch.manual_seed(0)
    model = WithTemperature().eval()
    with pytest.warns(UserWarning, match="leave temperature out"):
        assert cascade_layers(model, tiny_batch.cpu()) == ["net.fc", "net.features.2", "net.features.0"]
