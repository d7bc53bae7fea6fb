# DRIFT: `make demo` runs the main job, `make test` runs the tests. Both set up what is missing first.
.PHONY: setup demo test lint bench clean help images stack-up stack-down
PY := .venv/bin/python
export GRC_BLOCKS_PATH := $(CURDIR)/.prefix/share/gnuradio/grc/blocks

help:
	@echo "make demo   set up (if needed) and run the demo scan"
	@echo "make test   set up (if needed) and run ruff and the test suite"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make images      build the container images (podman here, docker where present)"
	@echo "make stack-up    the compose stack: coordinator + databases (SIM_NODES=N adds simulated nodes)"
	@echo "make stack-down  stop the compose stack (its volumes are kept)"
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

images: setup
	@scripts/containers images

SIM_NODES ?= 0
stack-up: images
	@scripts/stack up $(SIM_NODES)

stack-down:
	@scripts/stack down

clean:
	rm -rf build .prefix var
