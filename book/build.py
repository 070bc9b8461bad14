"""Build the course as a static website: ``python book/build.py`` (``make book``).

Every notebook in notebooks/ becomes a page, in file-name order. Sphinx reads copies prepared here:

- cells tagged ``teacher-only`` are left out (they are for the teacher, as in the student copy);
- after each ``explorer`` cell, whose widget needs a live kernel, comes a note and the explorer's own
  picture at its starting settings (a hidden cell displays ``<explorer>.picture``); the widget
  output itself is removed;
- a "run it yourself" note follows each chapter's title, with a download of the chapter's notebook (the
  reader's copy: no teacher-only cells, no nbgrader markers); solution cells are folded away, nbgrader's
  ``### BEGIN/END SOLUTION`` markers dropped;
- a box written as raw ``<div>`` HTML around markdown (JupyterLab renders it; Sphinx would split it at the
  heading inside and leave the page's HTML unbalanced) becomes a MyST admonition;
- a hidden first cell records a hash of helpers/ and data/, so jupyter-cache, which keys a notebook
  on its code, re-executes a page when the notebook or the code it imports changes, and only then.

    python book/build.py [--out build/book] [--execute all|none|00,01] [--repository-url URL]
                         [--binderhub-url https://mybinder.org] [--jupyterhub-url https://hub.example.edu]

A repository URL puts a link to the repository on every page; with it, a BinderHub or JupyterHub URL adds a
launch button (Binder reads the repository's ``environment.yml``; a JupyterHub needs nbgitpuller). The launch
routes are built from templates and not tried here (this machine has no network).

The site lands in ``<out>/html`` (open ``index.html``); executed notebooks are cached in
``<out>/jupyter_cache``.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
TEACHER_TAG, EXPLORER_TAG = "teacher-only", "explorer"
SOLUTION_MARK = "### BEGIN SOLUTION"
NBGRADER_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)[ \t]*\n?", re.MULTILINE)
HTML_BOX = re.compile(r"^<div[^>]*>[ \t]*\n(.*?)\n</div>[ \t]*$", re.DOTALL | re.MULTILINE)
DOWNLOADS = "downloads"  # the readers' copies of the notebooks, in the Sphinx source folder (not pages)


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
            f"`notebooks/{path.name}`, run top to bottom: {{download}}`download it <../{DOWNLOADS}/{path.name}>`, "
            "or, in a copy of the repository, `make lab` opens JupyterLab; open the notebook there to change "
            "the code, move the explorer's controls and try your own photos.\n:::")


def without_markers(source: str) -> str:
    """A solution cell's code without nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines."""
    return NBGRADER_MARKERS.sub("", source)


def boxes_as_admonitions(markdown: str) -> str:
    """Each ``<div …>`` … ``</div>`` box (each on its own line) as a MyST admonition titled by the box's first
    heading: Sphinx turns a heading into a section, which would split a raw ``<div>`` across two sections."""
    def admonition(match):
        body = match.group(1).strip("\n")
        heading = re.match(r"#{1,6}\s+(.+)\n?", body)
        title = heading.group(1).strip() if heading else "Note"
        body = body[heading.end():].strip("\n") if heading else body
        return f"::::{{admonition}} {title}\n:class: warning\n\n{body}\n::::"

    return HTML_BOX.sub(admonition, markdown)


