# intx-rig: `make demo` sets everything up and gives one verdict; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
RIG    := $(VENV)/bin/rig
PYTEST := $(VENV)/bin/pytest
# CI runs every tier: all of them fit in its 90 minutes on 2 cores.
TEST_MARKERS ?= unit or integration or e2e
# Tests that boot guests run side by side, as many as the machine holds (one per core, as
# memory allows: tests/conftest.py); the rig_chain tests share one worker. PARALLEL= : one at a time.
PARALLEL ?= -n auto --dist loadgroup

.PHONY: venv host setup demo lint test test-unit test-integration test-e2e bench matrix nightly clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	PYTHON=$(PYTHON) scripts/bootstrap-host
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Host packages (apt; compilers for the rebuilt vfio module): installed when root.
host: venv
	$(RIG) setup --host-only

setup: venv
	$(RIG) setup

demo: setup
	$(RIG) run --arch ppc64 --ic xive --duration 30

# ruff (style, imports, likely bugs) and mypy (strict on the packages listed in pyproject.toml).
# make test runs them too, as unit tests (tests/test_lint.py), beside the other tests.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# --durations: what each slow test costs, in every run's output (CI's too).
test: host
	$(PYTEST) $(PARALLEL) --durations=25 -m "$(TEST_MARKERS)"

test-unit: venv
	$(PYTEST) -m unit

test-integration: host
	$(PYTEST) $(PARALLEL) -m integration

test-e2e: host
	$(PYTEST) $(PARALLEL) -m e2e

bench: venv
	$(VENV)/bin/python bench/boot.py
	$(VENV)/bin/python bench/verdict.py
	$(VENV)/bin/python bench/vfio_user_dma.py
	$(VENV)/bin/python bench/parallel.py
	$(VENV)/bin/python bench/startup.py

# Every runnable cell once, side by side as the machine allows.
matrix: setup
	$(RIG) matrix

# Every cell 5 times, the TCG-inside-TCG ones too (hours on 2 cores; shard it on CI:
# .github/workflows/nightly.yml).
nightly: setup
	$(RIG) matrix --repeat 5 --slow --scenarios

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
