"""Sphinx configuration of the course website (``make book``; ``book/build.py`` drives it).

The sources Sphinx reads are not the notebooks themselves but the copies ``book/build.py`` prepares
(teacher-only cells dropped, explorer cells turned into still pictures, a "run it yourself" note).
Executed outputs come from jupyter-cache, keyed on each prepared notebook's code (which carries a hash
of helpers/ and data/), so a page is re-executed exactly when what it shows could have changed.
"""
import os

project = "What does a CNN see?"
author = "the course authors"
copyright = "the course authors, MIT licence"

extensions = ["myst_nb", "sphinx-mathjax-offline"]  # the latter copies MathJax 3 into _static: no CDN
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "downloads"]  # downloads/: readers' copies, not pages

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

nb_execution_mode = os.environ.get("BOOK_EXECUTION_MODE", "cache")
nb_execution_cache_path = os.environ.get("BOOK_CACHE", "")
nb_execution_excludepatterns = [p for p in os.environ.get("BOOK_EXCLUDE", "").split(",") if p]
nb_execution_timeout = 900
nb_execution_raise_on_error = True  # a notebook that fails breaks the build instead of showing a traceback
nb_ipywidgets_js = {}  # no widget manager from a CDN: explorers appear as still pictures (book/build.py)
nb_code_prompt_show = "Show the {type}"
nb_code_prompt_hide = "Hide the {type}"

html_theme = "sphinx_book_theme"
html_title = project
html_copy_source = False  # the notebooks themselves are in the repository; offer no teacher's copy here
html_show_sourcelink = False
html_static_path = ["static"]
html_css_files = ["course.css"]
# book/build.py passes the repository (default: git's origin) and, if asked, a BinderHub or JupyterHub to launch on.
repository = os.environ.get("BOOK_REPOSITORY_URL", "")
html_theme_options = {
    "use_download_button": False,  # each chapter offers its reader's copy in its "run it yourself" note instead
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "repository_url": repository,
    "repository_branch": os.environ.get("BOOK_BRANCH", "main"),
    "use_repository_button": bool(repository),
    "path_to_docs": "",  # a page's notebooks/<name>.ipynb is the repository's notebooks/<name>.ipynb
    "launch_buttons": {"binderhub_url": os.environ.get("BOOK_BINDERHUB_URL", ""),
                       "jupyterhub_url": os.environ.get("BOOK_JUPYTERHUB_URL", ""),
                       "notebook_interface": "jupyterlab"},
}


def drop_widget_state(app, env):
    """Executing a notebook stores its widgets' state, which myst-nb writes into the page (most of its size);
    the pages show each explorer as a still picture and load no widget manager, so the state is dropped."""
    for data in getattr(env, "nb_metadata", {}).values():
        data.get("js_files", {}).pop("ipywidgets_state", None)


def setup(app):
    app.connect("env-updated", drop_widget_state)
