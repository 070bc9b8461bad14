"""The course website (``make book``, book/build.py): built for real, then read in headless Chromium.

The site is built into a temporary folder with notebooks 00 and 01 executed (about half a minute) and
the others rendered without outputs, so ``make test`` stays short; ``make book`` executes them all
(jupyter-cache keeps the outputs until a notebook's code, helpers/ or data/ change). The pages are then
served on 127.0.0.1 and opened in Chromium with every other request refused (the site must work
offline): on the two executed pages the math is typeset by MathJax and every picture loads; on every
chapter's page nothing overflows sideways, no HTML tag shows as text, the repository link, the launch
buttons and the chapter's download are there, and no widget state or nbgrader marker was shipped. Every
link between the site's own pages resolves. Screenshots go to ``test-artifacts/book/``.

Without Sphinx and myst-nb (``pip install -e '.[book]'``) or without Chromium the build or browser
tests skip, except under CI, where they fail.
"""
import functools
import http.server
import importlib.util
import re
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from browser.lab import CHROMIUM_FLAGS, require_chromium, unavailable

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("book_build", REPO / "book" / "build.py")
book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book)
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ARTIFACTS = REPO / "test-artifacts" / "book"
EXECUTED = ("00", "01")
WEBSITE_TEST = "the website test"
REPOSITORY = "https://github.com/example/cnn-seeing"
BINDERHUB, JUPYTERHUB = "https://mybinder.org", "https://hub.example.edu"


def tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


# ---- the prepared copies (no Sphinx needed) -------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_prepared_copy(path):
    original = nbformat.read(path, as_version=4)
    copy = book.book_notebook(original, path, "0" * 64)
    assert not any(book.TEACHER_TAG in tags(cell) for cell in copy.cells)
    teacher_text = [cell.source for cell in original.cells if book.TEACHER_TAG in tags(cell)]
    assert not any(text in cell.source for text in teacher_text for cell in copy.cells)
    assert f"notebooks/{path.name}" in copy.cells[2].source and "make lab" in copy.cells[2].source
    explorers = [i for i, cell in enumerate(copy.cells) if book.EXPLORER_TAG in tags(cell)]
    assert explorers, f"{path.name} has no explorer cell"
    for i in explorers:
        assert "remove-output" in tags(copy.cells[i])
        note, still = copy.cells[i + 1], copy.cells[i + 2]
        assert note.cell_type == "markdown" and "interactive in JupyterLab" in note.source
        assert still.cell_type == "code" and ".picture.value" in still.source and "remove-input" in tags(still)
    kept = [cell for cell in original.cells if book.TEACHER_TAG not in tags(cell)]
    shown = [book.boxes_as_admonitions(c.source) if c.cell_type == "markdown" else book.without_markers(c.source)
             for c in kept]
    assert shown == [c.source for c in copy.cells if not c.get("id", "").startswith("book-")]
    assert not any("### BEGIN SOLUTION" in c.source or "### END SOLUTION" in c.source for c in copy.cells)
    for cell in copy.cells:
        if cell.cell_type == "markdown":
            assert not html_problems(cell.source), f"{path.name}: {html_problems(cell.source)} in\n{cell.source}"
    reader = book.reader_notebook(original)
    assert [c.source for c in reader.cells] == [book.without_markers(c.source) if c.cell_type == "code" else c.source
                                                for c in kept]
    assert not any(c.get("outputs") for c in reader.cells) and "widgets" not in reader.metadata
    assert book.book_notebook(original, path, "0" * 64) == copy, "the same notebook must give the same copy"


class _Tags(HTMLParser):
    VOID = {"br", "img", "hr", "input", "meta", "link", "source", "wbr"}

    def __init__(self):
        super().__init__()
        self.open, self.problems = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()


def html_problems(markdown: str) -> list[str]:
    """Raw HTML in one markdown cell that a page cannot hold: a tag left open or closed out of turn, or a
    heading inside an open tag (Sphinx makes the heading a section, which splits the tag across two)."""
    text = re.sub(r"```.*?```|`[^`\n]*`", "", markdown, flags=re.DOTALL)  # code is shown, not parsed
    parser, problems = _Tags(), []
    for line in text.splitlines(keepends=True):
        if parser.open and re.match(r"#{1,6}\s", line):
            problems.append(f"heading {line.strip()!r} inside <{parser.open[-1]}>")
        parser.feed(line)
    return problems + parser.problems + [f"<{tag}> never closed" for tag in parser.open]


def test_html_problems_are_found_and_the_site_turns_a_box_into_an_admonition():
    box = '<div style="border-left: 4px solid red">\n\n### Common mistake\n\nText with `<div>` in code.\n</div>'
    assert html_problems(box) == ["heading '### Common mistake' inside <div>"]
    assert html_problems("<div>\nopen") == ["<div> never closed"] and html_problems("a</span>")
    converted = book.boxes_as_admonitions(box)
    assert converted.startswith("::::{admonition} Common mistake\n:class: warning") and not html_problems(converted)
    assert "Text with `<div>` in code." in converted


