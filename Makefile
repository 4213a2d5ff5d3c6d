# make test : fresh .venv, install rnnx with every extra, run the test suite (--dist loadscope: a module
#             runs on one worker, so a module-scoped fixture such as a tritonserver starts once)
# make demo : fresh .venv, train -> export -> check -> stream -> bench, report in demo/
# make docs : the documentation site (mkdocs build --strict) into site/
# make lint : ruff check, ruff format --check, mypy rnnx (configured in pyproject.toml); make test runs it
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.rnnx-installed
# onnxruntime-node for the JavaScript client's streaming tests (tests/test_js_client.py), where npm exists
JS_DIR   := $(VENV)/js
JS_STAMP := $(JS_DIR)/.installed
ORT_NODE := onnxruntime-node@1.30
# a real tritonserver (2.51, python backend) for tests/triton_server: its own venv, numpy<2
# (numpy 2 makes every output come back empty), rnnx itself without extras (no torch)
TRITON_VENV  := $(VENV)/triton
TRITON_STAMP := $(TRITON_VENV)/.installed
PYTRITON     := nvidia-pytriton==0.7.0

.PHONY: test test-torch demo bench docs lint venv triton-venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[cpu,export,train,dev,executorch]" "$(TORCH)"  # executorch: +2 min, +550 MB
	touch $(STAMP)

$(JS_STAMP): $(STAMP)
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-audit --no-fund --prefix $(JS_DIR) $(ORT_NODE) --onnxruntime-node-install=skip \
	    && touch $(JS_STAMP) \
	    || echo "warning: npm could not install $(ORT_NODE): the JavaScript streaming tests will skip" >&2; \
	else echo "note: no npm here: the JavaScript streaming tests will skip" >&2; fi

triton-venv: $(TRITON_STAMP)

$(TRITON_STAMP): pyproject.toml
	rm -rf $(TRITON_VENV)
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install -q --no-deps $(PYTRITON)
	$(TRITON_VENV)/bin/pip install -q "numpy<2" "onnxruntime>=1.17"
	$(TRITON_VENV)/bin/pip install -q --no-deps -e .
	$(TRITON_VENV)/bin/python -c "import shutil, sys, sysconfig; \
	  root = sysconfig.get_paths()['purelib'] + '/pytriton/tritonserver'; \
	  shutil.copy2(f'{root}/python_backend_stubs/{sys.version_info[0]}.{sys.version_info[1]}/triton_python_backend_stub', \
	               f'{root}/backends/python/')"
	touch $(TRITON_STAMP)

test: $(STAMP) $(JS_STAMP) $(TRITON_STAMP) docs lint
	NODE_PATH=$(abspath $(JS_DIR))/node_modules RNNX_REQUIRE_TRITON=1 $(PY) -m pytest -n 2 --dist loadscope -q

# make test-torch TORCH=2.15.0 : the suite on another torch, in its own venv (.venv-torch-2.15.0); no
# ExecuTorch there (built against torch 2.13: its tests skip, saying so), no Triton/JS servers.
# A pip configuration that caps torch (a constraints file) must be lifted: PIP_CONFIG_FILE=/dev/null
TORCH_PIN  := $(if $(findstring ==,$(TORCH)),$(TORCH),torch==$(TORCH))
TORCH_VENV := .venv-$(subst ==,-,$(TORCH_PIN))
test-torch:
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install -q "$(TORCH_PIN)"
	$(TORCH_VENV)/bin/python -m pip install -q -e ".[cpu,export,train,dev]" "$(TORCH_PIN)"
	$(TORCH_VENV)/bin/python -m pytest -n 2 --dist loadscope -q

# broken links, anchors or API references fail the build; builds offline (no fonts, no inventories)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site  # not --quiet: it hides the warnings --strict counts

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy rnnx

demo: $(STAMP)
	$(VENV)/bin/rnnx demo --out demo

bench: $(STAMP)
	$(PY) benchmarks/bench_runtime.py
	$(PY) benchmarks/bench_serving.py

clean:
	rm -rf $(VENV) demo site .pytest_cache .mypy_cache .ruff_cache
