# Two commands do everything:  `make lab` opens the course, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup lab test student clean

setup: $(STAMP)

# Rebuilt only when the dependency list changes, so a second run starts at once.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

test: setup
	$(VENV)/bin/python -m pytest

# Student copies for a class: solutions blanked, outputs cleared, teacher-only cells removed.
student: setup
	$(VENV)/bin/python -m helpers.classroom notebooks student

clean:
	rm -rf $(VENV) student test-artifacts