def test_a_printed_table_becomes_a_table():
    printed = ("<pre><span></span>                    method | deletion ↓  rank | insertion ↑  rank | hits\n"
               "                       CAM |   0.120      3  |   0.510       1\n"
               "                  Grad-CAM |   0.110      2  |   0.500       2  |   3/3\n"
               "best by deletion: Grad-CAM</pre>")
    page = book.text_tables_as_tables(printed)
    assert page.count("<tr>") == 3 and "<th>deletion ↓  rank</th>" in page and "<td>Grad-CAM</td>" in page
    assert page.count("<th>") == 4 and "<td>0.120      3</td><td>0.510       1</td><td></td>" in page
    assert "best by deletion: Grad-CAM</pre>" in page and "<pre>" in page
    assert book.printed_markup_as_markup("<pre>S&lt;sub&gt;c&lt;/sub&gt; = 1</pre>") == "<pre>S<sub>c</sub> = 1</pre>"


def test_the_answer_key_holds_every_chapters_teacher_notes_and_is_left_out_by_default(tmp_path):
    page = book.answer_key(NOTEBOOKS)
    for path in NOTEBOOKS:
        notes = [c.source for c in nbformat.read(path, 4).cells if book.TEACHER_TAG in tags(c)]
        assert all(note in page for note in notes), path.name
    assert page.startswith("# Answer key") and "only after you have tried" in page
    book.prepare(tmp_path)
    assert not (tmp_path / "answers.md").exists() and "answers" not in (tmp_path / "index.md").read_text()
    book.prepare(tmp_path, with_answer_key=True)
    assert (tmp_path / "answers.md").read_text() == page and "\nanswers\n" in (tmp_path / "index.md").read_text()


def test_explorer_cell_that_displays_nothing_is_refused():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"),
                                               nbformat.v4.new_code_cell("explorer = make()")])
    notebook.cells[1].metadata["tags"] = [book.EXPLORER_TAG]
    with pytest.raises(ValueError, match="must end with the explorer it displays"):
        book.book_notebook(notebook, Path("x.ipynb"), "0" * 64)


def test_unknown_notebook_prefix_is_refused(tmp_path):
    pytest.importorskip("sphinx")
    with pytest.raises(ValueError, match="no notebook starts with"):
        book.build(tmp_path, execute="00,99")


# ---- the built site ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for module in ("sphinx", "myst_nb", "sphinx_book_theme"):
        try:
            __import__(module)
        except ImportError:
            unavailable(f"{module} is not installed: pip install -e '.[book]' (make book does it)", WEBSITE_TEST)
    out = tmp_path_factory.mktemp("book")
    run = subprocess.run([sys.executable, str(REPO / "book" / "build.py"), "--out", str(out),
                          "--execute", ",".join(EXECUTED), "--repository-url", REPOSITORY,
                          "--binderhub-url", BINDERHUB, "--jupyterhub-url", JUPYTERHUB],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"the website did not build:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return out / "html"


class Links(HTMLParser):
    """Every href and src in a page, and every id (the anchors a link may point to)."""

    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append((tag, name, value))
            if name == "id" and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def parsed(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text())
    return links


def test_every_notebook_is_a_page(site):
    for path in NOTEBOOKS:
        assert (site / "notebooks" / f"{path.stem}.html").exists(), f"no page for {path.name}"
    index_links = {value for _, _, value in parsed(site / "index.html").links}
    assert {f"notebooks/{path.stem}.html" for path in NOTEBOOKS} <= index_links


def test_no_teacher_only_text_on_the_site(site):
    teacher = [cell.source.splitlines()[2] for path in NOTEBOOKS for cell in nbformat.read(path, 4).cells
               if book.TEACHER_TAG in tags(cell) and len(cell.source.splitlines()) > 2]
    assert teacher
    built = {page: page.read_text(errors="replace") for page in site.rglob("*") if page.is_file()
             and page.suffix in (".html", ".js", ".txt", ".ipynb", ".md")}
    for line in teacher:
        fragment = line.strip()[:40]
        assert not [page for page, text in built.items() if fragment in text], f"teacher-only text {fragment!r} is on the site"


def test_internal_links_resolve_and_nothing_loads_from_the_network(site):
    pages = sorted(page for page in site.rglob("*.html") if "_static" not in page.relative_to(site).parts)
    broken, remote = [], []
    for page in pages:
        for tag, attribute, value in parsed(page).links:
            url = urlsplit(value)
            if url.scheme in ("http", "https") or value.startswith("//"):
                if attribute == "src" or tag == "link":  # a script, picture, style or font from the network
                    remote.append(f"{page.relative_to(site)}: <{tag} {attribute}={value}>")
                continue
            if url.scheme or not (url.path or url.fragment):  # mailto:, javascript:, data:, bare "#"
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {value}")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in parsed(target).ids:
                broken.append(f"{page.relative_to(site)}: {value} (no such anchor)")
    assert len(pages) > len(NOTEBOOKS)
    assert not broken, "broken links:\n" + "\n".join(broken[:30])
    assert not remote, "loaded from the network:\n" + "\n".join(remote[:30])


@pytest.fixture(scope="module")
def served(site):
    """The site on 127.0.0.1 (fonts and scripts behave as on a real web server, unlike file://)."""
    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = require_chromium(WEBSITE_TEST)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium")), executable_path=chromium, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 1000})
        try:
            yield context
        finally:
            context.close()


_MATH = """async () => {
    if (!window.MathJax) return {mathjax: false};
    await MathJax.startup.promise;
    return {mathjax: true,
            source: document.querySelectorAll('.math').length,
            typeset: document.querySelectorAll('.math mjx-container').length,
            errors: document.querySelectorAll('mjx-merror').length,
            raw: [...document.querySelectorAll('.math')].filter(m => !m.querySelector('mjx-container'))
                 .slice(0, 3).map(m => m.textContent)};
}"""
_PICTURES = """() => [...document.querySelectorAll('article img')].map(img =>
    ({src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0}))"""
# What follows each explorer's note: the cell holding the explorer's still picture.
_STILLS = """() => [...document.querySelectorAll('article .admonition')]
    .filter(note => note.textContent.includes('interactive in JupyterLab'))
    .map(note => [...(note.nextElementSibling?.querySelectorAll('img') ?? [])]
        .filter(img => img.complete && img.naturalWidth > 0).length)"""


@pytest.mark.parametrize("stem", [path.stem for path in NOTEBOOKS if path.name.startswith(EXECUTED)])
def test_page_in_chromium(stem, served, browser):
    refused, failed = [], []
    page = browser.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(served)
               else (refused.append(route.request.url), route.abort()))
    page.on("requestfailed", lambda request: failed.append(request.url))
    try:
        response = page.goto(f"{served}/notebooks/{stem}.html", wait_until="load")
        assert response.ok
        math = page.evaluate(_MATH)
        pictures, stills = page.evaluate(_PICTURES), page.evaluate(_STILLS)
        page.wait_for_load_state("networkidle")
        text = page.inner_text("article")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
    finally:
        page.close()
    assert not refused, f"the page asked the network for {refused}"
    assert not [url for url in failed if url not in refused], f"requests failed: {failed}"
    assert math["mathjax"], "MathJax did not load"
    assert math["source"] > 0 and math["typeset"] == math["source"] and not math["errors"], math
    assert len(pictures) >= 2 and all(p["loaded"] for p in pictures), pictures
    assert f"notebooks/{stem}.ipynb" in text and "make lab" in text
    assert stills and all(count == 1 for count in stills), f"explorer notes and their still pictures: {stills}"
    assert "VBox(" not in text and "Error displaying widget" not in text, "a widget's output reached the page"


