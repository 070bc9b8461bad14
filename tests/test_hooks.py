"""record() sees what the layer computed and the gradient that reached it, and always cleans up."""
import pytest
import torch
import torchvision

from helpers import check_batch, explaining, record
from model_state import no_hooks_left


def test_activations_and_gradients_match_a_manual_split(tiny_cnn, tiny_batch):
    with explaining(tiny_cnn), record(tiny_cnn, "features.1") as rec:
        x = tiny_batch.clone().requires_grad_(True)
        score = tiny_cnn(x)[:, 2].sum()
        (grad,) = torch.autograd.grad(score, rec.activations)
    assert torch.equal(rec.gradients, grad)
    features = tiny_cnn.features[:2](tiny_batch).requires_grad_(True)
    manual = tiny_cnn.fc(tiny_cnn.pool(tiny_cnn.features[2:](features)).flatten(1))[:, 2].sum()
    (expected,) = torch.autograd.grad(manual, features)
    assert torch.allclose(rec.activations, features) and torch.allclose(grad, expected)
    assert no_hooks_left(tiny_cnn)


def test_a_leaf_recording_starts_the_graph_at_the_layer(tiny_cnn, tiny_batch):
    x = tiny_batch.clone().requires_grad_(True)
    with explaining(tiny_cnn), record(tiny_cnn, "features.1") as whole:
        (through,) = torch.autograd.grad(tiny_cnn(x)[:, 2].sum(), whole.activations)
    with explaining(tiny_cnn), record(tiny_cnn, "features.1", leaf=True) as cut:
        score = tiny_cnn(x)[:, 2].sum()
    assert cut.activations.is_leaf and cut.activations.requires_grad
    (from_leaf,) = torch.autograd.grad(score, cut.activations, retain_graph=True)
    assert torch.equal(from_leaf, through) and torch.equal(cut.gradients, from_leaf)
    # nothing before the layer is on the graph: the input receives no gradient
    assert torch.autograd.grad(score, x, allow_unused=True) == (None,)
    assert no_hooks_left(tiny_cnn)


def test_backward_fills_gradients_through_in_place_relus():
    model = torchvision.models.vgg11(weights=None).eval()
    with explaining(model), record(model, "features.0") as rec:   # its output is then overwritten in place
        x = torch.randn(1, 3, 32, 32, requires_grad=True)
        model(x)[0, 7].backward()
    assert rec.gradients is not None and rec.gradients.shape == rec.activations.shape
    assert torch.equal(rec.activations, model.features[0](x))   # kept: the in-place ReLU changed only a copy
    assert all(p.grad is None for p in model.parameters())


def test_a_recording_does_not_keep_its_graph_alive(tiny_cnn, tiny_batch):
    import gc
    import weakref

    with explaining(tiny_cnn), record(tiny_cnn, "features.1") as rec:
        out = tiny_cnn(tiny_batch.clone().requires_grad_(True))
    activations = weakref.ref(rec.activations)
    del rec, out
    gc.collect()
    assert activations() is None, "the recorded activations (and the graph behind them) were never freed"


def test_hooks_are_removed_when_the_body_raises(tiny_cnn, device):
    with pytest.raises(ZeroDivisionError):
        with explaining(tiny_cnn), record(tiny_cnn, "features.2"):
            tiny_cnn(torch.randn(1, 3, 8, 8, device=device))
            1 / 0
    assert no_hooks_left(tiny_cnn)


def test_a_reused_module_is_refused_and_the_hooks_are_still_removed():
    resnet = torchvision.models.resnet18(weights=None)
    with pytest.raises(RuntimeError, match="parent block"):
        with record(resnet, "layer1.0.relu"):
            resnet(torch.randn(1, 3, 32, 32))
    assert no_hooks_left(resnet)


def test_repeated_forward_passes_are_allowed(tiny_cnn, device):
    with record(tiny_cnn, "features.3") as rec:
        tiny_cnn(torch.randn(1, 3, 8, 8, device=device))
        tiny_cnn(torch.randn(2, 3, 8, 8, device=device))
    assert rec.activations.shape[0] == 2


def test_a_layer_without_a_tensor_output_is_explained():
    class Pair(torch.nn.Module):
        def forward(self, x):
            return x, x

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pair()

        def forward(self, x):
            return self.pair(x)[0]

    net = Net()
    with pytest.raises(TypeError, match="sub-layers"):
        with record(net, "pair"):
            net(torch.zeros(1))
    assert no_hooks_left(net)


def test_explaining_restores_every_flag(tiny_cnn):
    tiny_cnn.train()
    tiny_cnn.features[1].eval()                  # a mixed state, as fine-tuning code leaves it
    tiny_cnn.fc.weight.requires_grad_(False)
    flags = [m.training for m in tiny_cnn.modules()]
    grads = {p: p.requires_grad for p in tiny_cnn.parameters()}
    with pytest.raises(KeyError):
        with explaining(tiny_cnn):
            assert not any(m.training for m in tiny_cnn.modules())
            assert not any(p.requires_grad for p in tiny_cnn.parameters())
            raise KeyError
    assert [m.training for m in tiny_cnn.modules()] == flags
    assert {p: p.requires_grad for p in tiny_cnn.parameters()} == grads


@pytest.mark.parametrize("bad, error, message", [
    ([1, 2, 3], TypeError, "tensor batch"),
    (torch.zeros(3, 8, 8), ValueError, "unsqueeze"),
    (torch.zeros(0, 3, 8, 8), ValueError, "non-empty"),
    (torch.zeros(8, 8), ValueError, r"\(N, C, H, W\)"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), TypeError, "floating-point"),
])
def test_check_batch_explains_bad_inputs(tiny_cnn, bad, error, message):
    with pytest.raises(error, match=message):
        check_batch(tiny_cnn, bad)


def test_check_batch_moves_to_the_model_dtype(tiny_cnn):
    x = check_batch(tiny_cnn.double(), torch.zeros(1, 3, 8, 8, requires_grad=True))
    assert x.dtype == torch.float64 and not x.requires_grad
