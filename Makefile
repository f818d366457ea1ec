# Two entry points: `make study` runs the default study, `make test` runs the test suite.
# Each creates (or refreshes) the virtual environment .venv/ by itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# bert-score needs torch; the CPU build keeps the install small. GPU users: see README.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# the 3,955 Open-i report XMLs the IU X-ray tests read ship inside this wheel: fetched once, before
# the tests run, without its dependencies (the package is never installed)
IU_WHEEL := .cache/wheels/torchxrayvision-1.5.7-py3-none-any.whl

.PHONY: study test test-fast bench docs venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

study: $(STAMP)
	$(PY) study/run.py $(ARGS)

$(IU_WHEEL): | $(STAMP)
	$(PY) -m pip download -q --no-deps torchxrayvision==1.5.7 -d $(dir $(IU_WHEEL))

test: $(STAMP) $(IU_WHEEL)
	$(PY) -m pytest $(ARGS)

test-fast: $(STAMP) $(IU_WHEEL)
	$(PY) -m pytest -m "not slow" $(ARGS)

bench: $(STAMP) $(IU_WHEEL)
	$(PY) -m benchmarks $(ARGS)

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache site
