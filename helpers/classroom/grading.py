"""Grading a class: each hand-in checked before nbgrader runs it, the cells the autograder runs, many at once.

The autograder runs a chapter's exercises and what they use, not its demonstrations
(:class:`GradeOnlyExercises`, an nbgrader preprocessor): the learner still has the whole chapter, the
feedback shows it, and grading a hand-in of 05 costs a kernel start and a few cells instead of the chapter.
Hand-ins are graded in parallel by student (``jobs``), each student in its own ``nbgrader autograde``
process; nbgrader's gradebook (SQLite) takes one writer at a time, and each process writes its own
student's rows only, so concurrent runs cannot overwrite each other's results.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import symtable
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Integer

from .course import EXERCISE_TIMEOUT, SETUP_TIMEOUT, WHOLE_NOTEBOOK_TIMEOUT, nbgrader

SKIP_TAG = "skip-execution"  # nbclient (hence nbgrader's Execute) does not run a cell with this tag
LIMIT_KEY = "classroom_time_limit"
TIMED_OUT = ("KeyboardInterrupt", "CellTimeoutError")  # nbgrader interrupts a cell that runs past its limit
QUESTION_TITLE = re.compile(r"\*\*(\d+)\.\s*(?:\(([^)]*)\))?\s*(.*?)\*\*", re.DOTALL)


# --------------------------------------------------------------------------- #
# What the autograder runs
# --------------------------------------------------------------------------- #
def _is_exercise(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("solution") or meta.get("grade"))


def _is_root(cell) -> bool:
    return _is_exercise(cell) or cell.metadata.get("nbgrader", {}).get("grade_id") == "setup"


def cell_names(source: str) -> tuple[set[str], set[str], set[str]] | None:
    """What a code cell binds at module level (or changes: ``a.b = …``, ``a[i] = …``), what it reads when it
    runs, and what the functions it defines read when they are called; None if it is not Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(source)  # %magics and !shell become plain Python
    try:
        tree, table = ast.parse(code), symtable.symtable(code, "<cell>", "exec")
    except (SyntaxError, ValueError):
        return None
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    read_now = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    read_later, scopes = set(), list(table.get_children())
    while scopes:
        scope = scopes.pop()
        read_later |= {s.get_name() for s in scope.get_symbols() if s.is_global() or s.is_declared_global()}
        bound |= {s.get_name() for s in scope.get_symbols() if s.is_declared_global() and s.is_assigned()}
        scopes += scope.get_children()
    for node in ast.walk(tree):
        for target in node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]:
            if isinstance(target, (ast.Attribute, ast.Subscript)):
                while isinstance(target, (ast.Attribute, ast.Subscript)):
                    target = target.value
                if isinstance(target, ast.Name):
                    bound.add(target.id)
    return bound, read_now, read_later


def needed_cells(cells) -> set[int]:
    """Indices of the code cells grading must run: the set-up, every exercise cell (the learner's functions and
    the checks) and, to a fixed point, each cell that binds a name a needed cell reads before that cell runs
    (or, read inside a function, before the last exercise cell). A cell that is not Python is kept."""
    code = [i for i, cell in enumerate(cells) if cell.cell_type == "code"]
    roots = {i for i in code if _is_root(cells[i])}
    if not roots:
        return set(code)
    last = max(roots)
    names = {i: cell_names(cells[i].source) for i in code}
    keep = roots | {i for i in code if names[i] is None and i < last}
    while True:
        demands = [(name, j) for j in keep if names[j] for name in names[j][1]]
        demands += [(name, last) for j in keep if names[j] for name in names[j][2]]
        more = {i for i in code if i not in keep and names[i]
                and any(name in names[i][0] and i < before for name, before in demands)}
        if not more:
            return keep
        keep |= more


