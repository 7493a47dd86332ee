# The two commands a fresh clone needs: `make run` (everything, locally, paper trading) and `make test`.
# Both create the virtualenv in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-deploy test-soak bench venv clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "HEAN needs Python >= 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/hean up $(ARGS)

test: $(BIN)/.installed
	$(BIN)/pytest $(ARGS)

# The long chaos soak on demand (`make test` runs 100 s of it): SEED=1 DURATION=600 by default.
SEED ?= 1
DURATION ?= 600
test-soak: $(BIN)/.installed
	$(BIN)/hean chaos --duration $(DURATION) --seed $(SEED) $(ARGS)

# The real-systemd deploy tests (root; `bash tests/deploy/ci-deps.sh` installs their tools): ~3.5 min cold, ~3 warm.
test-deploy: $(BIN)/.installed
	$(BIN)/pytest tests/deploy $(ARGS)

bench: $(BIN)/.installed
	$(BIN)/hean bench bus
	$(BIN)/hean bench executor
	$(BIN)/hean bench reconciler
	$(BIN)/hean bench crash
	$(BIN)/hean bench table

clean:
	rm -rf $(VENV) .hean *.egg-info
