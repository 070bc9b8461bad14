"""The course directory: the teacher's notebooks as an nbgrader source, its settings, the student copies.

``mark`` gives the notebooks the nbgrader metadata they lack; ``set_up_course`` copies them to
``course/source/`` and writes the settings the course needs; ``generate`` runs ``nbgrader
generate_assignment``. The settings come in two files: ``classroom_config.py`` (ours, rewritten every time)
and ``nbgrader_config.py`` (the teacher's: written once, never overwritten, and it loads ours first, so
what the teacher sets there wins).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor

ROOT = Path(__file__).resolve().parents[2]
TEACHER_TAG = "teacher-only"
CHECK_CALL = re.compile(r"^(check_\w+)\((\w+)\)", re.MULTILINE)  # a check cell: the check, the function it checks
QUESTION = re.compile(r"\*\*(\d+)\.\s*\((predict|open|implement|warm-up)[^)]*\)")
ANSWER_STUBS = {  # nbgrader hands the learner "YOUR ANSWER HERE" in their place
    "predict": "*Your answer: the prediction you wrote before running the cell, and why it did or did not hold.*",
    "open": "*Your answer: what you tried, what you measured, and what you conclude.*",
}
ANSWER_POINTS = {"predict": 1, "open": 2}
# Seconds per cell at grading: an exercise's own cells (the learner's function, its check) get EXERCISE_TIMEOUT,
# the others the autograder runs (set-up, what an exercise uses) SETUP_TIMEOUT; see grading.GradeOnlyExercises.
EXERCISE_TIMEOUT, SETUP_TIMEOUT = 60, 300
# Any other run of a whole notebook under this configuration (`nbgrader validate`): as nbval allows in make test.
WHOLE_NOTEBOOK_TIMEOUT = 900


# --------------------------------------------------------------------------- #
# The teacher's notebooks as an nbgrader source
# --------------------------------------------------------------------------- #
def _nbgrader(grade_id, *, solution=False, grade=False, locked=False, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def mark_notebook(notebook) -> bool:
    """Give a teacher's notebook the nbgrader metadata its solution and check cells do not carry already.

    The set-up cell (the first code cell) and every exercise question become read-only; each predict and
    open question gets a manually graded answer cell at the end of its exercise. Existing metadata,
    tags and ids are kept; running it twice changes nothing. Returns whether anything changed.
    """
    cells = notebook.cells
    changed = False
    setup = next(c for c in cells if c.cell_type == "code")
    if "nbgrader" not in setup.metadata:
        setup.metadata["nbgrader"] = _nbgrader("setup", locked=True)
        changed = True
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    questions = [i for i in range(start, len(cells))
                 if cells[i].cell_type == "markdown" and re.match(r"(## Exercises\s+)?\*\*\d+\.", cells[i].source)]
    # walk backwards so that inserting a cell leaves the earlier indices valid
    for position, index in reversed(list(enumerate(questions))):
        number = re.search(r"\*\*(\d+)\.", cells[index].source).group(1)
        if "nbgrader" not in cells[index].metadata:
            cells[index].metadata["nbgrader"] = _nbgrader(f"question-{number}", locked=True)
            changed = True
        kind = QUESTION.search(cells[index].source)
        if not kind or kind.group(2) not in ANSWER_POINTS:
            continue
        end = questions[position + 1] if position + 1 < len(questions) else next(
            (i for i in range(index + 1, len(cells)) if TEACHER_TAG in cells[i].metadata.get("tags", [])), len(cells))
        grade_id = f"answer-{number}"
        if any(c.metadata.get("nbgrader", {}).get("grade_id") == grade_id for c in cells):
            continue
        answer = nbformat.v4.new_markdown_cell(ANSWER_STUBS[kind.group(2)], metadata={"nbgrader": _nbgrader(
            grade_id, solution=True, grade=True, points=ANSWER_POINTS[kind.group(2)])})
        answer.id = grade_id
        cells.insert(end, answer)
        changed = True
    return changed


def _mark_files(paths):
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        if mark_notebook(notebook):
            nbformat.write(notebook, path)
            print("marked", path)


class DropTeacherOnly(Preprocessor):
    """Remove the cells tagged ``teacher-only``: nbgrader has no such notion, so generate_assignment runs this first."""

    def __call__(self, nb, resources):  # nbconvert skips a preprocessor whose `enabled` is left False
        return self.preprocess(nb, resources)

    def preprocess(self, nb, resources):
        nb.cells = [c for c in nb.cells if TEACHER_TAG not in c.metadata.get("tags", [])]
        return nb, resources


# --------------------------------------------------------------------------- #
# The course directory
# --------------------------------------------------------------------------- #
GENERATED = "classroom_config.py"
GENERATED_CONFIG = '''\
# Written by `python -m helpers.classroom student` every time: put your own settings in nbgrader_config.py,
# which loads this file first (its settings win).
from nbgrader.converters import Autograde, GenerateAssignment, GenerateFeedback

from helpers.classroom import DropTeacherOnly, GradeOnlyExercises, PlainFeedback, time_limit

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.root = {root!r}
# Parallel grading (`grade --jobs N`): a writer waits for the gradebook's lock instead of failing after 5 s.
c.CourseDirectory.db_url = {db_url!r}
# nbgrader has no "teacher-only" notion: drop those cells before anything else.
c.GenerateAssignment.preprocessors = [DropTeacherOnly] + (
    GenerateAssignment.class_traits()["preprocessors"].make_dynamic_default())
# A check cell a learner deleted is put back from the source (and the grade report says so).
c.OverwriteCells.add_missing_cells = True
# The autograder runs the exercises and what they use, not the chapter's demonstrations, each cell with a
# time limit that fits it; a cell that loops forever is interrupted and the rest still runs.
c.Autograde.autograde_preprocessors = [GradeOnlyExercises] + (
    Autograde.class_traits()["autograde_preprocessors"].make_dynamic_default())
c.GradeOnlyExercises.exercise_timeout = {exercise_timeout}
c.GradeOnlyExercises.setup_timeout = {setup_timeout}
c.ExecutePreprocessor.timeout_func = time_limit
# Feedback a learner can read: each failed check's message first, alone, under its exercise's title; math
# rendered as MathML (no MathJax from the network).
c.GenerateFeedback.preprocessors = (GenerateFeedback.class_traits()["preprocessors"].make_dynamic_default()
                                    + [PlainFeedback])
'''
TEACHER_CONFIG = '''\
# Your course's nbgrader settings. `python -m helpers.classroom student` never overwrites this file; it
# rewrites {generated} (what the course needs), which the next line loads, so what you set below wins.
c = get_config()  # noqa: F821 (nbgrader provides it)
load_subconfig("{generated}")  # noqa: F821

c.CourseDirectory.course_id = "cnn-seeing"
# On a JupyterHub, the exchange every user can reach (see TEACHING.md, "On a JupyterHub"):
# c.Exchange.root = "/srv/nbgrader/exchange"
'''


def write_config(course: Path, exercise_timeout: int = EXERCISE_TIMEOUT, setup_timeout: int = SETUP_TIMEOUT):
    """Write ``classroom_config.py``; write ``nbgrader_config.py`` only where it is missing (or make an
    older one load ours first), so the teacher's settings survive every ``student``."""
    course = Path(course).resolve()
    db_url = f"sqlite:///{course / 'gradebook.db'}?timeout=600"
    (course / GENERATED).write_text(GENERATED_CONFIG.format(
        root=str(course), db_url=db_url, exercise_timeout=exercise_timeout, setup_timeout=setup_timeout),
        encoding="utf-8")
    teacher = course / "nbgrader_config.py"
    if not teacher.exists():
        teacher.write_text(TEACHER_CONFIG.format(generated=GENERATED), encoding="utf-8")
    elif GENERATED not in teacher.read_text(encoding="utf-8"):
        teacher.write_text(f'load_subconfig("{GENERATED}")  # noqa: F821 (added by helpers.classroom)\n'
                           + teacher.read_text(encoding="utf-8"), encoding="utf-8")


