"""The repository keeps its promises: consistent dependency lists, clean notebooks, documented commands."""
import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}


def requirement(spec):
    name, version = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec).groups()
    return name.lower().replace("_", "-"), version.replace(" ", "")


def test_environment_yml_lists_what_pyproject_lists():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(requirement(s) for s in project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for entry in env["dependencies"]:
        specs = entry["pip"] if isinstance(entry, dict) else [entry]
        for spec in specs:
            if not spec.startswith("-e"):
                name, version = requirement(spec)
                listed[name] = version
    for name, version in wanted.items():
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in listed, f"{name} is in pyproject.toml but not in environment.yml"
        assert listed[conda_name] == version, f"{name}: pyproject says {version!r}, environment.yml {listed[conda_name]!r}"
    assert not any("==" in version for version in wanted.values()), "use ranges, not exact pins"


def test_notebooks_are_committed_clean():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, f"{path.name} has stored outputs"
        assert "widgets" not in notebook["metadata"], f"{path.name} has stored widget state"


def test_readme_documents_every_notebook_and_both_commands():
    readme = (ROOT / "README.md").read_text()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        assert path.name in readme, f"README does not list {path.name}"
    assert "make lab" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
