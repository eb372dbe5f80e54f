# The two commands of the README: `make demo` and `make test` (and `make lint`, which CI runs first).
# Each creates or refreshes .venv from a Python >= 3.12 found on its own.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# test processes (pytest-xdist; one module per process, so module fixtures are built once)
TEST_WORKERS ?= 2

# First Python >= 3.12 found: $PYTHON, python3.13/python3.12 on PATH, then pyenv's versions.
FIND_PYTHON = for c in "$$PYTHON" python3.13 python3.12 python3 \
	  $$(ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do \
	  [ -n "$$c" ] || continue; p=$$(command -v "$$c" 2>/dev/null) || continue; \
	  "$$p" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null && { echo "$$p"; break; }; \
	done

.PHONY: demo test lint venv clean
# what ruff checks and formats (docs/*.md code blocks are run by tests/test_docs.py instead)
LINT_PATHS := ebm_ppl tests benchmarks models docs/dev

$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then \
	  base=$$($(FIND_PYTHON)); \
	  if [ -z "$$base" ]; then \
	    echo "error: ebm_ppl needs Python >= 3.12 and none was found (tried \$$PYTHON, python3.13, python3.12, python3, pyenv versions). Install one or set PYTHON=/path/to/python3.12." >&2; exit 1; \
	  fi; \
	  echo "creating $(VENV) with $$base"; rm -rf $(VENV); "$$base" -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ebm-ppl demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope tests

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) out
