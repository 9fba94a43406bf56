# Payback developer tasks. A fresh machine needs only python3 (3.11+) and make.
#   make install | run | test | bench | lock | migration m="add disputes"
# Pass extra pytest arguments with PYTEST_ARGS, e.g. make test PYTEST_ARGS="-m 'not postgres'".

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Next revision id for `make migration`: 0001, 0002, ... (one more than the revisions present).
rev ?= $(shell printf '%04d' $$(( $$(ls migrations/versions/*.py 2>/dev/null | wc -l) + 1 )))

.PHONY: install run test bench lock migration

install: $(STAMP)

# Re-run only when the lock file or the project metadata changed.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Payback needs Python 3.11+ ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --disable-pip-version-check --no-deps -e .
	touch $@

run: install
	$(BIN)/payback db upgrade
	$(BIN)/payback users bootstrap
	$(BIN)/payback demo --if-empty
	$(BIN)/payback serve --with-worker --mail-sink mail

test: install
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/refunds.py
	$(BIN)/python bench/gateway.py

# uv is a tool, not a dependency of Payback, so it is not in the lock file itself.
lock: install
	test -x $(BIN)/uv || $(BIN)/python -m pip install --disable-pip-version-check uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes -o requirements.lock

# Autogenerates against PAYBACK_DATABASE_URL (default sqlite:///payback.db), which must be at
# the current head: see migrations/README.
migration: install
	@test -n "$(m)" || { echo 'usage: make migration m="what changed"'; exit 2; }
	$(BIN)/alembic revision --autogenerate --rev-id $(rev) -m "$(m)"
