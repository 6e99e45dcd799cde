# Two commands do everything on a fresh machine (Python >= 3.10 with venv):
#   make demo   -> creates .venv, installs zakotfs, runs `zakotfs demo`
#   make test   -> creates .venv, installs zakotfs[test,kernel-check], runs the test suite
PYTHON ?= python3
VENV ?= .venv
# make test also installs the kernel-check extra (CuPy and NVRTC from pip, to compile the
# CUDA kernels without a GPU); KERNEL_CHECK= leaves it out, e.g. where another CuPy
# (cupy-cuda12x) is installed.
KERNEL_CHECK ?= kernel-check
BIN := $(VENV)/bin

.PHONY: demo test bench-cpu clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(BIN)/.kernel-check: $(BIN)/.installed
	$(if $(KERNEL_CHECK),$(BIN)/python -m pip install --quiet -e '.[$(KERNEL_CHECK)]')
	touch $@

demo: $(BIN)/.installed
	$(BIN)/zakotfs demo

test: $(BIN)/.kernel-check
	$(BIN)/python -m pytest -q -m "not slow"

bench-cpu: $(BIN)/.installed
	$(BIN)/zakotfs bench --preset demo --frames 50 --backend cpu --json bench/results/cpu_demo.json

clean:
	rm -rf $(VENV) build *.egg-info
