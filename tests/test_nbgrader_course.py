"""The real nbgrader pipeline in a temporary course directory: generate, hand in, autograde, feedback, report.

Notebooks 05 and 07 carry the two mistakes of the source notes (SmoothGrad's σ used as a variance, IG without
(x − x′)); notebook 00 is the fastest, so it carries the bad hand-ins. Each autograde runs a whole notebook
(about 10–40 s here), so this module takes a few minutes.
"""
import hashlib
import io
import re
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason="nbgrader is in the `classroom` and `test` extras")

from helpers.classroom import generate, grade, nbgrader  # noqa: E402

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

    out = io.StringIO()
    rows = grade(course, [a], timeout=60, out=out)  # s per cell
    text = out.getvalue()
    lines = {s: [r["message"] for r in rows if r["student"] == s and not r["cell"]] for s in "carol dan eve fay gus".split()}
    assert any("is not a Jupyter notebook" in line for line in lines["carol"]), text
    assert any("test cells deleted: check-capture" in line for line in lines["dan"]), text
    assert any("test cells moved out of order" in line for line in lines["eve"]), text
    assert any("per-cell time limit" in line for line in lines["fay"]), text
    assert lines["gus"] == [], text
    score = {(r["student"], r["cell"]): r["score"] for r in rows if r["cell"]}
    assert score[("gus", "check-capture")] == 1
    assert score[("dan", "check-capture")] == 1  # nbgrader put the deleted check back and it passed
    assert score[("eve", "check-capture")] == 0  # it ran before the function existed
    assert score[("fay", "check-capture")] == 0
    assert "carol: not graded" in text
    assert digest(course / "source") == sources_before