class GradeOnlyExercises(Preprocessor):
    """Run first by ``nbgrader autograde``: every code cell :func:`needed_cells` leaves out is tagged
    ``skip-execution`` (a learner's own such tags are removed: they would hide a check from the grader), and
    every cell gets its time limit (read by :func:`time_limit`)."""

    run_everything = Bool(False, help="run every cell of the hand-in, demonstrations too").tag(config=True)
    exercise_timeout = Integer(EXERCISE_TIMEOUT, help="seconds for a learner's function or a check").tag(config=True)
    setup_timeout = Integer(SETUP_TIMEOUT, help="seconds for the other cells grading runs").tag(config=True)

    def __call__(self, nb, resources):  # nbconvert skips a preprocessor whose `enabled` is left False
        return self.preprocess(nb, resources)

    def preprocess(self, nb, resources):
        needed = needed_cells(nb.cells) if not self.run_everything else set(range(len(nb.cells)))
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            tags = [tag for tag in cell.metadata.get("tags", []) if tag != SKIP_TAG]
            cell.metadata["tags"] = tags + ([] if index in needed else [SKIP_TAG])
            cell.metadata[LIMIT_KEY] = self.exercise_timeout if _is_exercise(cell) else self.setup_timeout
        return nb, resources


def time_limit(cell) -> int:
    """nbgrader's per-cell time limit (``ExecutePreprocessor.timeout_func``): what GradeOnlyExercises set, or
    (``nbgrader validate``, which runs every cell without it) the limit of a whole notebook."""
    return cell.metadata.get(LIMIT_KEY, WHOLE_NOTEBOOK_TIMEOUT)


# --------------------------------------------------------------------------- #
# Exercises by their titles
# --------------------------------------------------------------------------- #
def exercise_titles(notebook) -> dict[int, str]:
    """``{cell index: "Exercise 1 (warm-up): SmoothGrad from the formula"}`` for each cell of an exercise."""
    titles, current = {}, None
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and (match := QUESTION_TITLE.search(cell.source)) and (
                cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("question-")):
            number, kind, title = match.groups()
            current = f"Exercise {number}" + (f" ({kind})" if kind else "") + (f": {title.strip()}" if title else "")
        if current:
            titles[index] = current
    return titles


def timed_out(cell) -> bool:
    return any(o.get("output_type") == "error" and o.get("ename") in TIMED_OUT for o in cell.get("outputs", []))


# --------------------------------------------------------------------------- #
# Each hand-in, before nbgrader runs it
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
        expected = {p.name for p in source.parent.glob("*.ipynb")}  # the assignment's other notebooks are no stand-in
        others = sorted(p.name for p in submitted.parent.glob("*.ipynb") if p.name not in expected)
        if not others:
            return [f"{source.name} was not handed in (0 points)"], False
        student, assignment = submitted.parent.parent.name, submitted.parent.name
        return [f"{source.name} was not handed in, but {', '.join(others)} was (0 points until it is renamed): "
                f"rename it to {source.name} in submitted/{student}/{assignment}/, then grade it with "
                f"`python -m helpers.classroom grade {assignment} --student {student}`"], False
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


# --------------------------------------------------------------------------- #
# Many hand-ins
# --------------------------------------------------------------------------- #
def record_file(course: Path, assignment: str, student: str) -> Path:
    """Where the grading of one hand-in is recorded (its problems, when it ran): one file per hand-in, so runs
    on several machines sharing the course directory never write the same file."""
    return Path(course) / "grading" / assignment / f"{student}.json"


