"""The real nbgrader pipeline in a temporary course directory: generate, hand in, autograde, feedback, report.

Notebooks 05 and 07 carry the two mistakes of the source notes (SmoothGrad's σ used as a variance, IG without
(x − x′)); notebook 00 is the fastest, so it carries the bad hand-ins, graded two at a time. Each autograde runs a
notebook's set-up and exercises (about 10–30 s here), so this module takes a few minutes.
"""
import csv
import hashlib
import io
import re
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason="nbgrader is in the `classroom` and `test` extras")

from helpers.classroom import generate, grade, nbgrader, report  # noqa: E402
from helpers.classroom.grading import grading_records  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {name: next((ROOT / "notebooks").glob(f"{name}_*.ipynb")) for name in ("00", "05", "07")}

SIGMA_AS_VARIANCE = ("    sigma = noise_level * (x.max() - x.min())\n"
                     "    noisy = [x + sigma ** 2 * torch.randn_like(x) for _ in range(samples)]\n"
                     "    grads = [torch.autograd.grad(model(n.requires_grad_(True))[:, target_class].sum(), n)[0]"
                     " for n in noisy]\n"
                     "    return torch.stack(grads).mean(0)\n")
IG_WITHOUT_DIRECTION = ("    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps\n"
                        "    points = (baseline + alphas.view(-1, 1, 1, 1) * (x - baseline)).requires_grad_(True)\n"
                        "    (grads,) = torch.autograd.grad(model(points)[:, target_class].sum(), points)\n"
                        "    return grads.mean(0, keepdim=True)\n")


def digest(folder: Path) -> dict:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.ipynb")}


