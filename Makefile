# berth: `make quickstart` and `make test` install what is missing, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := busybox-static debootstrap iptables docker-registry skopeo iproute2 openssl \
                docker.io podman chromium

.PHONY: quickstart test test-unit test-root lint deps system-deps venv bench clean

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# compat mode: a plain .pth path entry; the default editable finder costs every
	@# `berth` command ~25 ms of start-up (it imports pathlib and friends)
	$(BIN)/python -m pip install -q -e '.[test,net,remote,registry,service,fast]' \
	    --config-settings editable_mode=compat
	@# byte-compile once: the CLI's start time must not pay for compiling sources
	$(BIN)/python -m compileall -q sdk >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

deps: system-deps venv

quickstart: deps
	$(BIN)/python -m sdk.quickstart

test: deps lint
	$(BIN)/python -m pytest -q tests

test-unit: venv
	$(BIN)/python -m pytest -q tests/unit

lint: venv
	$(BIN)/ruff check sdk tests bench

bench: deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
