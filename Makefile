# Two commands do everything:  `make lab` opens the course, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
BOOK_STAMP := $(VENV)/.book-installed

.PHONY: setup setup-browser lab test check student bench book clean

setup: $(STAMP)

# Rebuilt only when the dependency list changes, so a second run starts at once.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

# The browser test (tests/test_browser.py) drives Debian's Chromium; Playwright's own download is not used.
# Installed where apt-get is here and we are root (CI); elsewhere that test skips and says why.
setup-browser:
	@if command -v chromium >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium fonts-liberation >/dev/null) \
		|| echo "Could not install chromium with apt-get: the browser test will skip (fail under CI)."; \
	else echo "No chromium, and no apt-get as root to install it: the browser test will skip."; fi

# PASSIVE: torch's idle threads yield the cores instead of spinning, which matters when a kernel,
# a browser and pytest share two of them. DEVICE=cuda runs the unit tests' models and the notebooks there.
DEVICE ?= $(or $(CNN_SEEING_DEVICE),cpu)
# pytest-xdist runs one worker per core (JOBS=1 for one process); --dist loadfile keeps each file on one worker,
# so a notebook's kernel, a browser session or the nbgrader course is never split between two.
JOBS ?= auto
PYTEST := OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/python -m pytest --device=$(DEVICE) -n $(JOBS) --dist loadfile --no-loadscope-reorder
test: setup setup-browser $(BOOK_STAMP)
	$(PYTEST)

# The quick loop while editing helpers/: the unit tests only (no notebook, browser, website, classroom, wheel or
# torchrun runs; tests/conftest.py marks those slow). make test still runs everything before a commit.
check: setup
	$(PYTEST) -m "not slow" tests

# The nbgrader course in course/ (TEACHING.md): source/<notebook>/ from notebooks/, then nbgrader
# generate_assignment writes the student copies to course/release/. nbgrader calls alembic through PATH.
CLASSROOM_STAMP := $(VENV)/.classroom-installed
$(CLASSROOM_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e ".[test,classroom]"
	touch $(CLASSROOM_STAMP)

student: $(CLASSROOM_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m helpers.classroom student --course course

# Speed against the passes each method needs and against captum, torchcam and pytorch-grad-cam
# (benchmarks/README.md); the table lands in benchmarks/results/.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(VENV)/bin/python benchmarks/run.py --out benchmarks/results

# The course as a website in build/book/html (book/build.py): every notebook executed, outputs cached by
# jupyter-cache in build/book/jupyter_cache until a notebook, helpers/ or data/ change.
$(BOOK_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e ".[test,book]"
	touch $(BOOK_STAMP)

book: $(BOOK_STAMP)
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/python book/build.py --out build/book

clean:
	rm -rf $(VENV) course student test-artifacts build