def solved(release: Path, source: Path, replace: dict[str, str] | None = None):
    """The student copy with the teacher's solutions typed in, as a learner hands it in (answers written too)."""
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(source, as_version=4).cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    notebook = nbformat.read(release, as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in solutions:
            text = re.sub(r"[ \t]*### (BEGIN|END) SOLUTION\n?", "", solutions[grade_id])
            if grade_id in (replace or {}):
                head = text.split("\n")[0]  # keep the `def` line, swap the body
                text = head + "\n" + replace[grade_id]
            cell.source = text if cell.cell_type == "code" else "My answer: it holds, because …"
    return notebook


def hand_in(course: Path, student: str, assignment: str, notebook):
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timestamp.txt").write_text("2026-12-04 12:00:00.000000 UTC")
    if isinstance(notebook, (str, bytes)):
        (folder / f"{assignment}.ipynb").write_text(notebook)
    else:
        nbformat.write(notebook, folder / f"{assignment}.ipynb")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    before = digest(ROOT / "notebooks")
    released = generate(course, list(NOTEBOOKS.values()))
    assert [p.name for p in released] == sorted(p.name for p in NOTEBOOKS.values())
    yield course
    assert digest(ROOT / "notebooks") == before, "the teacher's notebooks were changed"


def test_student_copies_have_no_solutions_no_teacher_notes_and_blank_answers(course):
    for path in NOTEBOOKS.values():
        text = (course / "release" / path.stem / path.name).read_text()
        assert "### BEGIN SOLUTION" not in text and "For the teacher" not in text and "teacher-only" not in text
        assert "YOUR CODE HERE" in text and "YOUR ANSWER HERE" in text


def test_scores_differ_as_expected_and_feedback_names_the_mistakes(course):
    assignments = [NOTEBOOKS["05"].stem, NOTEBOOKS["07"].stem]
    source = {a: course / "source" / a / f"{a}.ipynb" for a in assignments}
    release = {a: course / "release" / a / f"{a}.ipynb" for a in assignments}
    sources_before = digest(course / "source")
    for a in assignments:
        hand_in(course, "ada", a, solved(release[a], source[a]))
    hand_in(course, "bob", assignments[0], solved(release[assignments[0]], source[assignments[0]],
                                                  {"solution-my_smooth_grad": SIGMA_AS_VARIANCE}))
    hand_in(course, "bob", assignments[1], solved(release[assignments[1]], source[assignments[1]],
                                                  {"solution-my_integrated_gradients": IG_WITHOUT_DIRECTION}))
    out = io.StringIO()
    rows = grade(course, assignments, out=out)
    text = out.getvalue()
    scores = {(r["assignment"], r["student"], r["cell"]): r["score"] for r in rows if r["cell"]}
    for a in assignments:
        checks = [cell for (assignment, student, cell) in scores if assignment == a and student == "ada"
                  and cell.startswith("check-")]
        assert len(checks) == 2, checks
        assert all(scores[(a, "ada", c)] == 1 for c in checks), text
    assert scores[(assignments[0], "bob", "check-smooth-grad")] == 0
    assert scores[(assignments[0], "bob", "check-run-to-run-correlation")] == 1
    assert scores[(assignments[1], "bob", "check-integrated-gradients")] == 0
    assert scores[(assignments[1], "bob", "check-expected-gradients")] == 1
    assert "ada: 2 of 5 points (answers still to be graded by hand)" in text  # 2 checks + answers of 1 and 2 points
    assert "you used σ² as the standard deviation" in text and "multiply it by (x − baseline)" in text

    for a in assignments:
        assert nbgrader(course, "generate_feedback", a).returncode == 0
    smooth = (course / "feedback" / "bob" / assignments[0] / f"{assignments[0]}.html").read_text()
    ig = (course / "feedback" / "bob" / assignments[1] / f"{assignments[1]}.html").read_text()
    assert "you used σ² as the standard deviation" in smooth
    assert "multiply it by (x − baseline)" in ig
    # the message alone under the exercise's title, no traceback with the check's code or the teacher's paths
    assert "Exercise 1 (warm-up): SmoothGrad from the formula" in smooth and "Your exercises" in smooth
    assert "Traceback (most recent call last)" not in smooth
    assert str(ROOT) not in smooth and "site-packages" not in smooth
    assert smooth.count("<math") > 5  # the markdown's math as MathML, which the browser draws without MathJax
    assert digest(course / "source") == sources_before


def test_bad_hand_ins_get_a_clear_line_and_the_others_are_still_graded(course):
    a = NOTEBOOKS["00"].stem
    source, release = course / "source" / a / f"{a}.ipynb", course / "release" / a / f"{a}.ipynb"
    sources_before = digest(course / "source")
    good = solved(release, source)
    hand_in(course, "carol", a, "this is my homework, sorry it is a Word file")
    deleted = solved(release, source)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "check-capture"]
    hand_in(course, "dan", a, deleted)
    moved = solved(release, source)
    check = next(i for i, c in enumerate(moved.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "check-capture")
    moved.cells.insert(check - 1, moved.cells.pop(check))  # the check before the function it checks
    hand_in(course, "eve", a, moved)
    endless = solved(release, source, {"solution-capture": "    while True:\n        pass\n"})
    hand_in(course, "fay", a, endless)
    hand_in(course, "gus", a, good)

    misnamed = course / "submitted" / "hal" / a
    misnamed.mkdir(parents=True)
    nbformat.write(good, misnamed / f"{a} (1).ipynb")
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        gradebook.update_or_create_student("ivy")  # on the roster, handed nothing in

    out = io.StringIO()
    rows = grade(course, [a], timeout=20, out=out, jobs=2)  # s per exercise cell; two students at a time
    text = out.getvalue()
    lines = {s: [r["message"] for r in rows if r["student"] == s and r["cell"] == "(total)"]
             for s in "carol dan eve fay gus hal ivy".split()}
    assert "is not a Jupyter notebook" in lines["carol"][0], text
    assert "test cells deleted: check-capture" in lines["dan"][0], text
    assert "test cells moved out of order" in lines["eve"][0], text
    assert "stopped after its time limit of 20 s" in lines["fay"][0], text
    assert lines["gus"] == ["answers still to be graded by hand"], text
    assert f"{a} (1).ipynb was" in lines["hal"][0] and f"grade {a} --student hal" in lines["hal"][0], text
    assert lines["ivy"] == ["nothing handed in"] and "ivy: 0 of 4 points: nothing handed in" in text
    score = {(r["student"], r["cell"]): r["score"] for r in rows}
    assert score[("gus", "check-capture")] == 1
    assert score[("dan", "check-capture")] == 1  # nbgrader put the deleted check back and it passed
    assert score[("eve", "check-capture")] == 0  # it ran before the function existed
    assert score[("fay", "check-capture")] == 0
    assert score[("carol", "(total)")] == score[("hal", "(total)")] == 0
    assert digest(course / "source") == sources_before

    # two autograde processes ran at once, and the gradebook holds each hand-in exactly once, with its own score
    runs = sorted((r["start"], r["start"] + r["seconds"]) for r in grading_records(course)
                  if r["assignment"] == a and r["graded"])
    assert len(runs) == 4 and any(later[0] < earlier[1] for earlier, later in zip(runs, runs[1:])), runs
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        held = [(s.student.id, s.score) for s in gradebook.find_assignment(a).submissions]
    assert sorted(held) == [("dan", 1), ("eve", 0), ("fay", 0), ("gus", 1)], held
    print(next(line for line in text.splitlines() if line.startswith(a)))  # seconds per hand-in (pytest -s)

    # one late hand-in, graded alone; the others' results stay as they were
    hand_in(course, "hal", a, good)
    (misnamed / f"{a} (1).ipynb").unlink()
    rows = grade(course, [a], students=["hal"], out=io.StringIO())
    score = {(r["student"], r["cell"]): r["score"] for r in rows}
    assert score[("hal", "check-capture")] == 1 and score[("gus", "check-capture")] == 1
    assert score[("eve", "check-capture")] == 0

    report(course, [a], csv_path=course / "grades.csv", out=io.StringIO())
    with open(course / "grades-totals.csv") as f:
        totals = {row["student"]: row for row in csv.DictReader(f)}
    assert set("carol dan eve fay gus hal ivy".split()) <= set(totals)
    assert totals["gus"][a] == "1" and totals["ivy"][a] == "0" and totals["ivy"]["max_total"] == "4"
