"""What the teacher and the learner read after grading: the class report (and CSV), and the feedback's text.

The report lists every student of the roster (nbgrader's gradebook: ``nbgrader db student add`` or
``import``, plus everyone who handed something in) with a total per chapter: a score, or 0 and the reason
nothing could be graded. :class:`PlainFeedback` rewrites the feedback nbgrader writes for a learner: each
failed check's plain-words message first and alone, under its exercise's title, and the math as MathML
(rendered by the browser, so the page needs no MathJax from the network).
"""
from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor

from .grading import TIMED_OUT, autograde_all, exercise_titles, grading_records, time_limit, timing_summary

FIELDS = ["assignment", "student", "cell", "exercise", "score", "max_score", "message"]
TOTAL = "(total)"


# --------------------------------------------------------------------------- #
# Failed checks in plain words
# --------------------------------------------------------------------------- #
def plain_message(error: dict, limit: int | None = None) -> str:
    """What went wrong, in a line a learner can read: a check's own message, a timeout said as one, or the
    error of the learner's code with the lines of their cells it went through (no path of the teacher's)."""
    if error.get("ename") in TIMED_OUT:
        return (f"stopped after {limit or '?'} s, the time limit of this cell: an endless loop, or far more work "
                "than the exercise needs? The cells after it still ran.")
    if error.get("ename") == "ExerciseError":
        return error.get("evalue", "")
    own = [re.sub(r"\x1b\[[0-9;]*m", "", frame) for frame in error.get("traceback", []) if "Cell In[" in frame]
    return f"{error.get('ename')}: {error.get('evalue')}" + ("\n\nin your code:\n" + "\n".join(own) if own else "")


def check_messages(notebook_path: Path) -> dict[str, str]:
    """The plain message of each grade cell that raised in an autograded notebook, by grade_id."""
    if not notebook_path.exists():
        return {}
    messages = {}
    for cell in nbformat.read(notebook_path, as_version=4).cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        if grade_id and error:
            messages[grade_id] = plain_message(error, time_limit(cell)).split("\n")[0]
    return messages


# --------------------------------------------------------------------------- #
# Math without MathJax
# --------------------------------------------------------------------------- #
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$", re.DOTALL)


def math_as_mathml(markdown: str) -> str:
    """``$…$`` and ``$$…$$`` outside code turned into MathML; a formula the converter cannot read stays as it is."""
    from latex2mathml.converter import convert

    def one(match):
        display, inline = match.groups()
        try:
            return convert((display or inline).strip(), display="block" if display else "inline")
        except Exception:  # latex2mathml raises many kinds on LaTeX it does not know
            return match.group(0)

    parts = _CODE.split(markdown)
    return "".join(part if i % 2 else _MATH.sub(one, part) for i, part in enumerate(parts))


class PlainFeedback(Preprocessor):
    """Run last by ``nbgrader generate_feedback``: a summary of the autograded exercises comes first; each failed
    check shows its plain-words message alone (the traceback, with the check's source and the teacher's paths,
    is dropped); markdown math becomes MathML."""

    def __call__(self, nb, resources):  # nbconvert skips a preprocessor whose `enabled` is left False
        return self.preprocess(nb, resources)

    def preprocess(self, nb, resources):
        titles = exercise_titles(nb)
        summary = []
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":
                cell.source = math_as_mathml(cell.source)
                continue
            meta = cell.metadata.get("nbgrader", {})
            error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
            title = titles.get(index, "this cell")
            if error:
                message = plain_message(error, time_limit(cell))
                error.update(ename=title, evalue=message, traceback=[f"\x1b[1m{title}\x1b[0m", message])
                cell.outputs = [error] + [o for o in cell.outputs if o is not error]
            if meta.get("grade") and cell.cell_type == "code":
                points = f"{meta.get('score', 0):g} of {meta.get('points', 0):g}"
                summary.append(f"- {'✓' if not error else '✗'} **{title}**: {points} point(s)"
                               + (f". {message.splitlines()[0]}" if error else ""))
        if summary:
            note = nbformat.v4.new_markdown_cell("### Your exercises, as the autograder saw them\n\n"
                                                 + "\n".join(summary))
            note.id = "classroom-summary"
            nb.cells.insert(0, note)
        return nb, resources


# --------------------------------------------------------------------------- #
# The class report
# --------------------------------------------------------------------------- #
def _roster(gradebook, course: Path, problems: dict) -> list[str]:
    handed_in = {p.parent.name for p in (course / "submitted").glob("*/*") if p.is_dir()}
    return sorted({s.id for s in gradebook.students} | handed_in | {s for a in problems.values() for s in a})


