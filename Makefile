# Shoal. `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/shoal/v1/*.proto)
# etcd's v3 API, copied by proto/import_etcd_protos.py (docs/etcd.md).
ETCD_PROTOS := $(wildcard proto/shoal/etcdpb/*.proto)
# protoc finds the mypy plugins on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install etcd run test test-fast lint proto proto-check bench bench-full bench-1m ghz loadtest clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel, not a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[embedder,dev]'
	touch $(STAMP)

install: $(STAMP) etcd

# The cluster metadata store: Debian's etcd-server (3.4.23) when etcd is missing.
etcd:
	@command -v etcd >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y etcd-server; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update && sudo apt-get install -y etcd-server; \
	  else echo "etcd is not installed and this is not root: run 'apt-get install -y etcd-server'" \
	    "as root (Debian/Ubuntu), or put an etcd 3.4.22+ or 3.5.6+ binary on PATH"; exit 1; fi; }

# Start a local cluster (embedder, 2 shard groups x 2 replicas, coordinator)
# with a demo collection loaded; Ctrl-C stops it.
run: $(STAMP) etcd
	HF_HUB_OFFLINE=1 $(VENV)/bin/shoal up --demo

test: $(STAMP) etcd proto-check lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests

# Skip the tests that load the real model.
test-fast: $(STAMP) etcd
	$(PY) -m pytest tests -m 'not model'

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iproto \
	  --python_out=. --grpc_python_out=. \
	  --mypy_out=. --mypy_grpc_out=. \
	  $(PROTOS) $(ETCD_PROTOS)

# Fails when the committed generated code differs from what the protos give.
proto-check: $(STAMP)
	rm -rf .proto-check && mkdir -p .proto-check
	$(PY) -m grpc_tools.protoc -Iproto \
	  --python_out=.proto-check --grpc_python_out=.proto-check \
	  --mypy_out=.proto-check --mypy_grpc_out=.proto-check \
	  $(PROTOS) $(ETCD_PROTOS)
	for dir in v1 etcdpb; do \
	  diff -r -x __init__.py -x __pycache__ .proto-check/shoal/$$dir shoal/$$dir \
	    || { echo "generated code is stale: run 'make proto'"; exit 1; }; \
	done
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
# to Kubernetes: docs/deploy.md) with the ghz configs in loadtest/ghz/.
GHZ_HOST ?= 127.0.0.1:50051
GHZ_DATA ?= ../shared/data/debian-dev
GHZ_CONFIGS := create_collection upsert search_vector search_text search_batch
# GHZ_PROTO=1: describe the methods from proto/ instead of by server reflection.
GHZ_PROTO_FLAGS := $(if $(GHZ_PROTO),--proto proto/shoal/v1/shoal.proto --import-paths proto)

ghz: $(STAMP)
	@command -v ghz >/dev/null || { \
	  echo "ghz is not installed: get a release from https://github.com/bojand/ghz/releases"; \
	  echo "(or 'go install github.com/bojand/ghz/cmd/ghz@latest'). Without it, 'make loadtest'"; \
	  echo "runs the same configs with 'shoal loadtest --config loadtest/ghz/<name>.json'."; \
	  exit 1; }
	$(PY) -m loadtest.generate --data $(GHZ_DATA)
	for config in $(GHZ_CONFIGS); do \
	  ghz --config loadtest/ghz/$$config.json $(GHZ_PROTO_FLAGS) $(GHZ_HOST) || exit 1; \
	done

# The same configs and data through `shoal loadtest`, for machines without ghz.
loadtest: $(STAMP)
	$(PY) -m loadtest.generate --data $(GHZ_DATA)
	for config in $(GHZ_CONFIGS); do \
	  $(VENV)/bin/shoal loadtest --config loadtest/ghz/$$config.json --host $(GHZ_HOST) || exit 1; \
	done

clean:
	rm -rf .proto-check .pytest_cache .mypy_cache .ruff_cache
