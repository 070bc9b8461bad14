"""Student copies: solutions blanked, teacher-only cells gone, and every check says "not implemented yet"."""
import json
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from helpers.classroom import blank_solutions, student_notebook, write_student_copies
from helpers.exercises import ExerciseError, check_capture

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Notebooks whose exercise checks come from helpers.exercises (plain-words diagnosis, "not implemented yet").
CHECKED = [path for path in NOTEBOOKS if "helpers.exercises" in path.read_text()]


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


def test_every_notebook_ends_with_exercises_that_have_solutions():
    for path in NOTEBOOKS:
        text = path.read_text()
        assert "## Exercises" in text, f"{path.name} has no Exercises section"
        assert "### BEGIN SOLUTION" in text, f"{path.name} has no coding exercise"


# --------------------------------------------------------------------------- #
# The checks catch the typical mistakes
# --------------------------------------------------------------------------- #
def capture_reference(model, layer, x):
    out = []
    handle = layer.register_forward_hook(lambda m, i, o: out.append(o))
    try:
        model(x)
    finally:
        handle.remove()
    return out[0]


def test_check_capture_accepts_a_correct_answer(capsys):
    check_capture(capture_reference)
    assert "✓ capture" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda model, layer, x: (_ for _ in ()).throw(NotImplementedError()), "not implemented yet"),
    (lambda model, layer, x: None, "return"),
    (lambda model, layer, x: torch.zeros(1), "wrong shape"),
])
def test_check_capture_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_capture(wrong)


def test_check_capture_catches_returning_the_input_and_leaked_hooks():
    def returns_input(model, layer, x):
        out = []
        handle = layer.register_forward_hook(lambda m, inputs, o: out.append(inputs[0]))
        model(x)
        handle.remove()
        return out[0]

    def leaks(model, layer, x):
        out = []
        layer.register_forward_hook(lambda m, i, o: out.append(o))
        model(x)
        return out[0]

    def leaks_on_error(model, layer, x):
        out = []
        handle = layer.register_forward_hook(lambda m, i, o: out.append(o))
        model(x)
        handle.remove()
        return out[0]

    with pytest.raises(ExerciseError, match="input"):
        check_capture(returns_input)
    with pytest.raises(ExerciseError, match="still registered"):
        check_capture(leaks)
    with pytest.raises(ExerciseError, match="finally"):
        check_capture(leaks_on_error)


# --------------------------------------------------------------------------- #
# The student copies run, and stop only at the checks
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    target = tmp_path_factory.mktemp("student")
    write_student_copies(ROOT / "notebooks", target)
    return target


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.stem)
def test_student_copy_reaches_every_check_with_the_not_implemented_message(path, student_dir):
    student = nbformat.read(student_dir / path.name, as_version=4)
    assert "### BEGIN SOLUTION" not in json.dumps(student)
    NotebookClient(student, timeout=900, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    checks, failures = 0, []
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        is_check = "check_" in cell.source and "helpers.exercises" in "".join(c.source for c in student.cells[:index + 1])
        if is_check and "check_" in cell.source.split("import")[-1]:
            checks += 1
            if not errors or "not implemented yet" not in errors[0].evalue:
                failures.append(f"cell {index}: the check did not report 'not implemented yet'")
        elif errors:
            failures.append(f"cell {index} crashed: {errors[0].ename}: {errors[0].evalue[:200]}")
    assert checks >= 1, f"{path.name}: no exercise check found"
    assert not failures, f"{path.name}:\n" + "\n".join(failures)
