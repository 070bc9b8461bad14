"""Classroom mode: the teacher's notebooks as an nbgrader source, and the student copies nbgrader makes of them."""
import copy
import re
from pathlib import Path

import nbformat
import pytest

from helpers.classroom import (CHECK_CALL, DropTeacherOnly, GradeOnlyExercises, generate, hand_in_problems,
                               mark_notebook, needed_cells)
from helpers.classroom.grading import _is_exercise, cell_names

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_every_notebook_ends_with_exercises_that_have_solutions_and_notes_for_the_teacher():
    for path in NOTEBOOKS:
        text = path.read_text()
        assert "## Exercises" in text, f"{path.name} has no Exercises section"
        assert "### BEGIN SOLUTION" in text, f"{path.name} has no coding exercise"
        last = nbformat.read(path, as_version=4).cells[-1]
        assert "teacher-only" in last.metadata.get("tags", []) and "For the teacher" in last.source, path.name


def test_teacher_only_cells_are_dropped_by_the_preprocessor():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("answers", metadata={"tags": ["teacher-only"]}),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["explorer"]}),
    ])
    kept, _ = DropTeacherOnly()(notebook, {})
    assert [c.source for c in kept.cells] == ["x = 1"]


# --------------------------------------------------------------------------- #
# A valid nbgrader source
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_carries_complete_nbgrader_metadata(path):
    notebook = nbformat.read(path, as_version=4)
    assert not mark_notebook(copy.deepcopy(notebook)), \
        f"{path.name} lacks nbgrader metadata: run `python -m helpers.classroom mark {path.relative_to(ROOT)}`"
    cells = notebook.cells
    ids = [c.metadata["nbgrader"]["grade_id"] for c in cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"{path.name}: nbgrader grade_ids repeat: {ids}"
    for index, cell in enumerate(cells):
        meta = cell.metadata.get("nbgrader", {})
        if "### BEGIN SOLUTION" in cell.source:
            assert meta.get("solution") is True, f"{path.name} cell {index}"
            check = cells[index + 1]
            assert CHECK_CALL.search(check.source), f"{path.name}: no check follows the solution in cell {index}"
            check_meta = check.metadata["nbgrader"]
            assert check_meta["grade"] and check_meta["locked"] and check_meta["points"] > 0
        if re.search(r"\*\*\d+\.\s*\((predict|open)", cell.source):
            answers = [c for c in cells[index + 1:] if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("answer-")]
            assert answers and answers[0].cell_type == "markdown", f"{path.name}: no answer cell after cell {index}"
            meta = answers[0].metadata["nbgrader"]
            assert meta["solution"] and meta["grade"] and meta["points"] > 0 and not meta["locked"]
    # tests are graded by code, answers by hand, set-up and questions are read-only
    assert cells[next(i for i, c in enumerate(cells) if c.cell_type == "code")].metadata["nbgrader"]["locked"]


def test_mark_adds_answer_and_read_only_cells_once():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import torch"),
        nbformat.v4.new_markdown_cell("## Exercises\n\n**1. (warm-up)** write f"),
        nbformat.v4.new_markdown_cell("**2. (predict, then check)** what happens?"),
        nbformat.v4.new_code_cell("prediction = None"),
        nbformat.v4.new_markdown_cell("**3. (open)** explore"),
        nbformat.v4.new_markdown_cell("notes", metadata={"tags": ["teacher-only"]}),
    ])
    assert mark_notebook(notebook)
    grade_ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells]
    assert grade_ids == ["setup", "question-1", "question-2", None, "answer-2", "question-3", "answer-3", None]
    assert [c.metadata["nbgrader"]["points"] for c in notebook.cells if c.id.startswith("answer-")] == [1, 2]
    assert not mark_notebook(notebook)


def test_hand_in_checks_name_what_is_wrong(tmp_path):
    source = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f(): ...", metadata={"nbgrader": {"grade_id": "f", "solution": True}}),
        nbformat.v4.new_code_cell("check(f)", metadata={"nbgrader": {"grade_id": "t", "grade": True, "points": 1}}),
    ])
    nbformat.write(source, tmp_path / "source.ipynb")
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert "not a Jupyter notebook" in hand_in_problems(tmp_path / "broken.ipynb", tmp_path / "source.ipynb")[0][0]
    assert hand_in_problems(tmp_path / "missing.ipynb", tmp_path / "source.ipynb") == (
        ["source.ipynb was not handed in (0 points)"], False)
    swapped = copy.deepcopy(source)
    swapped.cells.reverse()
    nbformat.write(swapped, tmp_path / "swapped.ipynb")
    problems, gradable = hand_in_problems(tmp_path / "swapped.ipynb", tmp_path / "source.ipynb")
    assert gradable and problems == ["swapped.ipynb: test cells moved out of order: t; they ran where the learner put them"]
    nbformat.write(source, tmp_path / "fine.ipynb")
    assert hand_in_problems(tmp_path / "fine.ipynb", tmp_path / "source.ipynb") == ([], True)