def reader_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook a reader downloads: without teacher-only cells, outputs, widget state or nbgrader markers."""
    cells = []
    for original in notebook.cells:
        if TEACHER_TAG in original.metadata.get("tags", []):
            continue
        cell = nbformat.from_dict(original)
        if cell.cell_type == "code":
            cell.source, cell.outputs, cell.execution_count = without_markers(cell.source), [], None
        cells.append(cell)
    copy = nbformat.v4.new_notebook(cells=cells, metadata=dict(notebook.metadata))
    copy.metadata.pop("widgets", None)
    return copy


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
            cell.source = without_markers(cell.source)
        if cell.cell_type == "markdown":
            cell.source = boxes_as_admonitions(cell.source)
        cells.append(cell)
        if index == 0:
            cells.append(_new("markdown", run_note(path), "book-run-note"))
        if cell.cell_type == "code" and EXPLORER_TAG in cell.metadata.get("tags", []):
            _tagged(cell, "remove-output")
            still = ("from IPython.display import Image, display\n\n"
                     f"display(Image(data=({_explorer_expression(cell.source)}).picture.value, format='png'))")
            cells += [_new("markdown", EXPLORER_NOTE, f"book-explorer-note-{index}"),
                      _new("code", still, f"book-explorer-still-{index}", "remove-input", "explorer-still")]
    copy = nbformat.v4.new_notebook(cells=cells, metadata=dict(notebook.metadata))
    copy.metadata.pop("widgets", None)
    nbformat.validate(copy)
    return copy


ANSWER_KEY_TOC = "\n```{toctree}\n:maxdepth: 1\n:caption: For self-study\n\nanswers\n```\n"


def answer_key(notebooks: list[Path]) -> str:
    """A page with each chapter's **For the teacher** cell (the answers to its predict questions and what a good
    open experiment contains), for readers who study alone; built only with ``--answer-key``."""
    parts = ["# Answer key\n\n:::{warning}\nFor self-study. Read a chapter's answers only after you have tried its "
             "exercises. (A teacher who grades these exercises builds the site without `--answer-key`.)\n:::\n"]
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        title = notebook.cells[0].source.splitlines()[0].lstrip("# ").strip()
        notes = [c.source for c in notebook.cells if TEACHER_TAG in c.metadata.get("tags", [])]
        if notes:
            parts.append(f"## {title}\n\n" + "\n\n".join(notes) + "\n")
    return "\n".join(parts)


def _write_if_changed(path: Path, text: str):
    if not path.exists() or path.read_text() != text:  # unchanged files keep Sphinx's incremental build
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def prepare(source: Path, with_answer_key: bool = False) -> list[Path]:
    """Write the site's sources into ``source``: index.md, one prepared copy and one reader's copy per notebook,
    and (``with_answer_key``) the answer key's page."""
    code_hash = course_hash()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in {ROOT / 'notebooks'}")
    index = (BOOK / "index.md").read_text()
    _write_if_changed(source / "index.md", index + ANSWER_KEY_TOC if with_answer_key else index)
    if with_answer_key:
        _write_if_changed(source / "answers.md", answer_key(notebooks))
    elif (source / "answers.md").exists():
        (source / "answers.md").unlink()
    wanted = set()
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        copy = book_notebook(notebook, path, code_hash)
        _write_if_changed(source / "notebooks" / path.name, nbformat.writes(copy) + "\n")
        _write_if_changed(source / DOWNLOADS / path.name, nbformat.writes(reader_notebook(notebook)) + "\n")
        wanted.add(path.name)
    for stale in [*(source / "notebooks").glob("*.ipynb"), *(source / DOWNLOADS).glob("*.ipynb")]:
        if stale.name not in wanted:  # a notebook renamed or removed in notebooks/
            stale.unlink()
    return notebooks


def repository_url() -> str:
    """The URL of this checkout's ``origin`` remote, as https (empty when there is none)."""
    try:
        url = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    url = re.sub(r"^git@([^:]+):", r"https://\1/", url)
    return url.removesuffix(".git") if url.startswith("https://") else ""


