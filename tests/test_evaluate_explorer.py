"""Notebook 08's comparison explorer, driven headlessly: every method, its AUCs, and what each control recomputes."""
import pytest
import torch

from helpers import ablation_cam, deletion, eigen_cam, hires_cam, insertion, occlusion, saliency, score_cam, seeded
from helpers.judging.curves import random_maps
from helpers.judging.compare import LAYER_METHODS, METHODS, method_maps, score_cam_channels
from helpers.widgets import ComparisonExplorer
from helpers.widgets import compare
from helpers.widgets.compare import PERTURBATION_METHODS, REFERENCES, STAGES


def test_every_method_with_its_scores_and_what_each_control_recomputes(lite0):
    model, preprocess = lite0
    explorer = ComparisonExplorer(model, preprocess, steps=2, samples=2, perturbation=True,
                                  score_cam_channels_at_most=8, occlusion_window=112, occlusion_stride=112)
    first, target = bytes(explorer.picture.value), explorer.classes.value
    assert first.startswith(b"\x89PNG") and target == 285
    maps, scores = explorer.result["maps"], explorer.result["scores"]
    assert list(maps)[:len(METHODS)] == list(METHODS) and "random (pixels)" in maps
    # every method has a panel of its own: its map over the photo, labelled with its name and its two AUCs
    for name in (*METHODS, "random (pixels)"):
        picture, label = explorer.panels[name]
        assert bytes(picture.value).startswith(b"\xff\xd8"), name                      # a JPEG
        assert name in label.value and f"{scores[name].deletion.auc.item():.3f}" in label.value, name
        assert f"{scores[name].insertion.auc.item():.3f}" in label.value, name
    curves = {line.get_label(): line for line in explorer.draw(explorer.result).axes[0].get_lines()}
    assert len({tuple(curves[name].get_color()) for name in METHODS}) == len(METHODS)  # one colour per method
    assert "Score-CAM on the 8 most active of 1280 channels" in explorer.status.value
    assert torch.allclose(maps["Score-CAM"], score_cam(model, explorer.x, target, "head.act", channels=8)[0])
    assert torch.allclose(maps["Occlusion"], occlusion(model, explorer.x, target, window=112, stride=112)[0])
    expected = saliency(model, explorer.x, target)
    assert torch.allclose(maps["saliency"], expected[0])
    assert torch.allclose(scores["saliency"].deletion.auc, deletion(model, explorer.x, expected, target, steps=2).auc)
    assert torch.allclose(scores["saliency"].insertion.auc, insertion(model, explorer.x, expected, target, steps=2).auc)
    assert torch.equal(maps["random (pixels)"], random_maps(explorer.x, seeded(0))[0])
    assert f"{scores['random (pixels)'].deletion.auc.item():.3f}" in explorer.status.value

    forwards = []
    handle = model.register_forward_pre_hook(lambda module, inputs: forwards.append(len(inputs[0])))
    try:
        explorer.baseline.value = "mean colour both ways"       # curves only: 10 maps × 2 curves × 3 stages
        assert sum(forwards) == len(explorer.result["maps"]) * 2 * 3
        mean = deletion(model, explorer.x, expected, target, steps=2, baseline="mean").auc
        assert torch.allclose(explorer.result["scores"]["saliency"].deletion.auc, mean)
        assert bytes(explorer.picture.value) != first
        forwards.clear()
        before = explorer.result["maps"]
        explorer.layer.value = "blocks.15.expand.act"             # the layer methods only, from one forward pass
        after = explorer.result["maps"]
        assert after["Grad-CAM"].shape == (7, 7) and not torch.allclose(after["Grad-CAM"], before["Grad-CAM"])
        assert torch.equal(after["saliency"], before["saliency"]) and torch.equal(after["CAM"], before["CAM"])
        layer_maps = method_maps(model, explorer.x, target, "blocks.15.expand.act",
                                 methods=["Grad-CAM", "Grad-CAM++"])
        assert torch.allclose(after["Grad-CAM++"], layer_maps["Grad-CAM++"][0], atol=1e-6)
    finally:
        handle.remove()
    assert "compare-baseline" in explorer.baseline._dom_classes and "compare-picture" in explorer.picture._dom_classes
    assert all("compare-panel" in picture._dom_classes for picture, _ in explorer.panels.values())


