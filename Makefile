# The two set-up commands of the README. Each builds or refreshes .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv bench clean

venv:
	@SAMRS_VENV=$(VENV) scripts/bootstrap.sh

demo: venv
	$(VENV)/bin/samrs demo

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_segment.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_scale.py

clean:
	rm -rf $(VENV) demo-output benchmarks/out test-artifacts