def grading_records(course: Path) -> list[dict]:
    """Every hand-in's latest grading record."""
    paths = sorted((Path(course) / "grading").glob("*/*.json"))
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def grading_env(jobs: int) -> dict[str, str]:
    """Threads per grading kernel: the cores shared among ``jobs`` kernels, idle threads yielding them
    (OMP_WAIT_POLICY=PASSIVE, as in ``make test``); a variable the teacher set wins."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    wanted = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    return {name: os.environ.get(name, value) for name, value in wanted.items()}


def _timeouts(course: Path, student: str, assignment: str) -> list[str]:
    lines = []
    for path in sorted((course / "autograded" / student / assignment).glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        titles = exercise_titles(notebook)
        for index, cell in enumerate(notebook.cells):
            if timed_out(cell):
                where = titles.get(index, f"cell {index}")
                lines.append(f"{path.name}: {where}: a cell was stopped after its time limit of "
                             f"{time_limit(cell)} s (an endless loop?); the cells after it still ran")
    return lines


def _grade_one(course: Path, student: str, assignment: str, extra: list[str], env: dict) -> dict:
    """Check and autograde one hand-in; its problems and when it ran."""
    start = time.time()
    lines, gradable = [], True
    for source in sorted((course / "source" / assignment).glob("*.ipynb")):
        found, ok = hand_in_problems(course / "submitted" / student / assignment / source.name, source)
        lines += found
        gradable &= ok
    if gradable:
        try:  # a wall-clock limit on top of the per-cell ones, in case a kernel hangs
            result = nbgrader(course, "autograde", assignment, "--student", student, "--create", "--force",
                              *extra, timeout=3600, env=env)
            if result.returncode != 0:
                errors = [line for line in (result.stdout + result.stderr).splitlines() if "[ERROR]" in line]
                lines.append("nbgrader autograde failed: " + (errors[-1] if errors else result.stderr[-300:]))
        except subprocess.TimeoutExpired:
            lines.append("nbgrader autograde did not finish within an hour; the kernel may hang")
        lines += _timeouts(course, student, assignment)
    record = {"student": student, "assignment": assignment, "problems": lines, "graded": gradable,
              "start": start, "seconds": time.time() - start}
    path = record_file(course, assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
    return record


def _add_students(course: Path, students) -> None:
    """Create the gradebook's student rows before the parallel runs, so no two runs create the same one."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            gradebook.update_or_create_student(student)


def autograde_all(course: Path, assignments: list[str], students: list[str] | None = None, jobs: int = 1,
                  timeout: int | None = None, run_everything: bool = False) -> list[dict]:
    """``nbgrader autograde`` every hand-in of ``assignments`` (of ``students`` only, if given), ``jobs``
    students at a time; each hand-in's record (its problems, when it ran) is saved for the report
    (:func:`record_file`). Returns the records."""
    course = Path(course).resolve()
    handed_in = {}
    for assignment in assignments:
        for folder in sorted((course / "submitted").glob(f"*/{assignment}")):
            if folder.is_dir() and (not students or folder.parent.name in students):
                handed_in.setdefault(folder.parent.name, []).append(assignment)
    _add_students(course, handed_in)
    extra = ([f"--GradeOnlyExercises.exercise_timeout={timeout}"] if timeout else []) + (
        ["--GradeOnlyExercises.run_everything=True"] if run_everything else [])
    env = grading_env(jobs)

    def one_student(student):  # a student's assignments one after the other: never two writers for one student
        return [_grade_one(course, student, assignment, extra, env) for assignment in handed_in[student]]

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        records = [record for batch in pool.map(one_student, sorted(handed_in)) for record in batch]
    return records


def timing_summary(records: list[dict], jobs: int) -> list[str]:
    """One line per assignment: hand-ins, wall time, seconds per hand-in (of the class's wall time, and each)."""
    lines = []
    for assignment in sorted({r["assignment"] for r in records}):
        mine = [r for r in records if r["assignment"] == assignment and r["graded"]]
        if not mine:
            continue
        wall = max(r["start"] + r["seconds"] for r in mine) - min(r["start"] for r in mine)
        each = sorted(r["seconds"] for r in mine)
        lines.append(f"{assignment}: {len(mine)} hand-ins in {wall:.0f} s with {jobs} job(s): {wall / len(mine):.1f} s "
                     f"per hand-in for the class, each one {each[0]:.0f}–{each[-1]:.0f} s")
    return lines
