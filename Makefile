# Shoal. `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/shoal/v1/*.proto)
# protoc finds the mypy plugins on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run test test-fast lint proto proto-check bench ghz clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel, not a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[embedder,dev]'
	touch $(STAMP)

install: $(STAMP)

# Start a local cluster (embedder, 2 shard groups x 2 replicas, coordinator)
# with a demo collection loaded; Ctrl-C stops it.
run: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/shoal up --demo

test: $(STAMP) proto-check lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests

# Skip the tests that load the real model.
test-fast: $(STAMP)
	$(PY) -m pytest tests -m 'not model'

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iproto \
	  --python_out=. --grpc_python_out=. \
	  --mypy_out=. --mypy_grpc_out=. \
	  $(PROTOS)

# Fails when the committed generated code differs from what the protos give.
proto-check: $(STAMP)
	rm -rf .proto-check && mkdir -p .proto-check
	$(PY) -m grpc_tools.protoc -Iproto \
	  --python_out=.proto-check --grpc_python_out=.proto-check \
	  --mypy_out=.proto-check --mypy_grpc_out=.proto-check \
	  $(PROTOS)
	diff -r -x __init__.py -x __pycache__ .proto-check/shoal/v1 shoal/v1 \
	  || (echo "generated code is stale: run 'make proto'"; exit 1)
	rm -rf .proto-check

clean:
	rm -rf .proto-check .pytest_cache .mypy_cache .ruff_cache
