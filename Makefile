# The two commands of the README's quick start: `make demo` and `make test`.
# Both build ./.venv from nothing; torch is pinned to the CPU wheel (unpinned, pip pulls a multi-GB CUDA build).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.installed

$(INSTALL_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[server,test]"
	touch $@

.PHONY: install test demo
install: $(INSTALL_STAMP)

# pytest exits 5 when it collected no test: that is a failure here, and says so.
test: $(INSTALL_STAMP)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; exit $$rc

demo: $(INSTALL_STAMP)
	$(VENV)/bin/relabel demo $(DEMO_ARGS)
