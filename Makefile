# hegui: `make demo` runs the main job on embedded defaults; `make test` runs lint, types and tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extras to install; .ci/run adds guard-local where the CPU build of torch is at hand.
EXTRAS ?= test

.PHONY: demo test lint typecheck pytest bench soak clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hegui demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

# Benchmarks print ratios against a baseline measured in the same run; they are not tests.
bench: $(STAMP)
	$(BIN)/python bench/moderation.py
	$(BIN)/python bench/matchers.py
	$(BIN)/python bench/pii.py
	$(BIN)/python bench/classifier.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/accounts_gate.py
	$(BIN)/python bench/ledger_latency.py
	$(BIN)/python bench/labeling.py

# Ten minutes at concurrency 32 (see docs/gateway.md, "Soak"); not part of `make bench`.
soak: $(STAMP)
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) build *.egg-info
