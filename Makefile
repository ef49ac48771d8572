PYTHON ?= python3
PIP := $(PYTHON) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint typecheck bench bench-quick pretrained soak clean

# torch first and pinned: its CPU wheel is on disk here, an unpinned torch pulls a multi-GB CUDA build.
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'

run: install
	lstmtext generate --seed "ROMEO:" --length 400 --random-state 1

test: install
	$(PYTHON) -m pytest -q

lint:
	ruff check lstmtext corpora tests benchmarks
	ruff format --check lstmtext corpora tests benchmarks

typecheck:
	mypy lstmtext

bench: install
	$(PYTHON) -m benchmarks

bench-quick: install
	$(PYTHON) -m benchmarks --quick

soak: install
	$(PYTHON) -m pytest -q -m soak tests

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