# --------------------------------------------------------------------------- #
# The student copies nbgrader writes run, and stop only at the checks
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def released(tmp_path_factory):
    pytest.importorskip("nbgrader", reason="nbgrader is in the `classroom` and `test` extras")
    course = tmp_path_factory.mktemp("course")
    return {path.name: path for path in generate(course, NOTEBOOKS)}


def _execute(notebook):
    from nbclient import NotebookClient

    NotebookClient(notebook, timeout=900, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    return notebook


def _error(cell):
    return next((o for o in cell.get("outputs", []) if o["output_type"] == "error"), None)


def _skipped_cells_reading_undone_work(teacher, student) -> list[str]:
    """The code cells of a student copy that the autograder skips (:func:`needed_cells`) and that read a name
    whose last binding before them is in an exercise cell, or that only the teacher's copy binds: the cells
    that could fail in the student copy although they run in the teacher's. nbgrader changes only exercise
    cells and drops teacher-only ones, so every other cell differs from the teacher's (which nbval runs whole)
    only through such names (in place changes, ``a.b = …``, count as bindings of ``a``)."""
    only_teacher = set().union(*(names[0] for c in teacher.cells if c.cell_type == "code"
                                 and (names := cell_names(c.source)))) \
        - set().union(*(names[0] for c in student.cells if c.cell_type == "code" and (names := cell_names(c.source))))
    needed, last_binder, found = needed_cells(student.cells), {}, []
    for index, cell in enumerate(student.cells):
        names = cell_names(cell.source) if cell.cell_type == "code" else None
        if names is None:
            continue
        if index not in needed:
            undone = sorted(name for name in names[1] | names[2]
                            if name in only_teacher or _is_exercise(student.cells[last_binder.get(name, index)]))
            if undone:
                found.append(f"cell {index} reads {', '.join(undone)}")
        last_binder.update(dict.fromkeys(names[0], index))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_reaches_every_check_with_the_not_implemented_message(path, released):
    """The student copy runs as the autograder runs it (the set-up, the exercises and what they use): every
    check says "not implemented yet" and no other cell fails; the demonstrations it skips read nothing an
    undone exercise leaves unbound or broken, so they run as in the teacher's copy, which nbval runs."""
    copy_text = released[path.name].read_text()
    assert "### BEGIN SOLUTION" not in copy_text and "teacher-only" not in copy_text
    assert "For the teacher" not in copy_text
    student = nbformat.read(released[path.name], as_version=4)
    undone = _skipped_cells_reading_undone_work(nbformat.read(path, as_version=4), student)
    assert not undone, f"{path.name}: {undone}"
    executed = _execute(GradeOnlyExercises().preprocess(student, {})[0])
    checks = [c for c in executed.cells if c.cell_type == "code" and CHECK_CALL.search(c.source)]
    assert checks, f"{path.name}: no exercise check found"
    for cell in checks:
        error = _error(cell)
        assert error and error["ename"] == "ExerciseError" and "not implemented yet" in error["evalue"], \
            f"{path.name}: {cell.source[:60]!r} gave {error and error['evalue'][:200]}"
    crashed = [(i, _error(c)["evalue"][:200]) for i, c in enumerate(executed.cells)
               if c.cell_type == "code" and c not in checks and _error(c)]
    assert not crashed, f"{path.name}: cells other than the checks crashed: {crashed}"


def test_a_demonstration_that_uses_an_undone_exercise_is_found():
    """The static half of the test above can fail: a demonstration calling the learner's function, one reading
    a name only the solution binds, and one reading a teacher-only cell's name are each reported."""
    def code(source, **nbgrader):
        return nbformat.v4.new_code_cell(source, metadata={"nbgrader": nbgrader} if nbgrader else {})

    setup = code("import math\nx = 2.0", grade_id="setup", grade=False, solution=False)
    exercise = code("def double(v):\n    ### BEGIN SOLUTION\n    return 2 * v\n    ### END SOLUTION",
                    grade_id="ex", grade=False, solution=True)
    student_exercise = code("def double(v):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
                            grade_id="ex", grade=False, solution=True)
    check = code("check_double(double)", grade_id="check", grade=True, solution=False, points=1)
    fine = code("print(math.sqrt(x))")
    teacher = nbformat.v4.new_notebook(cells=[setup, exercise, check, fine])
    student = nbformat.v4.new_notebook(cells=[setup, student_exercise, check, fine])
    assert _skipped_cells_reading_undone_work(teacher, student) == []
    uses_it = code("print(double(x))")
    assert _skipped_cells_reading_undone_work(nbformat.v4.new_notebook(cells=[*teacher.cells, uses_it]),
                                              nbformat.v4.new_notebook(cells=[*student.cells, uses_it])) \
        == ["cell 4 reads double"]
    teacher_only = code("answer = double(x)")
    reads_answer = code("print(answer)")
    assert _skipped_cells_reading_undone_work(
        nbformat.v4.new_notebook(cells=[*teacher.cells, teacher_only, reads_answer]),
        nbformat.v4.new_notebook(cells=[*student.cells, reads_answer])) == ["cell 4 reads answer"]
