"""Classroom mode on nbgrader: a course directory, student copies, grading and a grade report.

    python -m helpers.classroom mark notebooks/*.ipynb       # nbgrader metadata on answer and read-only cells
    python -m helpers.classroom student [--course course]    # course/ set up, then nbgrader generate_assignment
    python -m helpers.classroom grade [--course course]      # nbgrader autograde, one hand-in at a time, then report
    python -m helpers.classroom report [--course course]     # the grade report from nbgrader's gradebook

nbgrader does the work it was built for: blanking solutions, clearing outputs, locking cells, running and
scoring hand-ins, feedback. What stays here is what nbgrader does not do: dropping the cells tagged
``teacher-only`` (a preprocessor, :class:`DropTeacherOnly`, run first by ``generate_assignment``), checking
each hand-in before nbgrader runs it (not a notebook, test cells deleted or moved), running each hand-in in
its own ``nbgrader autograde`` so one bad hand-in cannot stop the others, and a report that names each failed
check's mistake in plain words (the messages of :mod:`helpers.exercises`).

One assignment per notebook, named after it (``05_smoothgrad``). The course directory's ``source/`` is a
copy of ``notebooks/``, refreshed by ``student``; nbgrader never writes to the teacher's notebooks.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor

__all__ = ["CHECK_CALL", "DropTeacherOnly", "generate", "grade", "hand_in_problems", "mark_notebook", "report",
           "set_up_course"]

ROOT = Path(__file__).resolve().parent.parent
TEACHER_TAG = "teacher-only"
CHECK_CALL = re.compile(r"^(check_\w+)\((\w+)\)", re.MULTILINE)  # a check cell: the check, the function it checks
QUESTION = re.compile(r"\*\*(\d+)\.\s*\((predict|open|implement|warm-up)[^)]*\)")
ANSWER_STUBS = {  # nbgrader hands the learner "YOUR ANSWER HERE" in their place
    "predict": "*Your answer: the prediction you wrote before running the cell, and why it did or did not hold.*",
    "open": "*Your answer: what you tried, what you measured, and what you conclude.*",
}
ANSWER_POINTS = {"predict": 1, "open": 2}
DEFAULT_TIMEOUT = 900  # seconds per cell, as nbval allows in make test: notebook 08 passed 300 s on a busy 2-core machine


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
CONFIG = '''\
# Written by `python -m helpers.classroom student`; edit the settings below to suit your course.
from nbgrader.converters import GenerateAssignment

from helpers.classroom import DropTeacherOnly

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "cnn-seeing"
# nbgrader has no "teacher-only" notion: drop those cells before anything else.
c.GenerateAssignment.preprocessors = [DropTeacherOnly] + (
    GenerateAssignment.class_traits()["preprocessors"].make_dynamic_default())
# A check cell a learner deleted is put back from the source (and the grade report says so).
c.OverwriteCells.add_missing_cells = True
# Each cell may run this long; a cell that loops forever is interrupted and the rest still runs.
c.ExecutePreprocessor.timeout = {timeout}
# On a JupyterHub, uncomment and point to the shared exchange directory (see TEACHING.md):
# c.Exchange.root = "/srv/nbgrader/exchange"
'''


def set_up_course(course: Path, notebooks: list[Path], timeout: int = DEFAULT_TIMEOUT) -> list[str]:
    """Write ``course/nbgrader_config.py`` and copy each notebook to ``course/source/<stem>/``; the assignment ids."""
    course = Path(course).resolve()
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG.format(root=str(course), timeout=timeout), encoding="utf-8")
    assignments = []
    for path in sorted(Path(p) for p in notebooks):
        target = course / "source" / path.stem
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / path.name)
        assignments.append(path.stem)
    return assignments


def nbgrader(course: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run the nbgrader command line in ``course`` with this interpreter's bin on PATH (nbgrader calls alembic)."""
    env = dict(os.environ)
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


