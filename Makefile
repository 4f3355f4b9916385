# ModelPort — `make serve` and `make test` create .venv when missing and install the
# project first. `make serve` stays on the core install (quick on a fresh machine: a model
# framework is needed only for its models); `make test` adds the dev tools, every model
# framework extra and the reference packages the tests compare with.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: serve test lint typecheck install bench clean proto

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable .
	@touch $(STAMP)

FRAMEWORKS_STAMP := $(VENV)/.dev-frameworks-stamp

$(FRAMEWORKS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev,frameworks,convert,parquet]'
	@touch $(FRAMEWORKS_STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/modelport serve $(ARGS)

lint: $(FRAMEWORKS_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(FRAMEWORKS_STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

PROTO := src/modelport/api/grpc/protocol/inference.proto

# The gRPC code is generated from inference.proto, committed, and never edited by hand.
proto: $(FRAMEWORKS_STAMP)
	$(BIN)/python -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src $(PROTO)

bench: $(FRAMEWORKS_STAMP)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
