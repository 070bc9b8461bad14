"""Classroom mode: student copies, nbgrader metadata, and grading of handed-in notebooks."""
import io
from pathlib import Path

import nbformat
import pytest

from helpers.classroom import (CHECK_CALL, blank_solutions, check_results, crashed_cells, grade, run_notebook,
                               student_notebook, write_student_copies)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_solutions_are_blanked_keeping_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n\nprint(f)"
    assert blank_solutions(source) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(f)"
    with pytest.raises(ValueError, match="unbalanced"):
        blank_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_teacher_cells_outputs_and_widget_state_are_removed():
    teacher = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}}, cells=[
        nbformat.v4.new_code_cell("answer = 42", metadata={"tags": ["teacher-only"]}),
        nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="1")], execution_count=3),
        nbformat.v4.new_markdown_cell("### BEGIN SOLUTION is only code"),
    ])
    student = student_notebook(teacher)
    assert [c["source"] for c in student["cells"]] == ["x = 1", "### BEGIN SOLUTION is only code"]
    assert student["cells"][0]["outputs"] == [] and student["cells"][0]["execution_count"] is None
    assert "widgets" not in student["metadata"] and "widgets" in teacher["metadata"]


def test_every_notebook_ends_with_exercises_that_have_solutions_and_notes_for_the_teacher():
    for path in NOTEBOOKS:
        text = path.read_text()
        assert "## Exercises" in text, f"{path.name} has no Exercises section"
        assert "### BEGIN SOLUTION" in text, f"{path.name} has no coding exercise"
        last = nbformat.read(path, as_version=4).cells[-1]
        assert "teacher-only" in last.metadata.get("tags", []) and "For the teacher" in last.source, path.name


# --------------------------------------------------------------------------- #
# nbgrader can take the teacher's notebooks as they are
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_solutions_and_checks_carry_nbgrader_metadata(path):
    cells = nbformat.read(path, as_version=4).cells
    ids = [c.metadata["nbgrader"]["grade_id"] for c in cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"{path.name}: nbgrader grade_ids repeat: {ids}"
    for index, cell in enumerate(cells):
        if "### BEGIN SOLUTION" in cell.source:
            assert cell.metadata.get("nbgrader", {}).get("solution") is True, f"{path.name} cell {index}"
            check = cells[index + 1]
            assert CHECK_CALL.search(check.source), f"{path.name}: no check follows the solution in cell {index}"
            assert check.metadata["nbgrader"]["grade"] is True and check.metadata["nbgrader"]["points"] > 0


# --------------------------------------------------------------------------- #
# The student copies run, and stop only at the checks
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    target = tmp_path_factory.mktemp("student")
    write_student_copies(ROOT / "notebooks", target)
    return target


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_reaches_every_check_with_the_not_implemented_message(path, student_dir):
    copy = (student_dir / path.name).read_text()
    assert "### BEGIN SOLUTION" not in copy and "teacher-only" not in copy and "For the teacher" not in copy
    executed = run_notebook(student_dir / path.name)
    results = check_results(executed)
    assert results, f"{path.name}: no exercise check found"
    assert all(r.status == "not implemented" for r in results), \
        [f"cell {r.cell} {r.check}: {r.status} {r.message[:200]}" for r in results if r.status != "not implemented"]
    assert not crashed_cells(executed), f"{path.name}: cells other than the checks crashed: {crashed_cells(executed)}"


# --------------------------------------------------------------------------- #
# Grading what students hand back
# --------------------------------------------------------------------------- #
def test_grade_reports_passed_not_implemented_and_the_named_mistake(tmp_path):
    def handed_in(name, body):
        notebook = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell(f"def grad_cam_map(activations, gradients):\n    {body}"),
            nbformat.v4.new_code_cell("from helpers.exercises import check_grad_cam_map\n\n"
                                      "check_grad_cam_map(grad_cam_map)"),
            nbformat.v4.new_code_cell("print('after the check')"),
        ])
        nbformat.write(notebook, tmp_path / name)
        return tmp_path / name

    solved = handed_in("solved.ipynb", "return (gradients.mean(dim=(2, 3), keepdim=True) * activations).sum(1).relu()")
    open_ = handed_in("open.ipynb", "raise NotImplementedError()")
    no_relu = handed_in("no_relu.ipynb", "return (gradients.mean(dim=(2, 3), keepdim=True) * activations).sum(1)")
    report = io.StringIO()
    rows = grade([solved, open_, no_relu], tmp_path / "grades.csv", out=report)
    assert [r["status"] for r in rows] == ["passed", "not implemented", "failed"]
    assert "ReLU" in rows[2]["message"]
    assert "1 of 1 checks passed" in report.getvalue() and "0 of 1 checks passed" in report.getvalue()
    assert (tmp_path / "grades.csv").read_text().count("check_grad_cam_map") == 3
