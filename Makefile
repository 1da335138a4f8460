# Each target is self-sufficient on a fresh machine: it creates .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPAT_STAMP := $(VENV)/.installed-compat

.PHONY: demo test parity lint format bench docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# the training frameworks of docs/compatibility.md, for `make parity` only (timm without its
# torchvision requirement: its schedulers need only torch)
$(COMPAT_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,compat]"
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps timm
	touch $(COMPAT_STAMP)

DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,docs]"
	touch $(DOCS_STAMP)

demo: $(STAMP)
	$(BIN)/polyoptim demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q --doctest-modules tests src/polyoptim

parity: $(COMPAT_STAMP)
	$(BIN)/python -m pytest -q -m "slow or live" -p no:cacheprovider
	# the Paddle and MindSpore golden suites again, every fused step on the Triton kernels,
	# in Triton's interpreter on the CPU as TRITON_INTERPRET=1 runs it (the default run reaches
	# the interpreter through polyoptim's own wrapping of the kernels instead)
	TRITON_INTERPRET=1 POLYOPTIM_KERNEL=triton $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/paddle/test_paddle_golden.py tests/mindspore/test_golden.py tests/test_triton_fused.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/polyoptim bench --out benchmarks/out

# The API reference (docs/api, from the docstrings) into docs/_build/html; warnings fail it.
docs: $(DOCS_STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs/api docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache docs/_build
