# The README's two commands: `make demo` (the main job) and `make test` (every check CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The official livekit-agents worker for the agent-protocol interop tests, in a venv of its own: it needs
# livekit 1.1.21 while the main venv pins livekit 1.2.1 (tests/interop/agents/requirements.txt).
AGENTS_VENV := .venv-agents
AGENTS_STAMP := $(AGENTS_VENV)/.installed-stamp
SOURCES := codecs runtime actors rtc testing agents fleet devserver cli tests $(wildcard examples/*.py) $(wildcard benchmarks/*.py) benchmarks/suite

.PHONY: demo test lint typecheck imports pytest serve bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

$(AGENTS_STAMP): tests/interop/agents/requirements.txt
	test -x $(AGENTS_VENV)/bin/python || $(PYTHON) -m venv $(AGENTS_VENV)
	$(AGENTS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AGENTS_VENV)/bin/python -m pip install --quiet -r tests/interop/agents/requirements.txt
	touch $(AGENTS_STAMP)

demo: $(STAMP)
	$(BIN)/greenroom demo

serve: $(STAMP)
	$(BIN)/greenroom serve

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy $(SOURCES)

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) $(AGENTS_STAMP)
	$(BIN)/pytest --cov --cov-report=term-missing:skip-covered

test: lint typecheck imports pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(AGENTS_VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache .coverage
