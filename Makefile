# `make run` and `make test` work from a clean clone: they create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-dev migrate run test test-fast lint clean manage

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

migrate: install
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createcachetable
	$(BIN)/python manage.py collectstatic --noinput -v0

run: migrate
	@bash scripts/run.sh

DATABASE_BANNER = @$(BIN)/python -c "import environ; u = environ.Env().str('DATABASE_URL', default=''); print('make $@: database =', 'PostgreSQL' if u.startswith(('postgres', 'pgsql')) else 'SQLite (set DATABASE_URL=postgres://... for PostgreSQL)')"

# Every test (CI runs this).
test: install-dev
	$(DATABASE_BANNER)
	$(BIN)/pytest $(PYTEST_ARGS)

# Every test but those marked `slow` (they start a process or a server, or take seconds): the quick check while working.
test-fast: install-dev
	$(DATABASE_BANNER)
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# Any management command with the virtualenv's Python: make manage ARGS="create_tenant acme --name Acme"
manage: install
	$(BIN)/python manage.py $(ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var staticfiles
