"""Classroom mode: student copies of the notebooks, and grading of what students hand back.

    python -m helpers.classroom student [notebooks] [student]   # solutions blanked, outputs cleared
    python -m helpers.classroom grade handed-in/*.ipynb          # run each notebook, report every check

Solutions sit between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in cells that carry nbgrader's
metadata, so the teacher's copy also works with nbgrader as it is. Cells tagged ``teacher-only`` are
dropped from the student copy. A check cell is one that calls ``check_…(function)`` from
:mod:`helpers.exercises`.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CheckResult", "check_results", "crashed_cells", "grade", "run_notebook", "student_notebook",
           "write_student_copies"]

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)",
                      re.MULTILINE | re.DOTALL)
CHECK_CALL = re.compile(r"^(check_\w+)\((\w+)\)", re.MULTILINE)  # the check, and the function it checks
TEACHER_TAG = "teacher-only"


def blank_solutions(source: str) -> str:
    """Replace every solution block with a placeholder that raises, keeping its indentation."""
    def placeholder(match):
        indent = match.group("indent")
        return f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n"

    blanked = SOLUTION.sub(placeholder, source)
    if "### BEGIN SOLUTION" in blanked or "### END SOLUTION" in blanked:
        raise ValueError(f"unbalanced solution markers in:\n{source}")
    return blanked.rstrip("\n")


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def student_notebook(notebook: dict) -> dict:
    """The student's version of a notebook (a parsed .ipynb dict); the input is not changed."""
    student = copy.deepcopy(notebook)
    student["metadata"].pop("widgets", None)
    cells = []
    for cell in student["cells"]:
        if TEACHER_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] == "code":
            cell["source"] = blank_solutions(_source(cell))
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    student["cells"] = cells
    return student


def write_student_copies(source_dir: Path = ROOT / "notebooks", target_dir: Path = ROOT / "student") -> list[Path]:
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(source_dir).glob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        out = target_dir / path.name
        out.write_text(json.dumps(student_notebook(notebook), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(out)
    return written


# --------------------------------------------------------------------------- #
# Running and grading
# --------------------------------------------------------------------------- #
@dataclass
class CheckResult:
    check: str
    cell: int
    status: str  # "passed", "not implemented", "failed", "crashed" or "not run"
    message: str = ""


def run_notebook(path: Path, working_dir: Path = ROOT / "notebooks", timeout: int = 900):
    """Execute a notebook top to bottom, carrying on past errors so that every check gets its turn."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=timeout, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(working_dir)}}).execute()
    return notebook


def _error(cell):
    return next((o for o in cell.get("outputs", []) if o["output_type"] == "error"), None)


def check_results(notebook) -> list[CheckResult]:
    """What each check cell of an executed notebook reported."""
    results = []
    for index, cell in enumerate(notebook["cells"]):
        call = CHECK_CALL.search(_source(cell)) if cell["cell_type"] == "code" else None
        if not call:
            continue
        error = _error(cell)
        if cell.get("execution_count") is None:
            status, message = "not run", ""
        elif error is None:
            status, message = "passed", ""
        elif error["ename"] == "ExerciseError":
            status = "not implemented" if "not implemented yet" in error["evalue"] else "failed"
            message = error["evalue"]
        else:
            status, message = "crashed", f"{error['ename']}: {error['evalue']}"
        results.append(CheckResult(call.group(1), index, status, message))
    return results


def crashed_cells(notebook) -> list[tuple[int, str]]:
    """``(cell index, error)`` for every cell other than a check that raised."""
    return [(index, f"{error['ename']}: {error['evalue']}") for index, cell in enumerate(notebook["cells"])
            if cell["cell_type"] == "code" and not CHECK_CALL.search(_source(cell)) and (error := _error(cell))]


def grade(paths: list[Path], csv_path: Path | None = None, out=sys.stdout) -> list[dict]:
    """Run each handed-in notebook and report its checks; one row per notebook and check."""
    rows = []
    for path in paths:
        notebook = run_notebook(path)
        results = check_results(notebook)
        passed = sum(r.status == "passed" for r in results)
        print(f"\n{path}: {passed} of {len(results)} checks passed", file=out)
        for r in results:
            print(f"  {'✓' if r.status == 'passed' else '✗'} {r.check:32} {r.status:16} {r.message[:100]}", file=out)
            rows.append({"notebook": str(path), "check": r.check, "status": r.status, "message": r.message})
        for index, error in crashed_cells(notebook):
            print(f"  ! cell {index} raised {error[:100]}", file=out)
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["notebook", "check", "status", "message"])
            writer.writeheader()
            writer.writerows(rows)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write student copies: solutions blanked, outputs cleared")
    student.add_argument("source", nargs="?", default=ROOT / "notebooks", type=Path)
    student.add_argument("target", nargs="?", default=ROOT / "student", type=Path)
    marking = commands.add_parser("grade", help="run handed-in notebooks and report each check "
                                                "(this runs the students' code: use a sandbox)")
    marking.add_argument("notebooks", nargs="+", type=Path)
    marking.add_argument("--csv", type=Path, help="also write one row per notebook and check to this file")
    args = parser.parse_args(argv)
    if args.command == "student":
        for path in write_student_copies(args.source, args.target):
            print("wrote", path)
    else:
        grade(args.notebooks, args.csv)


if __name__ == "__main__":
    main()
