# ModelPort — `make serve` and `make test` create .venv when missing and install the
# project with its dev extras first; `make test` also installs every model framework extra
# (`make serve` stays on the core install: a framework is needed only for its models).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: serve test lint typecheck install bench clean proto

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	@touch $(STAMP)

FRAMEWORKS_STAMP := $(VENV)/.frameworks-stamp

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
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src $(PROTO)

bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
