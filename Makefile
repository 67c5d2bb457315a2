# Shoal. `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/shoal/v1/*.proto)
# protoc finds the mypy plugins on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run test test-fast lint proto proto-check bench bench-full bench-1m ghz loadtest clean

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

# Benchmarks (bench/README.md): rewrite their section of docs/benchmarks.md and
# docs/img/*.png. Options: BENCH_ARGS="--only search --runs 5"
BENCH_ARGS ?=
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m bench --quick $(BENCH_ARGS)

bench-full: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m bench --full $(BENCH_ARGS)

bench-1m: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m bench --full-1m $(BENCH_ARGS)

# Load-test a running cluster (`make run` in another terminal, or a port-forward
# to Kubernetes: docs/deploy.md) with the ghz configs in loadtest/ghz/. The data
# is the demo sample kept in the repository unless GHZ_DATA names a data set
# directory (e.g. GHZ_DATA=../shared/data/debian-20k). GHZ_HOST defaults to
# SHOAL_ADDRESS when that is set.
GHZ_HOST ?= $(or $(SHOAL_ADDRESS),127.0.0.1:50051)
GHZ_DATA ?=
GENERATE := $(PY) -m loadtest.generate $(if $(GHZ_DATA),--data $(GHZ_DATA))
GHZ_CONFIGS := create_collection upsert search_vector search_text search_batch
# GHZ_PROTO=1: describe the methods from proto/ instead of by server reflection.
GHZ_PROTO_FLAGS := $(if $(GHZ_PROTO),--proto proto/shoal/v1/shoal.proto --import-paths proto)

ghz: $(STAMP)
	@command -v ghz >/dev/null || { \
	  echo "ghz is not installed: get a release from https://github.com/bojand/ghz/releases"; \
	  echo "(or 'go install github.com/bojand/ghz/cmd/ghz@latest'). Without it, 'make loadtest'"; \
	  echo "runs the same configs with 'shoal loadtest --config loadtest/ghz/<name>.json'."; \
	  exit 1; }
	$(GENERATE)
	for config in $(GHZ_CONFIGS); do \
	  ghz --config loadtest/ghz/$$config.json $(GHZ_PROTO_FLAGS) $(GHZ_HOST) || exit 1; \
	done

# The same configs and data through `shoal loadtest`, for machines without ghz.
loadtest: $(STAMP)
	$(GENERATE)
	for config in $(GHZ_CONFIGS); do \
	  $(VENV)/bin/shoal loadtest --config loadtest/ghz/$$config.json --host $(GHZ_HOST) || exit 1; \
	done

clean:
	rm -rf .proto-check .pytest_cache .mypy_cache .ruff_cache
