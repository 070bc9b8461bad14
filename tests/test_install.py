"""A non-editable install (what a JupyterHub's user image gets from ``pip install .``) has the photos and runs.

The wheel is built offline from a copy of the project (no build isolation, no dependencies fetched) and
installed into a folder that the test puts first on ``sys.path``; torch and the rest come from this
environment. A fresh interpreter outside the repository then loads a bundled photo and runs one explainer.
"""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK = """
import helpers, torch
from helpers import load_image, load_model, saliency, DATA_DIR
assert helpers.__file__.startswith({target!r}), helpers.__file__
assert DATA_DIR.is_relative_to({target!r}), DATA_DIR
torch.manual_seed(0)
model, preprocess = load_model("efficientnet_lite0")
x = preprocess(load_image("cat"))
print(tuple(saliency(model, x, 285).shape))
"""


def test_a_wheel_install_has_the_photos_and_explains_one(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, project / name)
    for folder in ("helpers", "data"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                            "--no-build-isolation", "--target", str(target), str(project)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (target / "helpers" / "data" / "cat.png").is_file()
    assert (target / "helpers" / "data" / "ATTRIBUTION.md").is_file()
    run = subprocess.run([sys.executable, "-c", CHECK.format(target=str(target))], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin",
                                                       "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith("(1, 224, 224)"), run.stdout
