"""Student copies of the notebooks: solutions blanked, outputs cleared, teacher-only cells removed.

    python -m helpers.classroom            # notebooks/*.ipynb → student/*.ipynb

Solutions sit between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers, so the
teacher's copy also works with nbgrader as it is). Cells tagged ``teacher-only`` are dropped.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path

__all__ = ["student_notebook", "write_student_copies"]

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)",
                      re.MULTILINE | re.DOTALL)
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


def student_notebook(notebook: dict) -> dict:
    """The student's version of a notebook (a parsed .ipynb dict); the input is not changed."""
    student = copy.deepcopy(notebook)
    student["metadata"].pop("widgets", None)
    cells = []
    for cell in student["cells"]:
        if TEACHER_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code":
            cell["source"] = blank_solutions(source)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=ROOT / "notebooks", type=Path)
    parser.add_argument("target", nargs="?", default=ROOT / "student", type=Path)
    args = parser.parse_args(argv)
    for path in write_student_copies(args.source, args.target):
        print("wrote", path)


if __name__ == "__main__":
    main()
