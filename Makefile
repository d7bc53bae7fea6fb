# DRIFT: `make demo` runs the main job, `make test` runs the tests. Both set up what is missing first.
.PHONY: setup demo test lint bench clean help
PY := .venv/bin/python
export GRC_BLOCKS_PATH := $(CURDIR)/.prefix/share/gnuradio/grc/blocks

help:
	@echo "make demo   set up (if needed) and run the demo scan"
	@echo "make test   set up (if needed) and run ruff and the test suite"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make clean  remove build outputs (keeps .venv)"

setup:
	@scripts/bootstrap

demo: setup
	@scripts/demo

lint: setup
	@echo "==> ruff"
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .

test: lint
	@echo "==> pytest (tests/ and the gr-drift QA files)"
	@$(PY) -m pytest -q

bench: setup
	@for b in bench/*.py; do echo "==> $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build .prefix var