_READS_WELL = """() => ({
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    wide: [...document.querySelectorAll('article *')].filter(e => e.getBoundingClientRect().right >
          document.documentElement.clientWidth + 1 && !e.closest('.cell_output, pre, .highlight, table, mjx-container'))
          .slice(0, 3).map(e => e.tagName + '.' + e.className),
    text: document.querySelector('article').innerText,
    links: [...document.querySelectorAll('a')].map(a => a.href),
    widgetState: document.querySelectorAll('script[type*="widget-state"]').length,
})"""


@pytest.mark.parametrize("stem", [path.stem for path in NOTEBOOKS])
def test_every_chapter_page_reads_well(stem, site, served, browser):
    page = browser.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(served) else route.abort())
    try:
        page.goto(f"{served}/notebooks/{stem}.html", wait_until="load")
        found = page.evaluate(_READS_WELL)
        if found["overflow"] > 0:
            page.screenshot(path=str(ARTIFACTS / f"{stem}-overflow.png"), full_page=True)
    finally:
        page.close()
    assert found["overflow"] <= 0, f"the page is {found['overflow']} px wider than the window: {found['wide']}"
    shown = re.findall(r"</?(?:div|span|sub|sup|b|i|p|br|table|tr|td|img|a)\b[^>\n]*>", found["text"])
    assert not shown, f"HTML tags shown as text: {shown[:5]}"
    assert "### BEGIN SOLUTION" not in found["text"] and not found["widgetState"]
    assert any(link.startswith(REPOSITORY) for link in found["links"]), "no link to the repository"
    launch = [link for link in found["links"] if link.startswith((BINDERHUB, JUPYTERHUB))]
    assert len(launch) == 2 and all(f"notebooks/{stem}.ipynb" in link for link in launch), launch
    downloads = [link for link in found["links"] if link.endswith(f"/{stem}.ipynb") and "_downloads" in link]
    assert downloads, "no download of the chapter's notebook"
    copy = nbformat.reads(next(site.glob(f"_downloads/*/{stem}.ipynb")).read_text(), as_version=4)
    assert not any(book.TEACHER_TAG in tags(cell) or "### BEGIN SOLUTION" in cell.source for cell in copy.cells)


def test_environment_yml_lists_the_book_extra():
    import tomllib

    import yaml

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["book"]
    listed = []
    for entry in yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]:
        listed += entry["pip"] if isinstance(entry, dict) else [entry]
    listed = {spec.split("#")[0].replace(" ", "") for spec in listed}
    assert {spec.replace(" ", "") for spec in extra} <= listed, f"environment.yml lacks some of {extra}"
