# make test : fresh .venv, install rnnx with every extra, run the test suite
# make demo : fresh .venv, train -> export -> check -> stream -> bench, report in demo/
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.rnnx-installed

.PHONY: test demo bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[cpu,export,train,dev]" "$(TORCH)"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

demo: $(STAMP)
	$(VENV)/bin/rnnx demo --out demo

bench: $(STAMP)
	$(PY) benchmarks/bench_runtime.py
	$(PY) benchmarks/bench_serving.py

clean:
	rm -rf $(VENV) demo .pytest_cache
