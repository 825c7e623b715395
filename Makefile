# The two commands of README.rst: `make run` and `make test`. Both create a virtual
# environment on first use and install the project into it from PyPI.
# PYTHON picks the interpreter (`make test PYTHON=python3.12`, or a path); each gets its
# own venv: .venv for the default python3, .venv-X.Y for any other. A pyenv shim whose
# version is not selected refuses to run, so a bare name like python3.13 is then taken
# from pyenv's installed versions (newest patch release; pyenv itself need not be on PATH).
PYTHON ?= python3
PY := $(shell $(PYTHON) -c '' >/dev/null 2>&1 && echo '$(PYTHON)' || \
	ls -d "$$(pyenv root 2>/dev/null || echo "$${PYENV_ROOT:-$$HOME/.pyenv}")"/versions/*/bin/'$(PYTHON)' 2>/dev/null | sort -V | tail -n 1)
PYVER := $(if $(PY),$(shell '$(PY)' -c 'import sys; print("%d.%d" % sys.version_info[:2])'))
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(PYVER))
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test pytest lint bench account wsdl clean

$(VENV)/.installed: setup.py setup.cfg
	@test -n '$(PY)' || { echo 'no Python interpreter "$(PYTHON)" (see docs/operations.rst, Python versions)'; exit 1; }
	'$(PY)' -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/soapservice serve

account: $(VENV)/.installed
	$(BIN)/soapservice account add '$(NAME)' $(if $(EMAIL),--email '$(EMAIL)')

# ruff, mypy --strict on the pure modules ([mypy] in setup.cfg), then two test layers
# (markers applied by tests/conftest.py): the in-process tests first (seconds;
# a broken rule shows before any server starts), then the tests that start soapservice
# processes. Each layer fails on any failure and on collecting no test (pytest exit 5).
# PYTEST_ARGS goes to both (not -m: each layer has its own); `make pytest PYTEST_ARGS=...`
# is one plain run (.ci/run's PostgreSQL pass: PYTEST_ARGS="-m postgres").
test: $(VENV)/.installed
	$(BIN)/ruff check soapservice tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -m 'not server' $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m server $(PYTEST_ARGS)

pytest: $(VENV)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check soapservice tests bench

# The committed WSDLs name the default address; tests/test_wsdl.py fails when they drift.
WSDL_BASE_URL := http://127.0.0.1:8080
wsdl: $(VENV)/.installed
	mkdir -p wsdl
	$(BIN)/soapservice wsdl --base-url $(WSDL_BASE_URL) > wsdl/soapservice.wsdl.tmp
	$(BIN)/soapservice wsdl --soap12 --base-url $(WSDL_BASE_URL) > wsdl/soapservice12.wsdl.tmp
	mv wsdl/soapservice.wsdl.tmp wsdl/soapservice.wsdl
	mv wsdl/soapservice12.wsdl.tmp wsdl/soapservice12.wsdl
	$(BIN)/soapservice wsdl --legacy --base-url $(WSDL_BASE_URL) > wsdl/legacy-soap3.wsdl.tmp
	mv wsdl/legacy-soap3.wsdl.tmp wsdl/legacy-soap3.wsdl

bench: $(VENV)/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-* *.egg-info
