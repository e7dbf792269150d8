# Two commands on a fresh machine: `make demo` and `make test` (and `make docs` for the docs site).
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
RATE ?= 2000
DATASET ?= synthetic
CHALLENGER ?= small-als
BOT_DATASET ?= movielens
BIN := $(VENV)/bin
# One venv, three stamps: the demo needs the runtime dependencies only (`.`); the tests, lint and
# type checks add the development tools (`.[dev]`) to the same venv; the docs site adds mkdocs
# (`.[docs]`).
RUNTIME := $(VENV)/.runtime
DEV := $(VENV)/.dev
DOCS := $(VENV)/.docs

.PHONY: demo bot test test-deps lint typecheck bench docs venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# .[dev] includes everything `.` installs, so it also brings the runtime stamp up to date.
$(DEV): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(RUNTIME) $@

# .[docs] includes everything `.` installs too.
$(DOCS): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $(RUNTIME) $@

venv: $(DEV)

## The whole system on this machine: broker, builder, server, synthetic traffic. Ctrl-C stops it.
## DATASET=movielens downloads MovieLens first when no copy is here (`recommender datasets`).
demo: $(RUNTIME)
	@if [ "$(DATASET)" != synthetic ]; then $(BIN)/recommender datasets fetch --if-missing $(DATASET); fi
	$(BIN)/recommender demo --port $(PORT) --rate $(RATE) --dataset $(DATASET) --challenger $(CHALLENGER)

## The demo replaying a data set with titles, and the Telegram bot against it once the server
## answers /ready: TELEGRAM_BOT_TOKEN=123456:ABC... make bot [BOT_DATASET=anime]. Ctrl-C stops both.
## BOT_ARGS passes options to `recommender bot` (e.g. --telegram-url for a local Bot API server).
bot: $(RUNTIME)
	@if [ -z "$$TELEGRAM_BOT_TOKEN" ]; then \
	  echo "make bot: set TELEGRAM_BOT_TOKEN to the token @BotFather gave your bot" >&2; exit 2; fi
	$(BIN)/recommender datasets fetch --if-missing $(BOT_DATASET)
	@$(BIN)/recommender demo --port $(PORT) --rate $(RATE) --dataset $(BOT_DATASET) & demo=$$!; \
	trap 'kill $$demo 2>/dev/null; wait $$demo' EXIT; trap 'exit 130' INT TERM; \
	until $(BIN)/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(PORT)/ready', timeout=2)" 2>/dev/null; do \
	  kill -0 $$demo 2>/dev/null || exit 1; sleep 1; done; \
	$(BIN)/recommender bot --server http://127.0.0.1:$(PORT) $(BOT_ARGS)

## Debian's Chromium for the browser test (root installs it; others are told how).
test-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "note: the browser test needs Debian's chromium: sudo apt-get install chromium chromium-driver"; \
	  fi; \
	fi

## The whole test suite: lint, types, unit and integration tests (real broker, real processes,
## a real browser).
test: $(DEV) test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy recommender
	$(BIN)/pytest

lint: $(DEV)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(DEV)
	$(BIN)/mypy recommender

bench: $(DEV)
	$(BIN)/python bench/run.py

## The documentation site (mkdocs.yml, docs/) into site/: open site/index.html. Offline (nothing
## fetched), and --strict: a broken internal link or a missing anchor fails the build.
## (NO_MKDOCS_2_WARNING: mkdocs-material's end-of-life notice, printed on every build.)
docs: $(DOCS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache *.egg-info site
