"""Progress bars in a notebook: the saved output shows where the bar finished, not the 0 % it started from."""
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

CELLS = {
    "a loop over chunks": "from helpers.core.noise import row_chunks\n"
                          "rows = [len(r) for r in row_chunks(40, 8, 'cpu', progress=True, description='rows')]",
    "a bar updated by hand": "from helpers.core.noise import progress_bar\n"
                             "with progress_bar(total=6, desc='steps', leave=False) as bar:\n"
                             "    for _ in range(6):\n"
                             "        bar.update()",
    "a loop that stops early": "try:\n"
                               "    for r in row_chunks(40, 8, 'cpu', progress=True, description='broken'):\n"
                               "        assert r[0] < 16\n"
                               "except AssertionError:\n"
                               "    pass",
}


@pytest.fixture(scope="module")
def executed():
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS.values()]
    NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(ROOT)}}).execute()
    return dict(zip(CELLS, notebook.cells))


def _texts(cell):
    assert all(output.output_type != "error" for output in cell.outputs), cell.outputs
    return [output.get("data", {}).get("text/plain", "") for output in cell.outputs]


@pytest.mark.parametrize("case", ["a loop over chunks", "a bar updated by hand"])
def test_a_finished_bar_is_saved_finished(executed, case):
    texts = _texts(executed[case])
    assert texts and all("100%" in text for text in texts), texts


def test_a_stopped_bar_is_saved_where_it_stopped(executed):
    (text,) = _texts(executed["a loop that stops early"])
    assert "2/5" in text, text   # two chunks done when the third raised
