# The two set-up commands of the README. Each builds or refreshes .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-oldest venv bench clean

venv:
	@SAMRS_VENV=$(VENV) scripts/bootstrap.sh

demo: venv
	$(VENV)/bin/samrs demo

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# The oldest FiftyOne of the supported range (pyproject.toml): the FiftyOne
# boundary, every stage once and the plugin, in .venv-oldest with its own
# database folder (an older FiftyOne does not open a newer one's database).
OLDEST_TESTS ?= tests/test_fiftyone_io.py tests/test_fast_path_fallbacks.py \
	tests/test_importers.py tests/test_pipeline.py tests/test_evaluation.py \
	tests/test_exporters.py tests/test_load_samrs_fast.py tests/test_operators.py \
	tests/test_plugin_install.py
test-oldest: venv
	@scripts/oldest_fiftyone.sh
	FIFTYONE_DATABASE_DIR=$(CURDIR)/.venv-oldest/database .venv-oldest/bin/python -m pytest \
		-p no:cacheprovider $(OLDEST_TESTS) $(PYTEST_ARGS)

bench: venv
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_segment.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_scale.py

clean:
	rm -rf $(VENV) .venv-oldest demo-output benchmarks/out test-artifacts