def set_up_course(course: Path, notebooks: list[Path]) -> list[str]:
    """Write the course's settings (:func:`write_config`) and copy each notebook to ``course/source/<stem>/``;
    the assignment ids."""
    course = Path(course).resolve()
    course.mkdir(parents=True, exist_ok=True)
    write_config(course)
    assignments = []
    for path in sorted(Path(p) for p in notebooks):
        target = course / "source" / path.stem
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / path.name)
        assignments.append(path.stem)
    return assignments


def nbgrader(course: Path, *args: str, timeout: float | None = None, env: dict | None = None
             ) -> subprocess.CompletedProcess:
    """Run the nbgrader command line in ``course`` with this interpreter's bin on PATH (nbgrader calls alembic);
    ``env``: variables added to the environment (its kernels inherit them)."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _must(result: subprocess.CompletedProcess, what: str) -> None:
    # nbgrader logs a broken config file as an error and carries on without it: treat that as a failure too
    if result.returncode != 0 or "[ERROR]" in result.stdout + result.stderr:
        raise RuntimeError(f"{what} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def generate(course: Path, notebooks: list[Path]) -> list[Path]:
    """Set up the course and run ``nbgrader generate_assignment`` for each notebook; the student copies."""
    released = []
    for assignment in set_up_course(course, notebooks):
        _must(nbgrader(course, "generate_assignment", assignment, "--force"), f"generate_assignment {assignment}")
        released += sorted((Path(course) / "release" / assignment).glob("*.ipynb"))
    return released




def points(notebooks: list[Path]) -> list[dict]:
    """Per notebook: the points its checks score automatically and the points of its answers graded by hand
    (from the nbgrader metadata of the cells)."""
    table = []
    for path in sorted(Path(p) for p in notebooks):
        auto = manual = 0
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                if cell.cell_type == "code" and not meta.get("solution"):
                    auto += meta.get("points", 0)
                else:
                    manual += meta.get("points", 0)
        table.append({"notebook": path.stem, "autograded": auto, "by hand": manual})
    return table


def points_markdown(notebooks: list[Path]) -> str:
    """:func:`points` as the markdown table TEACHING.md shows."""
    rows = points(notebooks)
    lines = ["| notebook | autograded points | points graded by hand | share by hand |", "|---|---|---|---|"]
    for row in rows:
        total = row["autograded"] + row["by hand"]
        lines.append(f"| {row['notebook']} | {row['autograded']:g} | {row['by hand']:g} | "
                     f"{row['by hand'] / total:.0%} |")
    auto, manual = sum(r["autograded"] for r in rows), sum(r["by hand"] for r in rows)
    lines.append(f"| all | {auto:g} | {manual:g} | {manual / (auto + manual):.0%} |")
    return "\n".join(lines)