def test_method_maps_shapes_and_identities_at_the_head(lite0, photos):
    model, preprocess = lite0
    maps = method_maps(model, photos, [285, 967], samples=2, steps=2, value_range=preprocess.value_range,
                       score_cam_channels_at_most=16, occlusion_window=112, occlusion_stride=56)
    assert list(maps) == list(METHODS)
    for name, m in maps.items():
        pixels = name in ("saliency", "SmoothGrad", "Integrated Gradients", "Guided Grad-CAM", "Occlusion")
        assert m.shape == ((2, 224, 224) if pixels else (2, 7, 7)), name
        assert (name in LAYER_METHODS) == (name == "Guided Grad-CAM" or (not pixels and name != "CAM")), name
    # notebook 09's methods, each as its own helper computes it with the comparison's settings
    assert torch.allclose(maps["HiResCAM"], hires_cam(model, photos, [285, 967], "head.act"))
    assert torch.allclose(maps["Eigen-CAM"], eigen_cam(model, photos, "head.act"))
    assert torch.allclose(maps["Score-CAM"], score_cam(model, photos, [285, 967], "head.act", channels=16))
    ablation = ablation_cam(model, photos, [285, 967], "head.act", batch_size=256, progress=False)
    assert torch.allclose(maps["Ablation-CAM"], ablation, atol=1e-4 * ablation.max())
    assert torch.allclose(maps["Occlusion"], occlusion(model, photos, [285, 967], window=112, stride=56))
    # at the layer a GAP + linear head reads, dS/dA = w_c / Z whatever the input: noise changes nothing
    assert torch.allclose(maps["Smooth Grad-CAM++"], maps["Grad-CAM++"], atol=1e-4 * maps["Grad-CAM++"].max())
    assert torch.allclose(maps["Grad-CAM"], maps["CAM"].relu() / 49, atol=1e-5)
    assert torch.allclose(maps["HiResCAM"], maps["Grad-CAM"], atol=1e-5 * maps["Grad-CAM"].max())


def test_new_methods_are_in_the_comparison_and_score_cam_channels_follow_the_stated_rule():
    for name in ("HiResCAM", "XGrad-CAM", "LayerCAM", "Eigen-CAM", "Score-CAM", "Ablation-CAM", "Occlusion"):
        assert name in METHODS
    assert len(METHODS) == 15 and len(set(METHODS)) == 15
    assert score_cam_channels(1280, 64) == 64                                   # each photo's 64 most active
    assert score_cam_channels(40, 64) == 40                                     # fewer channels: all of them


def test_a_layer_pass_of_another_photo_or_layer_is_refused(lite0, photos):
    from helpers.methods.cam import LayerPass

    model, _ = lite0
    cat, coffee = photos[:1], photos[1:]
    run = LayerPass(model, cat, "head.act")
    assert torch.equal(method_maps(model, cat, 285, methods=["Grad-CAM"], layer_pass=run)["Grad-CAM"],
                       method_maps(model, cat, 285, methods=["Grad-CAM"])["Grad-CAM"])
    for x, layer, message in [(coffee, "head.act", "other images"), (cat, "blocks.15", "recorded at 'head.act'")]:
        with pytest.raises(ValueError, match=message):
            method_maps(model, x, 285, layer, methods=["Grad-CAM"], layer_pass=run)


@pytest.fixture
def recorded(monkeypatch):
    """What the explorer computes and shows, in order: ("maps", methods), ("score", method), ("shown", method),
    and the photo each method_maps call was given."""
    events, photos = [], []
    method_maps, score_maps, show = compare.method_maps, compare.score_maps, compare.ComparisonExplorer._show_map

    def maps_spy(model, x, *args, methods, **options):
        events.append(("maps", tuple(methods)))
        photos.append(x)
        return method_maps(model, x, *args, methods=methods, **options)

    def score_spy(model, x, maps, *args, **options):
        events.extend(("score", name) for name in maps)
        return score_maps(model, x, maps, *args, **options)

    monkeypatch.setattr(compare, "method_maps", maps_spy)
    monkeypatch.setattr(compare, "score_maps", score_spy)
    monkeypatch.setattr(compare.ComparisonExplorer, "_show_map",
                        lambda self, name, heat: (events.append(("shown", name)), show(self, name, heat))[1])
    return events, photos