def build(out: Path, execute: str = "all", repository: str | None = None, binderhub: str = "",
          jupyterhub: str = "", branch: str = "main", with_answer_key: bool = False) -> Path:
    """Prepare the sources and run Sphinx; return the folder holding ``index.html``.

    ``execute``: ``all`` (from the cache where it is up to date), ``none``, or comma-separated
    notebook prefixes such as ``00,01`` (the other pages then show their code without outputs).
    ``repository``: the repository's URL (default: the ``origin`` remote's); ``binderhub``, ``jupyterhub``:
    where the launch buttons send a reader (none by default). ``with_answer_key``: add the page
    :func:`answer_key` (off by default: a class's learners would read it too).
    """
    from sphinx.cmd.build import build_main

    out = out.resolve()
    notebooks = prepare(out / "src", with_answer_key)
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
    os.environ.update(BOOK_EXECUTION_MODE=mode, BOOK_CACHE=str(out / "jupyter_cache"), BOOK_EXCLUDE=",".join(exclude),
                      BOOK_REPOSITORY_URL=repository_url() if repository is None else repository,
                      BOOK_BINDERHUB_URL=binderhub, BOOK_JUPYTERHUB_URL=jupyterhub, BOOK_BRANCH=branch)
    html = out / "html"
    status = build_main(["-b", "html", "-c", str(BOOK), "-W", "--keep-going", "-q",
                         "-d", str(out / "doctrees"), str(out / "src"), str(html)])
    if status:
        raise SystemExit(f"the website did not build (sphinx exit status {status}); see the messages above")
    for page in (html / "notebooks").glob("*.html"):
        _write_if_changed(page, printed_markup_as_markup(text_tables_as_tables(page.read_text())))
    return html


_PRE = re.compile(r"<pre>(.*?)</pre>", re.DOTALL)
_PRINTED_MARKUP = re.compile(r"&lt;(sub|sup|b|i)&gt;(.*?)&lt;/\1&gt;")


def printed_markup_as_markup(page: str) -> str:
    """``<sub>``, ``<sup>``, ``<b>`` and ``<i>`` printed in a cell's text output (e.g. an HTML widget's value)
    rendered as what they mean instead of shown as tags."""
    return _PRE.sub(lambda match: "<pre>" + _PRINTED_MARKUP.sub(r"<\1>\2</\1>", match.group(1)) + "</pre>", page)


def text_tables_as_tables(page: str) -> str:
    """A printed table (three or more lines in a row, each with two or more `` | `` separators; a row may leave
    its last columns out) in a cell's text output becomes an HTML table, which wraps on a narrow screen
    instead of being cut off."""
    def table(lines: list[str]) -> str:
        rows = [[cell.strip() for cell in line.split(" | ")] for line in lines]
        width = max(map(len, rows))
        rows = [row + [""] * (width - len(row)) for row in rows]
        head = "".join(f"<th>{cell}</th>" for cell in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows[1:])
        return f'</pre><table class="table text-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><pre>'

    def convert(block: str) -> str:
        lines, out, i = block.split("\n"), [], 0
        while i < len(lines):
            j = i
            while j < len(lines) and lines[j].count(" | ") >= 2:
                j += 1
            if j - i >= 3:
                out.append(table(lines[i:j]))
                i = j
            else:
                out.append(lines[i] + ("\n" if i + 1 < len(lines) else ""))
                i += 1
        return "<pre>" + "".join(out) + "</pre>"

    return _PRE.sub(lambda match: convert(match.group(1)) if " | " in match.group(1) else match.group(0), page)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book")
    parser.add_argument("--execute", default="all", help="all, none, or notebook prefixes like 00,01")
    parser.add_argument("--repository-url", help="the repository every page links to (default: git's origin)")
    parser.add_argument("--branch", default="main", help="the branch launch buttons open (default main)")
    parser.add_argument("--binderhub-url", default="", help="a BinderHub for launch buttons, e.g. https://mybinder.org")
    parser.add_argument("--jupyterhub-url", default="", help="your JupyterHub for launch buttons (needs nbgitpuller)")
    parser.add_argument("--answer-key", action="store_true", help="add a page with the teacher's answers, for "
                        "self-study readers (leave it out for a site your graded class reads)")
    args = parser.parse_args(argv)
    html = build(args.out, args.execute, args.repository_url, args.binderhub_url, args.jupyterhub_url, args.branch,
                 args.answer_key)
    print(f"The course website is in {html}: open {html / 'index.html'} in a browser.")


if __name__ == "__main__":
    sys.exit(main())
