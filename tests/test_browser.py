"""Every notebook's explorer, as a learner meets it: JupyterLab in headless Chromium (Playwright).

nbval runs no JavaScript, so a notebook can pass it while its widgets show "Error displaying widget".
Here one JupyterLab session opens, one after another, a copy of each notebook holding only the cells
its ``explorer``-tagged cells need (see ``browser/slicing.py``), runs it from the Run menu, checks the
explorer's controls and picture rendered, steps a control with the arrow keys and waits for the
picture to change. Screenshots go to ``test-artifacts/browser/``.

Chromium comes from Debian (``make setup-browser``); Playwright's own browser download is not used.
Without Chromium or Playwright the browser tests skip, except under CI, where they fail.
"""
import re
import time
from pathlib import Path

import nbformat
import pytest

from browser.slicing import EXPLORER, KERNELSPEC, SETUP, explorer_copy, explorer_notebooks, needed_cells, tags

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "browser"
# The control to step where the default (first slider, else a layer drop-down, else the first drop-down)
# is not the one to try: notebook stem → CSS selector.
# The control to step where the default (the first slider) would change nothing the picture shows: notebook
# 09's first slider is the channel count of Score-CAM and Ablation-CAM, and its explorer starts on LayerCAM.
CONTROLS: dict[str, str] = {"09_cam_variants": ".camvariants-layer select"}

SELFTEST_CELLS = [
    "import io\nimport ipywidgets as w\nfrom PIL import Image",
    "def png(level):\n    buffer = io.BytesIO()\n    Image.new('RGB', (48, 24), (25 * level, 90, 160)).save(buffer, 'png')\n"
    "    return buffer.getvalue()",
    "slider = w.IntSlider(value=3, min=0, max=10, description='level')\n"
    "picture = w.Image(value=png(slider.value), format='png')\n"
    "slider.observe(lambda change: setattr(picture, 'value', png(change['new'])), names='value')\n"
    "w.VBox([slider, picture])",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab + Chromium session for every browser test in this module."""
    from browser.lab import lab_session, require_chromium

    chromium = require_chromium("the browser test")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.txt").unlink(missing_ok=True)
    folder = tmp_path_factory.mktemp("browser")
    root = folder / "notebooks"
    root.mkdir()
    try:
        with lab_session(folder, root, chromium) as session:
            yield session
    finally:
        if (folder / "jupyter-server.log").exists():
            (ARTIFACTS / "jupyter-server.log").write_bytes((folder / "jupyter-server.log").read_bytes())


@pytest.fixture
def opened(lab):
    """``open(notebook)`` → its page; afterwards a screenshot of the whole page, then it is closed."""
    pages = []

    def open_(notebook):
        pages.append(lab.open(notebook, ARTIFACTS))
        return pages[-1]

    yield open_
    try:
        for page in pages:
            page.close()
    finally:
        lab.shutdown_kernels()


def selftest_notebook(lab) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in SELFTEST_CELLS])
    nb.cells[-1].metadata["tags"] = [EXPLORER]
    nb.metadata["kernelspec"] = KERNELSPEC
    path = lab.root / "widget_selftest.ipynb"
    nbformat.write(nb, path)
    return path


def test_selftest_slider_moves_picture(lab, opened):
    """The harness on a minimal widget notebook: a slider stepped by keyboard redraws a picture."""
    page = opened(selftest_notebook(lab))
    page.run_all()
    moved = page.check_explorer(len(SELFTEST_CELLS) - 1)
    assert re.search(r"widget-slider.*: 3 → 4 \(ArrowRight\)", moved), moved


def test_fails_without_widget_manager(lab, opened):
    """The same notebook with the widget manager disabled must fail the check, and say why."""
    from browser.lab import WIDGET_MANAGER

    lab.disable_extensions(WIDGET_MANAGER)
    try:
        page = opened(selftest_notebook(lab))
    finally:
        lab.disable_extensions()
    page.run_all()
    with pytest.raises(AssertionError, match="no widget rendered.*VBox.*widget manager"):
        page.check_explorer(len(SELFTEST_CELLS) - 1)


@pytest.mark.parametrize("notebook", explorer_notebooks(NOTEBOOKS), ids=lambda path: path.stem)
def test_explorer_in_jupyterlab(notebook, lab, opened):
    start = time.monotonic()
    copy = explorer_copy(notebook, lab.root)
    page = opened(copy.path)
    opened_at = time.monotonic()
    page.run_all()
    ran_at = time.monotonic()
    moved = [page.check_explorer(position, CONTROLS.get(notebook.stem)) for position in copy.explorers]
    end = time.monotonic()
    with open(ARTIFACTS / "timings.txt", "a") as log:
        log.write(f"{notebook.stem}: cells {copy.kept}; open {opened_at - start:.1f} s, run "
                  f"{ran_at - opened_at:.1f} s, explorers {end - ran_at:.1f} s, total {end - start:.1f} s; "
                  f"moved {moved}\n")


def test_every_course_notebook_tags_its_explorer():
    """Each chapter has an explorer (DESIGN.md); untagged, the browser test would silently skip it."""
    chapters = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    missing = [path.name for path in chapters if path not in explorer_notebooks(NOTEBOOKS)]
    assert not missing, f"no code cell tagged {EXPLORER!r} in {missing}"


def test_slice_keeps_what_the_explorer_reads():
    cells = [nbformat.v4.new_code_cell(source) for source in [
        "%matplotlib inline\nimport torch\nfrom helpers import load_model",     # 0 import
        "model, preprocess = load_model('efficientnet_lite0')",                 # 1 needed
        "x = torch.zeros(1)\nassert x.sum() == 0",                              # 2 verification
        "model = model.eval()\nlayer = 'head.act'",                             # 3 rebinds model
        "try:\n    out = model(x)\n    big = out.sum()\nexcept Exception as e:\n    pass",  # 4 reads x
        "for layer in ['a']:\n    print(layer)",                                # 5 binds layer first
        "from helpers.widgets import PredictionExplorer\nPredictionExplorer(model, preprocess)",
        "explorer_width = 3",                                                   # 7 after the explorer
    ]]
    cells[6].metadata["tags"] = [EXPLORER]
    assert needed_cells(cells) == [0, 1, 3, 6]
    cells[4].metadata["tags"] = [SETUP]
    assert needed_cells(cells) == [0, 1, 2, 3, 4, 6]
    assert needed_cells(cells[:6]) == [0, 1, 2, 3, 4]  # setup only, no explorer


def test_copy_holds_only_the_needed_cells(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("import math\nslow = sum(range(10))"),
        nbformat.v4.new_code_cell("r = math.pi", outputs=[nbformat.v4.new_output("stream", text="x")],
                                  execution_count=4),
        nbformat.v4.new_code_cell("r", metadata={"tags": [EXPLORER]}),
    ])
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, tmp_path / "source.ipynb")
    (tmp_path / "copy").mkdir()
    copy = explorer_copy(tmp_path / "source.ipynb", tmp_path / "copy")
    written = nbformat.read(copy.path, 4)
    assert copy.kept == [1, 2, 3] and copy.explorers == [2]
    assert [tags(cell) for cell in written.cells] == [set(), set(), {EXPLORER}]
    assert all(not cell.outputs and cell.execution_count is None for cell in written.cells)
    assert [cell.source for cell in written.cells] == [cell.source for cell in nb.cells[1:]]
    assert "widgets" not in written.metadata and written.metadata.kernelspec.name == "python3"
