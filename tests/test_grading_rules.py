"""Grading a class, without running nbgrader: which cells the autograder runs, time limits, the teacher's settings,
hand-ins under the wrong name, feedback in plain words, and an answer that only calls the course's helper."""
from pathlib import Path

import nbformat
import pytest

from helpers.classroom import (GradeOnlyExercises, PlainFeedback, hand_in_problems, math_as_mathml, needed_cells,
                               points, points_markdown, set_up_course, time_limit)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def cell(kind, source, grade_id=None, **nbgrader):
    made = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if grade_id:
        made.metadata["nbgrader"] = {"grade_id": grade_id, **nbgrader}
    return made


def exercise_notebook():
    """Cells: 0 set-up, 1 a demonstration, 2 changes the model, 3 read at call time, 4 the question,
    5 the learner's function, 6 a cell the learner added, 7 the check, 8 after the last check."""
    return nbformat.v4.new_notebook(cells=[
        cell("code", "%matplotlib inline\nimport torch\nmodel = torch.nn.Linear(2, 1)", "setup", locked=True),
        cell("code", "pictures = [torch.randn(9) for _ in range(3)]\nprint(pictures)"),
        cell("code", "model.weight.data[:] = 1.0"),
        cell("code", "scale = 2.0"),
        cell("markdown", "## Exercises\n\n**1. (warm-up) Twice the output.** Write `twice`.", "question-1"),
        cell("code", "def twice(x):\n    return scale * model(x)", "solution-twice", solution=True),
        cell("code", "def helper_of_mine():\n    return 1"),
        cell("code", "check_twice(twice)", "check-twice", grade=True, points=1),
        cell("code", "for picture in pictures:\n    print(picture)"),
    ])


def test_the_autograder_runs_the_exercises_and_what_they_use_only():
    notebook = exercise_notebook()
    assert needed_cells(notebook.cells) == {0, 2, 3, 5, 7}
    notebook.cells[7].metadata["tags"] = ["skip-execution"]  # a learner hiding the check from the grader
    notebook.cells[1].source = "this is not python ("       # kept: it could bind anything
    graded, _ = GradeOnlyExercises().preprocess(notebook, {})
    skipped = [i for i, c in enumerate(graded.cells) if "skip-execution" in c.metadata.get("tags", [])]
    assert skipped == [6, 8]
    assert [time_limit(graded.cells[i]) for i in (0, 5, 7)] == [300, 60, 60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_keeps_its_set_up_and_exercises_and_skips_demonstrations(path):
    cells = nbformat.read(path, as_version=4).cells
    kept = needed_cells(cells)
    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    exercise = {i for i in code if cells[i].metadata.get("nbgrader", {}).get("solution")
                or cells[i].metadata.get("nbgrader", {}).get("grade")}
    assert exercise and exercise | {code[0]} <= kept
    assert len(kept) < len(code) / 2, f"{path.name}: grading would run {sorted(kept)} of {code}"


def test_a_hand_in_saved_under_another_name_is_named_with_the_fix(tmp_path):
    source = tmp_path / "source" / "05_smoothgrad.ipynb"
    source.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), source)
    folder = tmp_path / "submitted" / "ada" / "05_smoothgrad"
    folder.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), folder / "05_smoothgrad (1).ipynb")
    (line,), gradable = hand_in_problems(folder / "05_smoothgrad.ipynb", source)
    assert not gradable
    assert "05_smoothgrad (1).ipynb was" in line and "rename it to 05_smoothgrad.ipynb" in line
    assert "--student ada" in line


def test_the_teachers_settings_survive_student(tmp_path):
    from traitlets.config.loader import PyFileConfigLoader

    set_up_course(tmp_path, [])
    teacher = tmp_path / "nbgrader_config.py"
    teacher.write_text(teacher.read_text() + 'c.CourseDirectory.course_id = "xai-2027"\n'
                       'c.Exchange.root = "/srv/nbgrader/exchange"\n')
    set_up_course(tmp_path, [])
    config = PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path)).load_config()
    assert config.CourseDirectory.course_id == "xai-2027" and config.Exchange.root == "/srv/nbgrader/exchange"
    assert config.CourseDirectory.root == str(tmp_path.resolve()) and config.GradeOnlyExercises.exercise_timeout == 60

    older = tmp_path / "older"
    older.mkdir()
    (older / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "kept"\n')
    set_up_course(older, [])
    config = PyFileConfigLoader("nbgrader_config.py", path=str(older)).load_config()
    assert config.CourseDirectory.course_id == "kept" and config.CourseDirectory.root == str(older.resolve())


def test_feedback_says_the_check_message_first_alone_and_under_the_exercise_title():
    notebook = exercise_notebook()
    notebook.cells[4].source += " The score is $S = \\sum_k w_k x_k$, and `$HOME` stays code."
    notebook.cells[7].metadata["nbgrader"]["score"] = 0
    notebook.cells[7].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="checking\n"),
        nbformat.v4.new_output("error", ename="ExerciseError", evalue="twice: you forgot the scale",
                               traceback=["\x1b[0;31mFile /home/teacher/course/helpers/exercises/:41\x1b[0m",
                                          "secret check source"])]
    notebook.cells[5].outputs = [nbformat.v4.new_output("error", ename="KeyboardInterrupt", evalue="",
                                                        traceback=["KeyboardInterrupt"])]
    notebook.cells[5].metadata["classroom_time_limit"] = 60
    fed, _ = PlainFeedback().preprocess(notebook, {})
    summary = fed.cells[0].source
    assert "✗ **Exercise 1 (warm-up): Twice the output.**: 0 of 1 point(s). twice: you forgot the scale" in summary
    check = fed.cells[8]
    assert check.outputs[0].output_type == "error" and check.outputs[0].evalue == "twice: you forgot the scale"
    assert "/home/teacher" not in str(check.outputs) and "secret" not in str(check.outputs)
    assert "stopped after 60 s" in fed.cells[6].outputs[0].evalue
    assert "<math" in fed.cells[5].source and "$S" not in fed.cells[5].source and "`$HOME`" in fed.cells[5].source


def test_math_the_converter_cannot_read_stays_as_written():
    assert math_as_mathml("cost $x^$ here") == "cost $x^$ here"
    assert math_as_mathml("a price of \\$5 and $x$").startswith("a price of \\$5 and <math")


def test_an_answer_that_calls_the_course_helper_fails_and_the_helper_is_restored():
    import helpers
    from helpers import smooth_grad
    from helpers.exercises import ExerciseError, check_smooth_grad

    def my_smooth_grad(model, x, target_class, noise_level, samples):
        return smooth_grad(model, x, target_class, noise_level=noise_level, samples=samples)

    def via_the_package(model, x, target_class, noise_level, samples):
        return helpers.methods.gradients.smooth_grad(model, x, target_class, noise_level=noise_level, samples=samples)

    for answer in (my_smooth_grad, via_the_package):
        with pytest.raises(ExerciseError, match="calls the course's `smooth_grad`"):
            check_smooth_grad(answer, samples=8)
    assert helpers.smooth_grad is smooth_grad is helpers.methods.gradients.smooth_grad
    assert smooth_grad.__module__ == "helpers.methods.gradients" and smooth_grad.__name__ == "smooth_grad"


def test_teaching_md_shows_the_points_the_notebooks_give():
    table = points(NOTEBOOKS)
    assert all(row["autograded"] > 0 and row["by hand"] > 0 for row in table)
    assert points_markdown(NOTEBOOKS) in (ROOT / "TEACHING.md").read_text(), \
        "TEACHING.md's points table is out of date: paste `python -m helpers.classroom points` into it"