# --------------------------------------------------------------------------- #
# Grading, one hand-in at a time
# --------------------------------------------------------------------------- #
def _ids(notebook, tests_only: bool) -> list[str]:
    """The grade_ids of the test cells (or of every nbgrader cell), in notebook order."""
    ids = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if "grade_id" in meta and (not tests_only or (meta.get("grade") and cell.cell_type == "code")):
            ids.append(meta["grade_id"])
    return ids


def hand_in_problems(submitted: Path, source: Path) -> tuple[list[str], bool]:
    """What is wrong with one handed-in notebook before nbgrader runs it; and whether it can be graded at all."""
    if not submitted.exists():
        return [f"{source.name} was not handed in (0 points)"], False
    try:
        notebook = nbformat.read(submitted, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # nbformat raises several kinds; any of them means "not a notebook"
        return [f"{submitted.name} is not a Jupyter notebook ({type(error).__name__}: {str(error)[:120]}); "
                "ask for the .ipynb file saved from Jupyter (0 points until then)"], False
    teacher = nbformat.read(source, as_version=4)
    problems = []
    missing = [g for g in _ids(teacher, True) if g not in _ids(notebook, True)]
    if missing:
        problems.append(f"{submitted.name}: test cells deleted: {', '.join(missing)} (put back from the source "
                        "and run where they stood)")
    # a test cell moved before the solution it checks (or past another test) runs out of order
    expected, found = _ids(teacher, False), _ids(notebook, False)
    kept = [g for g in found if g in expected]
    in_source_order = [g for g in expected if g in kept]
    moved = [g for g in _ids(teacher, True) if g in kept and kept.index(g) != in_source_order.index(g)]
    if moved:
        problems.append(f"{submitted.name}: test cells moved out of order: {', '.join(moved)}; they ran where "
                        "the learner put them")
    return problems, True


def _problems_file(course: Path) -> Path:
    return Path(course) / "grade-problems.json"


def grade(course: Path, assignments: list[str] | None = None, timeout: int | None = None, out=sys.stdout):
    """``nbgrader autograde`` each hand-in in ``course/submitted/<student>/<assignment>/`` on its own, then report."""
    course = Path(course)
    problems_path = _problems_file(course)
    problems = json.loads(problems_path.read_text()) if problems_path.exists() else {}
    assignments = assignments or sorted(p.name for p in (course / "source").iterdir() if p.is_dir())
    extra = [f"--ExecutePreprocessor.timeout={timeout}"] if timeout else []
    for assignment in assignments:
        sources = sorted((course / "source" / assignment).glob("*.ipynb"))
        for student_dir in sorted((course / "submitted").glob(f"*/{assignment}")):
            student = student_dir.parent.name
            lines, gradable = [], True
            for source in sources:
                found, ok = hand_in_problems(student_dir / source.name, source)
                lines += found
                gradable &= ok
            if gradable:
                # a generous wall-clock limit on top of nbgrader's per-cell timeout, in case a kernel hangs
                try:
                    result = nbgrader(course, "autograde", assignment, "--student", student, "--create", "--force",
                                      *extra, timeout=20 * (timeout or DEFAULT_TIMEOUT) + 120)
                    if result.returncode != 0:
                        errors = [l for l in (result.stdout + result.stderr).splitlines() if "[ERROR]" in l]
                        lines.append("nbgrader autograde failed: " + (errors[-1] if errors else result.stderr[-300:]))
                except subprocess.TimeoutExpired:
                    lines.append("nbgrader autograde did not finish in time; the kernel may hang")
                lines += _timeouts(course, student, assignment)
            problems.setdefault(assignment, {})[student] = lines
    problems_path.write_text(json.dumps(problems, indent=1, ensure_ascii=False), encoding="utf-8")
    return report(course, assignments, out=out)


def _timeouts(course: Path, student: str, assignment: str) -> list[str]:
    lines = []
    for path in sorted((course / "autograded" / student / assignment).glob("*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])):
                lines.append(f"{path.name}: cell {index} was stopped after the per-cell time limit "
                             "(an endless loop?); the cells after it still ran")
    return lines


def _check_messages(course: Path, student: str, assignment: str, notebook: str) -> dict[str, str]:
    """The error each grade cell of the autograded notebook raised: the check's plain-words message."""
    path = Path(course) / "autograded" / student / assignment / f"{notebook}.ipynb"
    if not path.exists():
        return {}
    messages = {}
    for cell in nbformat.read(path, as_version=4).cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        if grade_id and error:
            messages[grade_id] = f"{error['ename']}: {error['evalue']}"
    return messages


def report(course: Path, assignments: list[str] | None = None, csv_path: Path | None = None, out=sys.stdout):
    """One block per assignment and student from nbgrader's gradebook, with the problems the grading found."""
    from nbgrader.api import Gradebook, MissingEntry

    course = Path(course)
    problems_path = _problems_file(course)
    problems = json.loads(problems_path.read_text()) if problems_path.exists() else {}
    rows = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        assignments = assignments or [a.name for a in gradebook.assignments]
        for assignment in assignments:
            print(f"\n== {assignment}", file=out)
            students = sorted(set(problems.get(assignment, {})) | {s.id for s in gradebook.students})
            for student in students:
                try:
                    submission = gradebook.find_submission(assignment, student)
                except MissingEntry:
                    submission = None
                if submission is None and student not in problems.get(assignment, {}):
                    continue
                score = f"{submission.score:g} of {submission.max_score:g} points" if submission else "not graded"
                pending = " (answers still to be graded by hand)" if submission and submission.needs_manual_grade else ""
                print(f"{student}: {score}{pending}", file=out)
                for line in problems.get(assignment, {}).get(student, []):
                    print(f"  ! {line}", file=out)
                    rows.append({"assignment": assignment, "student": student, "cell": "", "score": "",
                                 "max_score": "", "message": line})
                for notebook in (submission.notebooks if submission else []):
                    messages = _check_messages(course, student, assignment, notebook.name)
                    for grade in sorted(notebook.grades, key=lambda g: g.name):
                        if grade.auto_score is None and grade.manual_score is None:
                            mark, message = "?", "to be graded by hand"
                        elif grade.score >= grade.max_score:
                            mark, message = "✓", ""
                        else:
                            mark, message = "✗", messages.get(grade.name, "")
                        print(f"  {mark} {notebook.name}/{grade.name}: {grade.score:g}/{grade.max_score:g} "
                              f"{message[:200]}", file=out)
                        rows.append({"assignment": assignment, "student": student, "cell": grade.name,
                                     "score": grade.score, "max_score": grade.max_score, "message": message})
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["assignment", "student", "cell", "score", "max_score", "message"])
            writer.writeheader()
            writer.writerows(rows)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    mark = commands.add_parser("mark", help="add nbgrader metadata: read-only questions and set-up, answer cells")
    mark.add_argument("notebooks", nargs="+", type=Path)
    for name, text in [("student", "set up the course directory and generate the student copies"),
                       ("grade", "autograde every hand-in in course/submitted/ (runs the learners' code: sandbox it)"),
                       ("report", "the grade report from the gradebook")]:
        command = commands.add_parser(name, help=text)
        command.add_argument("--course", type=Path, default=ROOT / "course")
        if name == "student":
            command.add_argument("notebooks", nargs="*", type=Path, default=sorted((ROOT / "notebooks").glob("*.ipynb")))
        else:
            command.add_argument("assignments", nargs="*")
        if name == "grade":
            command.add_argument("--timeout", type=int, help=f"seconds per cell (default {DEFAULT_TIMEOUT})")
        if name != "student":
            command.add_argument("--csv", type=Path, help="also write one row per student and cell to this file")
    args = parser.parse_args(argv)
    if args.command == "mark":
        _mark_files(args.notebooks)
    elif args.command == "student":
        for path in generate(args.course, args.notebooks):
            print("wrote", path)
    elif args.command == "grade":
        grade(args.course, args.assignments or None, args.timeout)
        if args.csv:
            report(args.course, args.assignments or None, args.csv, out=open(os.devnull, "w"))
    else:
        report(args.course, args.assignments or None, args.csv)


if __name__ == "__main__":
    main()
