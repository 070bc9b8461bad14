"""helpers.explain: the table equals the course functions called by hand, resumes after a failure without
recomputing or losing anything, refuses another run's folder, and says what is wrong with bad input."""
import functools

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from conftest import TinyCNN
from helpers import deletion, grad_cam, insertion, saliency
from helpers.explain import BatchFailed, ForeignRunError, explain_dataset, load_maps, plan_batches
from helpers.explain.scoring import energy, pointing
from model_state import ModelState

LAYER = "features.3"


def tiny_data(count=10, size=12, seed=1):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 3, size, size, generator=generator)
    labels = torch.arange(count) % 5
    masks = torch.zeros(count, size, size, dtype=torch.bool)
    masks[:, size // 4:size // 2, size // 4:size // 2] = True
    return images, labels, masks


def tiny_model():
    torch.manual_seed(0)
    return TinyCNN().eval()


def course_grad_cam(model, x, target):
    return grad_cam(model, x, target, LAYER)


METHODS = {"Grad-CAM": course_grad_cam, "saliency": saliency}


def run(out, data=None, **options):
    options = {"metrics": ["deletion", "insertion"], "batch_size": 4, "progress": False, **options}
    return explain_dataset(options.pop("model", None) or tiny_model(), data or TensorDataset(*tiny_data()[:2]),
                           options.pop("methods", METHODS), out=out, **options)


def test_the_table_holds_what_the_course_functions_give_batch_by_batch(tmp_path):
    images, labels, masks = tiny_data()
    model = tiny_model().train()
    state = ModelState(model)
    table = explain_dataset(model, TensorDataset(images, labels, masks), METHODS,
                            ["deletion", "insertion", "pointing", "energy"], out=tmp_path, batch_size=4,
                            progress=False)
    state.assert_unchanged(model)
    model.eval()
    assert list(table.columns) == ["index", "method", "label", "target", "predicted", "probability", "deletion",
                                   "insertion", "pointing", "energy"]
    assert table["index"].tolist() == [i for i in range(10) for _ in METHODS]
    assert table["method"].tolist() == list(METHODS) * 10
    pd.testing.assert_frame_equal(table, pd.read_parquet(tmp_path / "metrics.parquet"))
    for start in range(0, 10, 4):  # by hand, on the same batches
        x, rows = images[start:start + 4], slice(2 * start, 2 * start + 2 * len(images[start:start + 4]))
        with torch.no_grad():
            logits = model(x)
        predicted = logits.argmax(-1)
        batch = table.iloc[rows]
        assert (batch["target"].to_numpy() == np.repeat(predicted.numpy(), 2)).all()
        assert (batch["label"].to_numpy() == np.repeat(labels[start:start + 4].numpy(), 2)).all()
        np.testing.assert_allclose(batch["probability"].to_numpy()[::2],
                                   logits.double().softmax(-1).gather(1, predicted[:, None])[:, 0].numpy())
        for offset, method in enumerate(METHODS.values()):
            maps = method(model, x, predicted)
            mine = batch.iloc[offset::2]
            for name, expected in [("deletion", deletion(model, x, maps, predicted, steps=16).auc),
                                   ("insertion", insertion(model, x, maps, predicted, steps=16).auc),
                                   ("pointing", pointing(model, x, maps, predicted, masks[start:start + 4])),
                                   ("energy", energy(model, x, maps, predicted, masks[start:start + 4]))]:
                np.testing.assert_array_equal(mine[name].to_numpy(), expected.numpy(), err_msg=name)


def test_pointing_and_energy_read_the_mask():
    maps = torch.zeros(2, 4, 4)
    maps[0, 1, 1], maps[1, 3, 3] = 2.0, 1.0
    maps[1, 1, 1] = 3.0 - 4.0  # a negative pixel carries no energy
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True
    assert pointing(None, None, maps, None, masks).tolist() == [1.0, 0.0]
    assert energy(None, None, maps, None, masks).tolist() == [1.0, 0.0]
    assert energy(None, None, maps[:, :2, :2] * 0 - 1, None, masks[:, ::2, ::2]).isnan().all()
    several = torch.stack([masks, ~masks], 1)              # (B, K, H, W): several masks per image, the first read
    assert pointing(None, None, maps, None, several).tolist() == [1.0, 0.0]
    assert energy(None, None, maps, None, several).tolist() == [1.0, 0.0]


def test_a_flat_map_points_at_a_random_pixel_not_the_top_left_corner():
    masks = torch.zeros(400, 8, 8, dtype=torch.bool)
    masks[:, :4, :4] = True                                   # the top-left quarter, where reading order starts
    hits = pointing(None, None, torch.zeros(400, 8, 8), None, masks)
    assert 0.15 < hits.mean() < 0.35                          # about the mask's area, 1/4, not 1.0
    assert torch.equal(hits, pointing(None, None, torch.zeros(400, 8, 8), None, masks))   # seeded


def flat_map(model, x, target):
    return torch.zeros(len(x), *x.shape[-2:])


def test_random_maps_and_tie_breaks_belong_to_the_image_not_to_its_place_in_a_batch(tmp_path):
    """Image i's noise comes from (seed, i): a batch's noise is not the previous batch's again, and cutting the
    data set into other batches (as a resumed run or another number of processes may) changes nothing."""
    images, labels, masks = tiny_data(count=24)
    tables, maps = {}, {}
    for size in (4, 5):
        tables[size] = run(tmp_path / str(size), TensorDataset(images, labels, masks), batch_size=size,
                           methods={"random": "random", "flat": flat_map}, metrics=["pointing"], save_maps="float32")
        maps[size] = np.array(load_maps(tmp_path / str(size), "random")[1])
    assert not np.array_equal(maps[4][0], maps[4][4])            # same place in two batches, other noise
    assert len({m.tobytes() for m in maps[4]}) == 24
    np.testing.assert_array_equal(maps[4], maps[5])
    pd.testing.assert_frame_equal(tables[4], tables[5])          # the flat map's tie-breaks too
    assert 0 < tables[4].query("method == 'flat'")["pointing"].mean() < 1


def test_maps_are_kept_small_in_float16_and_read_lazily(tmp_path):
    images, labels, _ = tiny_data(size=16)
    model = tiny_model()
    run(tmp_path, TensorDataset(images, labels), metrics=[], save_maps=True, map_size=8, model=model)
    indices, maps = load_maps(tmp_path, "saliency")
    assert isinstance(maps, np.memmap) and maps.dtype == np.float16 and maps.shape == (10, 8, 8)
    assert indices.tolist() == list(range(10))
    expected = torch.nn.functional.avg_pool2d(saliency(model, images[4:8], model(images[4:8]).argmax(-1))[:, None], 2)
    np.testing.assert_allclose(maps[4:8], expected[:, 0].half().numpy(), rtol=1e-3)
    assert load_maps(tmp_path, "Grad-CAM")[1].shape == (10, 8, 8)  # the layer's 16 × 16, averaged down too
    with pytest.raises(FileNotFoundError, match="it holds Grad-CAM, saliency"):
        load_maps(tmp_path, "Score-CAM")


def test_plan_cuts_the_same_batches_whatever_is_finished_or_however_many_processes():
    assert plan_batches(10, 4, np.array([], dtype=np.int64)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert plan_batches(10, 4, np.array([4, 5, 6, 7])) == [[0, 1, 2, 3], [8, 9]]
    assert plan_batches(10, 4, np.array([]), rank=1, world=2) == [[4, 5, 6, 7]]
    assert plan_batches(10, 4, np.array([0, 1, 2, 3]), rank=0, world=2) == [[4, 5, 6, 7]]
    assert plan_batches(10, 3, np.array([3, 4, 5])) == [[0, 1, 2], [6, 7, 8], [9]]
    assert plan_batches(8, 4, np.arange(8)) == []


class FailsOnce:
    """A method that raises on its ``fail_on``-th call (counting from 0) and works otherwise."""

    def __init__(self, fail_on):
        self.calls, self.fail_on = 0, fail_on

    def __call__(self, model, x, target):
        self.calls += 1
        if self.calls - 1 == self.fail_on:
            raise RuntimeError("out of memory (pretend)")
        return saliency(model, x, target)


def test_a_method_that_raises_stops_the_run_naming_the_batch_and_the_rerun_resumes(tmp_path):
    reference = run(tmp_path / "whole", methods={"Grad-CAM": course_grad_cam, "saliency": saliency})
    failing = FailsOnce(fail_on=1)
    with pytest.raises(BatchFailed, match=r"method 'saliency' failed on batch 1 \(images 4–7\).*out of memory"):
        run(tmp_path / "broken", methods={"Grad-CAM": course_grad_cam, "saliency": failing})
    parts = sorted(p.name for p in (tmp_path / "broken" / "parts").glob("*.parquet"))
    assert parts == ["00000000.parquet"]  # batch 0 is kept, nothing of batch 1 was written
    calls = []
    counting = lambda model, x, target: calls.append(len(x)) or saliency(model, x, target)  # noqa: E731
    resumed = run(tmp_path / "broken", methods={"Grad-CAM": course_grad_cam, "saliency": counting})
    assert calls == [4, 2]  # batches 1 and 2 only: batch 0 is not computed again
    assert (tmp_path / "broken" / "metrics.parquet").read_bytes() == (tmp_path / "whole" / "metrics.parquet").read_bytes()
    pd.testing.assert_frame_equal(resumed, reference)


def test_a_batch_killed_between_its_maps_and_its_table_is_done_again(tmp_path):
    """The table part is written last: a batch whose maps are on disk but whose table is not (a run killed
    in between) counts as unfinished, and the rerun overwrites its maps; stray temporary files do no harm."""
    reference = run(tmp_path / "whole", save_maps=True)
    out = tmp_path / "killed"
    run(out, save_maps=True)
    (out / "parts" / "00000004.parquet").unlink()
    np.save(out / "parts" / "00000004" / "saliency.npy", np.full((4, 12, 12), 7, dtype=np.float16))
    (out / "parts" / ".00000004.12345.tmp.parquet").write_bytes(b"half a file")
    (out / "metrics.parquet").unlink()
    calls = []
    counting = lambda model, x, target: calls.append(len(x)) or saliency(model, x, target)  # noqa: E731
    pd.testing.assert_frame_equal(run(out, save_maps=True, methods={"Grad-CAM": course_grad_cam, "saliency": counting}),
                                  reference)
    assert calls == [4]
    for name in ("metrics.parquet", "maps/saliency.npy", "maps/Grad-CAM.npy", "maps/index.npy"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_an_output_folder_of_another_run_is_refused_unless_overwrite(tmp_path):
    run(tmp_path)
    before = (tmp_path / "metrics.parquet").read_bytes()
    with pytest.raises(ForeignRunError, match="methods: \\['Grad-CAM', 'saliency'\\] there, \\['saliency'\\] now.*overwrite"):
        run(tmp_path, methods={"saliency": saliency})
    other = tiny_model()
    with torch.no_grad():
        other.fc.bias += 1
    with pytest.raises(ForeignRunError, match="model"):
        run(tmp_path, model=other)
    assert (tmp_path / "metrics.parquet").read_bytes() == before  # nothing lost by a refusal
    table = run(tmp_path, methods={"saliency": saliency}, overwrite=True)
    assert set(table["method"]) == {"saliency"} and not (tmp_path / "parts" / "00000000").exists()
    (tmp_path / "notes").mkdir()
    stranger = tmp_path / "notes"
    (stranger / "thesis.tex").write_text("keep me")
    with pytest.raises(ForeignRunError, match="not an explain_dataset run"):
        run(stranger)
    assert (stranger / "thesis.tex").read_text() == "keep me"


class Pictures(Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        yield from tiny_data()[0]


def test_bad_input_gets_a_message_that_says_what_to_do(tmp_path):
    from PIL import Image

    with pytest.raises(TypeError, match="not tensors.*ImageTransform"):
        run(tmp_path / "pil", Pictures([(Image.new("RGB", (8, 8)), 0)] * 3))
    with pytest.raises(TypeError, match=r"batch 0 \(images 0–2\).*gave tuple of str, not a tensor"):
        run(tmp_path / "words", Pictures([("a photo", 0)] * 3), batch_size=None)
    mixed = Pictures([(torch.randn(3, 12, 12), 0), (torch.randn(3, 16, 16), 1)])
    with pytest.raises(ValueError, match="different sizes.*Resize"):
        run(tmp_path / "mixed", mixed)
    with pytest.raises(ValueError, match="earlier batches had"):
        run(tmp_path / "mixed2", mixed, batch_size=1)
    with pytest.raises(TypeError, match="map-style"):
        run(tmp_path / "stream", Stream())
    with pytest.raises(BatchFailed, match="'pointing' metric needs a mask"):
        run(tmp_path / "no-masks", metrics=["pointing"])
    with pytest.raises(ValueError, match="gives no labels"):
        run(tmp_path / "no-labels", TensorDataset(tiny_data()[0]), target="label")
    with pytest.raises(ValueError, match="unknown method 'GradCAM'"):
        run(tmp_path / "typo", methods=["GradCAM"])
    with pytest.raises(BatchFailed, match=r"returned \(4, 3, 12, 12\).*reduce_channels"):
        run(tmp_path / "channels", methods={"raw": lambda m, x, t: x})


def test_a_data_loader_keeps_its_batch_size_and_collate_function(tmp_path):
    images, labels, masks = tiny_data()
    dicts = Pictures([{"image": i, "label": int(l), "mask": m} for i, l, m in zip(images, labels, masks)])
    loader = DataLoader(dicts, batch_size=3, shuffle=True)
    seen = []
    table = explain_dataset(tiny_model(), loader, {"saliency": lambda m, x, t: seen.append(len(x)) or saliency(m, x, t)},
                            ["pointing"], out=tmp_path, progress=False, target="label")
    assert seen == [3, 3, 3, 1] and table["index"].tolist() == list(range(10))  # the engine's order, not shuffled
    assert (table["target"] == table["label"]).all()


def test_methods_and_metrics_by_name_and_with_options(tmp_path):
    images, labels, _ = tiny_data()
    model = tiny_model()
    longer = functools.partial(__import__("helpers.explain", fromlist=["x"]).curve_auc, kind="deletion", steps=8)
    table = explain_dataset(model, TensorDataset(images), ["Grad-CAM", "random"], {"deletion@8": longer},
                            out=tmp_path, layer=LAYER, batch_size=5, progress=False, max_images=5)
    assert table["index"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    predicted = model(images[:5]).argmax(-1)
    expected = deletion(model, images[:5], grad_cam(model, images[:5], predicted, LAYER), predicted, steps=8).auc
    np.testing.assert_array_equal(table[table.method == "Grad-CAM"]["deletion@8"], expected.numpy())


def test_the_engine_is_reachable_from_the_top_level_namespace_without_slowing_import_helpers():
    import helpers

    assert helpers.explain_dataset is explain_dataset and helpers.load_maps is load_maps
    with pytest.raises(AttributeError, match="no attribute 'explain_datasets'"):
        helpers.explain_datasets  # noqa: B018
