"""The course model matches its reference, loads offline and safely; layers are found by name."""
import pickle
import urllib.error

import pytest
import torch
import torchvision

from helpers import (EfficientNetLite0, WeightsUnavailableError, explainable_layers, imagenet_labels, load_model,
                     resolve_layer, top_k)
from helpers.core.models import lite0_weights_path


def test_same_logits_as_the_reference_package(lite0, photos):
    efficientnet_lite_pytorch = pytest.importorskip("efficientnet_lite_pytorch")
    reference = efficientnet_lite_pytorch.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(lite0_weights_path(), weights_only=True))
    model, _ = lite0
    reference.eval().to(photos.device)
    noise = (torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(photos.device)
    with torch.no_grad():
        for x in (photos, noise):
            assert torch.allclose(model(x), reference(x), atol=1e-5, rtol=0)


def test_top1_on_the_bundled_photos(lite0, photos):
    model, _ = lite0
    labels = top_k(model, photos, k=1).labels
    assert labels[0][0] in {"Egyptian cat", "tiger cat", "tabby", "Persian cat", "Siamese cat"}
    assert labels[1][0] == "espresso"


def test_every_activation_is_its_own_module():
    model = EfficientNetLite0()
    activations = [m for m in model.modules() if isinstance(m, torch.nn.ReLU6)]
    assert len(activations) == len(set(map(id, activations))) == 2 + 16 * 2 - 1  # stem, head, blocks (block 0 has no expand)
    names = [info.name for info in explainable_layers(model)]
    assert "head.act" in names and "blocks.0.depthwise.act" in names and "stem.act" in names


def test_explainable_layers_reports_shapes_and_skips_reused_modules():
    resnet = torchvision.models.resnet18(weights=None)
    layers = {info.name: info for info in explainable_layers(resnet, input_size=(1, 3, 64, 64))}
    assert layers["layer4"].shape == (1, 512, 2, 2)
    assert "layer1.0.relu" not in layers          # runs twice per forward pass
    assert "avgpool" not in layers                # 1 × 1: nothing spatial to explain
    assert resnet.training                        # the flag is restored


class Payload:
    """Stands for any object a malicious checkpoint could smuggle in: only tensors and plain data are allowed."""


def test_checkpoints_are_loaded_with_weights_only(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "payload": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_model("resnet18", weights=path)


def test_torchvision_by_name_with_random_or_saved_weights(tmp_path):
    model, preprocess = load_model("resnet18", weights=None)
    assert not model.training and preprocess.mean == (0.485, 0.456, 0.406)
    path = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), path)
    again, _ = load_model("resnet18", weights=path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_torchvision_pretrained_weights_from_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    saved = torchvision.models.resnet18(weights=None).state_dict()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(saved, tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1])
    model, _ = load_model("resnet18")
    assert torch.equal(model.fc.weight, saved["fc.weight"])


def test_offline_torchvision_weights_explain_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError) as error:
        load_model("resnet50")
    message = str(error.value)
    assert "resnet50" in message and str(tmp_path) in message and "weights=None" in message


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="resnet50"):
        load_model("resnet5O")
    with pytest.raises(FileNotFoundError):
        load_model("efficientnet_lite0", weights="/nonexistent/file.pth")


def test_resolve_layer_by_name_or_module_with_suggestions(tiny_cnn):
    assert resolve_layer(tiny_cnn, "features.2") == ("features.2", tiny_cnn.features[2])
    assert resolve_layer(tiny_cnn, tiny_cnn.fc) == ("fc", tiny_cnn.fc)
    with pytest.raises(ValueError, match="features.2"):
        resolve_layer(tiny_cnn, "features.22")
    with pytest.raises(ValueError, match="not part of"):
        resolve_layer(tiny_cnn, torch.nn.ReLU())
    with pytest.raises(TypeError):
        resolve_layer(tiny_cnn, 3)


def test_labels_are_the_1000_imagenet_classes():
    labels = imagenet_labels()
    assert len(labels) == 1000 and labels[285] == "Egyptian cat" and labels[967] == "espresso"
