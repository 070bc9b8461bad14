"""What a method must leave as it found it, checked one way by every test file: no hook left on any
module, no ``.grad`` written, and the training flags, ``requires_grad`` and weights unchanged."""
import torch


def no_hooks_left(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               and not m._backward_pre_hooks for m in model.modules())


class ModelState:
    """A snapshot of ``model`` taken before a call; :meth:`assert_unchanged` after it."""

    def __init__(self, model):
        self.training = [m.training for m in model.modules()]
        self.requires_grad = [p.requires_grad for p in model.parameters()]
        self.values = {k: v.clone() for k, v in model.state_dict().items()}

    def assert_unchanged(self, model):
        assert no_hooks_left(model)
        assert all(p.grad is None for p in model.parameters())
        assert [m.training for m in model.modules()] == self.training
        assert [p.requires_grad for p in model.parameters()] == self.requires_grad
        assert all(torch.equal(self.values[k], v) for k, v in model.state_dict().items())
