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

.PHONY: install browser test demo
install: $(INSTALL_STAMP) browser

# tests/test_report.py opens the HTML report in headless Chromium: install Debian's when missing and we are root.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: installing Debian's chromium with apt-get (tests/test_report.py opens the report in it; ~300 MB)" >&2; \
		apt-get update -qq && apt-get install -y -qq chromium; fi

# pytest exits 5 when it collected no test: that is a failure here, and says so.
test: $(INSTALL_STAMP) browser
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; exit $$rc

demo: $(INSTALL_STAMP)
	$(VENV)/bin/relabel demo $(DEMO_ARGS)
