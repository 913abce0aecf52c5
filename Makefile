# Set-up and build for a fresh machine.  The README's two commands:
#   make book   install everything, then tangle-check, execute (profile
#               $(PROFILE)), HTML, PDF and a check of the PDF
#   make test   install everything, then tangle-check, both test tiers, and
#               the whole book on the `ci` profile (what CI runs)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= laptop
# torch goes in first and on its own: a bare `torch` requirement would pull
# a multi-GB CUDA build.  Override for your machine, e.g. TORCH=torch==2.13.0
TORCH ?= torch==2.13.0
# The package's extras to install.  `gguf` (llama-cpp-python, compiled from
# source: tens of minutes) is left out unless asked for, as in
# EXTRAS=dev,gguf make book; without it chapter 13 skips its llama.cpp check.
EXTRAS ?= dev
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# fonts-symbola and fonts-wqy-microhei (8 MB together): emoji, CJK and
# Hangul in the PDF (book/latex/scratchllm.sty).
SYSTEM_PACKAGES := texlive-xetex texlive-latex-extra \
	texlive-fonts-recommended latexmk fonts-freefont-otf xindy graphviz \
	poppler-utils g++ chromium chromium-driver fonts-symbola \
	fonts-wqy-microhei
MATHJAX := _build/node/node_modules/mathjax/es5
# C++ extensions (DeepSpeed's CPU ops) are compiled into the project, not
# into the user's ~/.cache/torch_extensions; chapter 9's launcher uses the
# same folder, so the tests and the book find what set-up built.
export TORCH_EXTENSIONS_DIR := $(CURDIR)/_build/torch_extensions
SHM_OP := $(TORCH_EXTENSIONS_DIR)/deepspeed_shm_comm/deepspeed_shm_comm.so

.PHONY: help setup python-deps ops system-deps mathjax book test tangle \
	clean FORCE

help:
	@echo "make book   build the whole book (profile PROFILE=$(PROFILE))"
	@echo "make test   run every check CI runs"
	@echo "make tangle regenerate src/ from the chapters"

setup: python-deps system-deps mathjax

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# .extras holds the EXTRAS of the last install: asking for others
# reinstalls.
$(VENV)/.extras: FORCE | $(BIN)/python
	@echo "$(EXTRAS)" | cmp -s - $@ || echo "$(EXTRAS)" > $@

$(VENV)/.installed: pyproject.toml $(VENV)/.extras | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

# DeepSpeed compiles its shared-memory collectives the first time a CPU
# process needs them (over a minute of CPU time; on a busy machine longer
# than a test's timeout): compile them here, once.  A no-op when deepspeed
# is absent or the ops are up to date.
$(SHM_OP): $(VENV)/.installed | system-deps
	$(BIN)/scratchllm distributed build-ops

ops: $(SHM_OP)

python-deps: $(VENV)/.installed ops

# TeX Live, fonts, graphviz, poppler and g++ (for DeepSpeed's ops) from
# Debian's packages.
system-deps:
	@if command -v xelatex >/dev/null && command -v latexmk >/dev/null \
	  && command -v dot >/dev/null && command -v pdftoppm >/dev/null \
	  && command -v npm >/dev/null && command -v g++ >/dev/null \
	  && command -v chromium >/dev/null \
	  && command -v chromedriver >/dev/null \
	  && fc-list | grep -q Symbola \
	  && fc-list | grep -q "WenQuanYi Micro Hei"; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "Please install TeX Live (xelatex, latexmk), graphviz, poppler,"; \
	  echo "g++, chromium, chromedriver and npm with your system's"; \
	  echo "package manager."; exit 1; fi; \
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

# The fast tier, then the slow one (pyproject.toml); exit code 5 means the
# slow tier collected no test, which is not a failure.
test: setup
	time $(BIN)/scratchllm book tangle --check
	time $(BIN)/pytest -q
	time $(BIN)/pytest -q -m slow || [ $$? -eq 5 ]
	time $(BIN)/scratchllm book all --profile ci

tangle: python-deps
	$(BIN)/scratchllm book tangle

clean:
	rm -rf _build/executed _build/stage _build/html _build/latex \
	  _build/downloads _build/timings _build/.doctrees _build/jupyter_execute

# The release: wheel and sdist, checked in a clean venv that gets only the
# package's core dependencies (`scratchllm --help` and a short generate),
# collected with the PDF and an HTML archive in _build/release/.  It does
# not build the book: run `make book` first (it says so when you did not).
.PHONY: release
release: python-deps
	TORCH="$(TORCH)" $(BIN)/scratchllm book release
