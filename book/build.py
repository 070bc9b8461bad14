"""Build the course as a static website: ``python book/build.py`` (``make book``).

Every notebook in notebooks/ becomes a page, in file-name order. Sphinx reads copies prepared here:

- cells tagged ``teacher-only`` are left out (they are for the teacher, as in the student copy);
- after each ``explorer`` cell, whose widget needs a live kernel, comes a note and the explorer's own
  picture at its starting settings (a hidden cell displays ``<explorer>.picture``); the widget
  output itself is removed;
- a "run it yourself" note follows each chapter's title; solution cells are folded away;
- a hidden first cell records a hash of helpers/ and data/, so jupyter-cache, which keys a notebook
  on its code, re-executes a page when the notebook or the code it imports changes, and only then.

    python book/build.py [--out build/book] [--execute all|none|00,01]

The site lands in ``<out>/html`` (open ``index.html``); executed notebooks are cached in
``<out>/jupyter_cache``.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import os
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
TEACHER_TAG, EXPLORER_TAG = "teacher-only", "explorer"
SOLUTION_MARK = "### BEGIN SOLUTION"


def course_hash() -> str:
    """SHA-256 over helpers/ and data/: what the notebooks import and read besides their own code."""
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "helpers").rglob("*.py"), *(p for p in (ROOT / "data").rglob("*") if p.is_file())]):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _tagged(cell, *tags):
    cell.metadata["tags"] = sorted(set(cell.metadata.get("tags", [])) | set(tags))
    return cell


def _new(kind: str, source: str, cell_id: str, *tags):
    """A cell the website adds, with a fixed id so that the same notebook always gives the same copy."""
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    cell.id = cell_id
    return _tagged(cell, *tags) if tags else cell


def _explorer_expression(source: str) -> str:
    """The expression an explorer cell ends with (what it displays), e.g. ``explorer``."""
    try:
        last = ast.parse(source).body[-1]
    except (SyntaxError, IndexError):
        last = None
    if not isinstance(last, ast.Expr):
        raise ValueError(f"an explorer cell must end with the explorer it displays; this one does not:\n{source}")
    return ast.get_source_segment(source, last.value)


def run_note(path: Path) -> str:
    return (":::{tip}\n**Run this chapter yourself.** This page is the notebook "
            f"`notebooks/{path.name}`, run top to bottom. In the repository's root, `make lab` opens "
            "JupyterLab; open the notebook there to change the code, move the explorer's controls and "
            "try your own photos.\n:::")


EXPLORER_NOTE = (":::{note}\nThe explorer above is interactive in JupyterLab (`make lab`). A website has no "
                 "kernel behind it, so here is the picture it draws at its starting settings.\n:::")


def book_notebook(notebook: nbformat.NotebookNode, path: Path, code_hash: str) -> nbformat.NotebookNode:
    """The copy of ``notebook`` (read from ``path``) that the website shows; the input is not changed."""
    cells = [_new("code", f"# course code (helpers/, data/): sha256 {code_hash}", "book-code-hash", "remove-cell")]
    for index, original in enumerate(notebook.cells):
        if TEACHER_TAG in original.metadata.get("tags", []):
            continue
        cell = nbformat.from_dict(original)
        cell.setdefault("id", f"cell-{index}")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if cell.cell_type == "code" and SOLUTION_MARK in cell.source:
            _tagged(cell, "hide-input")
        cells.append(cell)
        if index == 0:
            cells.append(_new("markdown", run_note(path), "book-run-note"))
        if cell.cell_type == "code" and EXPLORER_TAG in cell.metadata.get("tags", []):
            _tagged(cell, "remove-output")
            still = ("from IPython.display import Image, display\n\n"
                     f"display(Image(data=({_explorer_expression(cell.source)}).picture.value, format='png'))")
            cells += [_new("markdown", EXPLORER_NOTE, f"book-explorer-note-{index}"),
                      _new("code", still, f"book-explorer-still-{index}", "remove-input")]
    copy = nbformat.v4.new_notebook(cells=cells, metadata=dict(notebook.metadata))
    copy.metadata.pop("widgets", None)
    nbformat.validate(copy)
    return copy


def _write_if_changed(path: Path, text: str):
    if not path.exists() or path.read_text() != text:  # unchanged files keep Sphinx's incremental build
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def prepare(source: Path) -> list[Path]:
    """Write the site's sources into ``source``: index.md and one prepared copy per notebook."""
    code_hash = course_hash()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in {ROOT / 'notebooks'}")
    _write_if_changed(source / "index.md", (BOOK / "index.md").read_text())
    wanted = set()
    for path in notebooks:
        copy = book_notebook(nbformat.read(path, as_version=4), path, code_hash)
        _write_if_changed(source / "notebooks" / path.name, nbformat.writes(copy) + "\n")
        wanted.add(path.name)
    for stale in (source / "notebooks").glob("*.ipynb"):
        if stale.name not in wanted:  # a notebook renamed or removed in notebooks/
            stale.unlink()
    return notebooks


def build(out: Path, execute: str = "all") -> Path:
    """Prepare the sources and run Sphinx; return the folder holding ``index.html``.

    ``execute``: ``all`` (from the cache where it is up to date), ``none``, or comma-separated
    notebook prefixes such as ``00,01`` (the other pages then show their code without outputs).
    """
    from sphinx.cmd.build import build_main

    out = out.resolve()
    notebooks = prepare(out / "src")
    mode, exclude = "cache", []
    if execute == "none":
        mode = "off"
    elif execute != "all":
        prefixes = [p.strip() for p in execute.split(",") if p.strip()]
        unknown = [p for p in prefixes if not any(n.name.startswith(p) for n in notebooks)]
        if unknown:
            raise ValueError(f"no notebook starts with {unknown}; the notebooks: {[n.name for n in notebooks]}")
        exclude = [f"notebooks/{n.name}" for n in notebooks if not any(n.name.startswith(p) for p in prefixes)]
    # The kernels import this checkout's helpers; OMP_WAIT_POLICY: see the Makefile's test target.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.update(BOOK_EXECUTION_MODE=mode, BOOK_CACHE=str(out / "jupyter_cache"), BOOK_EXCLUDE=",".join(exclude))
    html = out / "html"
    status = build_main(["-b", "html", "-c", str(BOOK), "-W", "--keep-going", "-q",
                         "-d", str(out / "doctrees"), str(out / "src"), str(html)])
    if status:
        raise SystemExit(f"the website did not build (sphinx exit status {status}); see the messages above")
    return html


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    parser.add_argument("--execute", default="all", help="all, none, or notebook prefixes like 00,01")
    args = parser.parse_args(argv)
    html = build(args.out, args.execute)
    print(f"The course website is in {html}: open {html / 'index.html'} in a browser.")


if __name__ == "__main__":
    sys.exit(main())