def _titles(course: Path, assignment: str) -> dict[str, str]:
    """``{grade_id: exercise title}`` from the assignment's source notebooks."""
    titles = {}
    for path in (course / "source" / assignment).glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        for index, title in exercise_titles(notebook).items():
            if grade_id := notebook.cells[index].metadata.get("nbgrader", {}).get("grade_id"):
                titles[grade_id] = title
    return titles


def grade(course: Path, assignments: list[str] | None = None, timeout: int | None = None, out=None, jobs: int = 1,
          students: list[str] | None = None, run_everything: bool = False) -> list[dict]:
    """Autograde every hand-in (:func:`~helpers.classroom.grading.autograde_all`: ``jobs`` students at a time,
    ``students`` only if given), print how long it took per hand-in, then :func:`report`; its rows."""
    out = out or sys.stdout
    assignments = assignments or sorted(p.name for p in (Path(course) / "source").iterdir() if p.is_dir())
    records = autograde_all(course, assignments, students, jobs, timeout, run_everything)
    for line in timing_summary(records, jobs):
        print(line, file=out)
    return report(course, assignments, out=out)


def report(course: Path, assignments: list[str] | None = None, csv_path: Path | None = None, out=sys.stdout):
    """One block per assignment, one entry per rostered student, from nbgrader's gradebook and the problems
    grading found. ``csv_path``: one row per student and cell plus a ``(total)`` row per student and
    assignment, and ``<name>-totals.csv`` beside it with one row per student. Returns the rows."""
    from nbgrader.api import Gradebook, MissingEntry

    course = Path(course).resolve()
    problems = {}
    for record in grading_records(course):
        problems.setdefault(record["assignment"], {})[record["student"]] = record["problems"]
    rows = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        assignments = assignments or [a.name for a in gradebook.assignments]
        students = _roster(gradebook, course, problems)
        for assignment in assignments:
            print(f"\n== {assignment}", file=out)
            max_score = gradebook.find_assignment(assignment).max_score
            titles = _titles(course, assignment)
            for student in students:
                found = problems.get(assignment, {}).get(student)
                try:
                    submission = gradebook.find_submission(assignment, student)
                except MissingEntry:
                    submission = None
                if submission is None:
                    reason = "; ".join(found) if found else "nothing handed in"
                    print(f"{student}: 0 of {max_score:g} points: {reason}", file=out)
                    rows.append(dict(assignment=assignment, student=student, cell=TOTAL, exercise="", score=0,
                                     max_score=max_score, message=reason))
                    continue
                pending = ["answers still to be graded by hand"] if submission.needs_manual_grade else []
                print(f"{student}: {submission.score:g} of {submission.max_score:g} points"
                      + "".join(f" ({note})" for note in pending), file=out)
                rows.append(dict(assignment=assignment, student=student, cell=TOTAL, exercise="",
                                 score=submission.score, max_score=submission.max_score,
                                 message="; ".join([*(found or []), *pending])))
                for line in found or []:
                    print(f"  ! {line}", file=out)
                for notebook in submission.notebooks:
                    messages = check_messages(course / "autograded" / student / assignment / f"{notebook.name}.ipynb")
                    for grade in sorted(notebook.grades, key=lambda g: g.name):
                        if grade.auto_score is None and grade.manual_score is None:
                            mark, message = "?", "to be graded by hand"
                        elif grade.score >= grade.max_score:
                            mark, message = "✓", ""
                        else:
                            mark, message = "✗", messages.get(grade.name, "")
                        exercise = titles.get(grade.name, "")
                        print(f"  {mark} {notebook.name}/{grade.name} ({exercise}): "
                              f"{grade.score:g}/{grade.max_score:g} "
                              f"{message[:200]}", file=out)
                        rows.append(dict(assignment=assignment, student=student, cell=grade.name, exercise=exercise,
                                         score=grade.score, max_score=grade.max_score, message=message))
    if csv_path:
        write_csv(Path(csv_path), rows)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    """Every row to ``path``; one row per student with each assignment's total and the sum to ``<name>-totals.csv``."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    totals = [r for r in rows if r["cell"] == TOTAL]
    assignments = sorted({r["assignment"] for r in totals})
    by_student = {}
    for r in totals:
        by_student.setdefault(r["student"], {})[r["assignment"]] = r["score"]
    with open(path.with_name(f"{path.stem}-totals.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *assignments, "total", "max_total"])
        max_total = sum({r["assignment"]: r["max_score"] for r in totals}.values())
        for student, scores in sorted(by_student.items()):
            writer.writerow([student, *(f"{scores.get(a, 0):g}" for a in assignments),
                             f"{sum(scores.values()):g}", f"{max_total:g}"])
