"""python -m helpers.explain: a folder of photos in, the table out, with the course model or a state dict;
clear refusals for a missing folder and another run's results."""
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers import DATA_DIR
from helpers.explain import cli
from helpers.explain.engine import model_fingerprint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Three bundled photos in ImageFolder's layout: cats/cat.png, drinks/coffee.png, drinks/rocket.jpg."""
    root = tmp_path_factory.mktemp("photos")
    for folder, name in [("cats", "cat.png"), ("drinks", "coffee.png"), ("drinks", "rocket.jpg")]:
        (root / folder).mkdir(exist_ok=True)
        shutil.copy(DATA_DIR / name, root / folder / name)
    return root


def test_help_reads_like_a_command_line_tool():
    shown = subprocess.run([sys.executable, "-m", "helpers.explain", "--help"], capture_output=True, text=True,
                           cwd=ROOT, check=True).stdout
    for words in ("usage: python -m helpers.explain", "ImageFolder", "--model", "--methods", "--metrics", "--out",
                  "--batch-size", "--device", "--overwrite", "--max-images", "torchrun --nproc_per_node=4",
                  "resumes"):
        assert words in shown, words


def test_a_folder_of_photos_explained_with_a_state_dict(photo_folder, lite0, tmp_path, capsys):
    model, _ = lite0
    weights = tmp_path / "lite0.pth"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "run"
    code = cli.main([str(photo_folder), "--model", str(weights), "--methods", "CAM", "random", "--metrics",
                     "deletion", "--out", str(out), "--batch-size", "2", "--no-progress"])
    assert code == 0
    table = pd.read_parquet(out / "metrics.parquet")
    assert table["index"].tolist() == [0, 0, 1, 1, 2, 2] and table["label"].tolist() == [0, 0, 1, 1, 1, 1]
    assert table["predicted"].tolist()[::2] == [285, 967, 657]  # Egyptian cat, espresso, missile
    assert (table["target"] == table["predicted"]).all()
    printed = capsys.readouterr().out
    assert "3 images, 2 methods" in printed and "deletion" in printed
    assert (out / "run.json").read_text().count(model_fingerprint(model)["sha256"]) == 1

    assert cli.main([str(photo_folder), "--model", str(weights), "--methods", "CAM", "--out", str(out)]) == 1
    refusal = capsys.readouterr().err
    assert "holds the results of another run" in refusal and "(--overwrite)" in refusal


def test_a_state_dict_whose_head_is_not_1000_classes_needs_and_takes_num_classes(photo_folder, tmp_path, capsys):
    from helpers.core.models import EfficientNetLite0

    torch.manual_seed(0)
    model = EfficientNetLite0(num_classes=3).eval()
    weights = tmp_path / "three.pth"
    torch.save(model.state_dict(), weights)
    arguments = [str(photo_folder), "--model", str(weights), "--methods", "CAM", "--metrics", "--max-images", "2",
                 "--no-progress", "--out", str(tmp_path / "run")]
    assert cli.main(arguments) == 1
    assert "add --num-classes 3" in capsys.readouterr().err
    assert cli.main([*arguments, "--num-classes", "3"]) == 0
    table = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    _, preprocess = cli.load_model("efficientnet_lite0", weights=None)
    with torch.no_grad():
        probabilities = model(preprocess([photo_folder / "cats" / "cat.png", photo_folder / "drinks" / "coffee.png"],
                                         device="cpu")).softmax(1)
    assert table["predicted"].tolist() == probabilities.argmax(1).tolist()
    assert table["probability"].to_numpy() == pytest.approx(probabilities.max(1).values.double().numpy(), rel=1e-5)


def test_mistakes_are_reported_without_a_traceback(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nowhere")]) == 1
    assert "no folder at" in capsys.readouterr().err
    assert cli.main([str(tmp_path), "--model", "resnet5O"]) == 1
    assert "neither a model name" in capsys.readouterr().err
    assert cli.main([str(tmp_path), "--target", "cats"]) == 1
    assert "--target must be 'predicted', 'label' or a class index" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path), "--methods", "GradCAM"])
    assert "invalid choice: 'GradCAM'" in capsys.readouterr().err


def test_notebook_10s_generated_images_with_their_object_masks(tmp_path, capsys):
    """generated:N explains notebook 10's test images with ShapeNet and scores the maps against the object mask;
    where this copy of helpers lacks notebook 10's modules, the command says so in one line."""
    arguments = ["generated:6", "--model", "shapenet-clean", "--layer", "block5.act", "--methods", "Grad-CAM", "random",
                 "--metrics", "pointing", "energy", "--out", str(tmp_path), "--batch-size", "3", "--no-progress"]
    try:
        from helpers.ground_truth import evaluation_scenes
    except ModuleNotFoundError:
        assert cli.main(arguments) == 1
        assert "needs helpers." in capsys.readouterr().err
        return
    assert cli.main(arguments) == 0
    table = pd.read_parquet(tmp_path / "metrics.parquet")
    world, scenes = evaluation_scenes(6)
    assert table["label"].tolist()[::2] == scenes.labels.tolist()
    area = world.render(scenes)[1].object.flatten(1).double().mean(1).numpy()
    random = table[table.method == "random"]
    assert set(table["pointing"]) <= {0.0, 1.0}
    assert (abs(random["energy"].to_numpy() - area) < 0.1).all()   # uniform noise: about the object's area
