# The two commands of README.md. Both create .venv and install Vigil into it when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test install api stack-down clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Vigil needs Python 3.11 (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@scripts/install-system-deps  # GStreamer RTSP server + PyGObject from Debian (RTSP test server)
	@echo "installing Vigil and its dependencies into $(VENV) (first time: a few minutes)…"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[embedded,test]'
	@$(BIN)/python -m vigil.api_build
	@cd proto && npm ci --no-audit --no-fund --silent  # buf (ci: installs the lock file as it is, never rewrites it), the protobuf linter the tests run
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

# The generated gRPC code, brought up to date with proto/ (a no-op when current; servers only check it).
api: $(STAMP)
	@$(BIN)/python -m vigil.api_build

# The main job on the embedded defaults.
run: api
	$(BIN)/vigil demo

# Lint (ruff, configured in pyproject.toml), then the whole test suite against real embedded services.
test: api
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

stack-down: $(STAMP)
	$(BIN)/vigil stack down

clean: stack-down
	rm -rf .vigil
