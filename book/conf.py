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
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

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
html_theme_options = {
    "use_download_button": False,
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