def kinds(events, kind):
    return [event[1] for event in events if event[0] == kind]


CHEAP = [name for name in METHODS if name not in PERTURBATION_METHODS]


def test_cheap_maps_show_first_and_the_perturbation_methods_wait_for_the_box(lite0, recorded):
    model, preprocess = lite0
    events, _ = recorded
    explorer = ComparisonExplorer(model, preprocess, steps=1, samples=2, score_cam_channels_at_most=4,
                                  occlusion_window=112, occlusion_stride=112)
    assert kinds(events, "maps") == [STAGES[0], STAGES[1]]                  # one-pass maps, then the others
    first_score = events.index(("score", STAGES[0][0]))
    assert all(events.index(("shown", name)) < first_score for name in STAGES[0])   # shown before any curve
    assert events.index(("shown", STAGES[0][-1])) < events.index(("maps", STAGES[1]))
    assert sorted(kinds(events, "score")) == sorted([*CHEAP, *REFERENCES])  # each map's curves once
    for name in PERTURBATION_METHODS:
        assert name not in explorer.result["maps"] and "not computed" in explorer.panels[name][1].value
    assert "perturbation methods off" in explorer.status.value

    events.clear()
    explorer.perturbation.value = True                                      # on request: those three only
    assert kinds(events, "maps") == [PERTURBATION_METHODS]
    assert sorted(kinds(events, "score")) == sorted(PERTURBATION_METHODS)
    assert list(explorer.result["maps"])[:len(METHODS)] == list(METHODS)
    events.clear()
    explorer.perturbation.value = False
    explorer.perturbation.value = True
    assert kinds(events, "maps") == kinds(events, "score") == []          # cached
    explorer.perturbation.value = False

    events.clear()
    explorer.layer.value = "blocks.15.expand.act"                           # the layer methods only
    layer_methods = [name for name in LAYER_METHODS if name in CHEAP]
    assert sorted(name for stage in kinds(events, "maps") for name in stage) == sorted(layer_methods)
    assert sorted(kinds(events, "score")) == sorted([*layer_methods, "random (layer grid)"])
    events.clear()
    explorer.baseline.value = "blur both ways"                              # curves only, each once
    assert kinds(events, "maps") == [] and sorted(kinds(events, "score")) == sorted([*CHEAP, *REFERENCES])
    events.clear()
    explorer.baseline.value = "RISE: delete to grey, insert into blur"      # seen before: nothing to compute
    explorer.layer.value = "head.act"
    assert kinds(events, "maps") == kinds(events, "score") == []
    events.clear()
    explorer.classes.value = 282                                            # a new class: every map once
    assert sorted(name for stage in kinds(events, "maps") for name in stage) == sorted(CHEAP)
    assert sorted(kinds(events, "score")) == sorted([*CHEAP, *REFERENCES])


def test_an_upload_is_the_only_photo_computed_and_a_replaced_one_is_released(lite0, recorded):
    import gc
    import io
    import weakref
    from datetime import datetime, timezone

    from PIL import Image

    def upload(colour, name):
        buffer = io.BytesIO()
        Image.new("RGB", (300, 200), colour).save(buffer, format="PNG")
        explorer.picker.upload.value = ({"name": name, "content": memoryview(buffer.getvalue()), "type": "image/png",
                                         "size": buffer.tell(), "last_modified": datetime.now(timezone.utc)},)

    model, preprocess = lite0
    events, photos = recorded
    explorer = ComparisonExplorer(model, preprocess, steps=1, samples=2)
    explorer.picker.dropdown.value = "coffee"
    photos.clear()
    upload("green", "green.png")
    assert len(photos) == len(STAGES) - 1 and all(x is explorer.x for x in photos)   # not the cat on the way
    photos.clear()
    first_photo, first_image = weakref.ref(explorer.x), weakref.ref(explorer.picker.image)
    upload("blue", "blue.png")
    gc.collect()
    assert first_photo() is None and first_image() is None
