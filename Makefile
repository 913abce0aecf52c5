# Set-up and build for a fresh machine.  The README's two commands:
#   make book   install everything, then tangle-check, execute (profile
#               $(PROFILE)), HTML, PDF and a check of the PDF
#   make test   install everything, then tangle-check, pytest, and the whole
#               book on the `ci` profile (what CI runs)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= laptop
# torch goes in first and on its own: a bare `torch` requirement would pull
# a multi-GB CUDA build.  Override for your machine, e.g. TORCH=torch==2.13.0
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := texlive-xetex texlive-latex-extra \
	texlive-fonts-recommended latexmk fonts-freefont-otf xindy graphviz \
	poppler-utils chromium chromium-driver
MATHJAX := _build/node/node_modules/mathjax/es5

.PHONY: help setup python-deps system-deps mathjax book test tangle clean

help:
	@echo "make book   build the whole book (profile PROFILE=$(PROFILE))"
	@echo "make test   run every check CI runs"
	@echo "make tangle regenerate src/ from the chapters"

setup: python-deps system-deps mathjax

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

python-deps: $(VENV)/.installed

# TeX Live, graphviz and poppler from Debian's packages.
system-deps:
	@if command -v xelatex >/dev/null && command -v latexmk >/dev/null \
	  && command -v dot >/dev/null && command -v pdftoppm >/dev/null \
	  && command -v chromium >/dev/null \
	  && command -v chromedriver >/dev/null \
	  && command -v npm >/dev/null; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "Please install TeX Live (xelatex, latexmk), graphviz, poppler,"; \
	  echo "chromium, chromedriver and npm with your system's package"; \
	  echo "manager."; exit 1; fi; \
	if [ -n "$(SUDO)" ] && ! sudo -n true 2>/dev/null; then \
	  echo "Installing TeX Live etc. needs root: run as root, or allow"; \
	  echo "sudo, or install: $(SYSTEM_PACKAGES) npm"; exit 1; fi; \
	$(SUDO) apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	  $(SYSTEM_PACKAGES) $$(command -v npm >/dev/null || echo npm) \
	  >/dev/null

# MathJax, served by the book itself so that maths renders offline.
$(MATHJAX):
	mkdir -p _build/node
	npm install --silent --no-audit --no-fund --prefix _build/node mathjax@3

mathjax: $(MATHJAX)

book: setup
	$(BIN)/scratchllm book all --profile $(PROFILE)

test: setup
	time $(BIN)/scratchllm book tangle --check
	time $(BIN)/pytest -q
	time $(BIN)/scratchllm book all --profile ci

tangle: python-deps
	$(BIN)/scratchllm book tangle

clean:
	rm -rf _build/executed _build/stage _build/html _build/latex \
	  _build/downloads _build/timings _build/.doctrees _build/jupyter_execute
