# The two commands of README.rst: `make run` and `make test`. Both create a virtual
# environment on first use and install the project into it from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint bench account wsdl clean

$(VENV)/.installed: setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/soapservice serve

account: $(VENV)/.installed
	$(BIN)/soapservice account add $(NAME)

test: $(VENV)/.installed
	$(BIN)/ruff check soapservice tests bench
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
