# Two commands do everything on a fresh machine (Python >= 3.10 with venv):
#   make demo   -> creates .venv, installs zakotfs, runs `zakotfs demo`
#   make test   -> creates .venv, installs zakotfs[test,kernel-check], runs the test suite
#   make gr-venv -> .venv-gr: GNU Radio's Python (Debian's gnuradio for /usr/bin/python3) with
#                   zakotfs's dependencies, for the GNU Radio blocks (gr_zakotfs) and their tests
PYTHON ?= python3
VENV ?= .venv
# make test also installs the kernel-check extra (CuPy and NVRTC from pip, to compile the
# CUDA kernels without a GPU); KERNEL_CHECK= leaves it out, e.g. where another CuPy
# (cupy-cuda12x) is installed.
KERNEL_CHECK ?= kernel-check
BIN := $(VENV)/bin

GR_PYTHON ?= /usr/bin/python3
GR_VENV ?= .venv-gr

.PHONY: demo test bench-cpu gr-venv clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(BIN)/.kernel-check: $(BIN)/.installed
	$(if $(KERNEL_CHECK),$(BIN)/python -m pip install --quiet -e '.[$(KERNEL_CHECK)]')
	touch $@

# numpy stays at the system's version: GNU Radio's compiled modules are built against it.
$(GR_VENV)/.installed: pyproject.toml
	$(GR_PYTHON) -c 'from gnuradio import gr'
	$(GR_PYTHON) -m venv --system-site-packages $(GR_VENV)
	$(GR_PYTHON) -c 'import numpy; print("numpy==" + numpy.__version__)' > $(GR_VENV)/constraints.txt
	$(GR_VENV)/bin/python -m pip install --quiet -c $(GR_VENV)/constraints.txt -e '.[test]'
	touch $@

gr-venv: $(GR_VENV)/.installed

demo: $(BIN)/.installed
	$(BIN)/zakotfs demo

test: $(BIN)/.kernel-check
	$(BIN)/python -m pytest -q -m "not slow"

bench-cpu: $(BIN)/.installed
	$(BIN)/zakotfs bench --preset demo --frames 50 --backend cpu --json bench/results/cpu_demo.json

clean:
	rm -rf $(VENV) $(GR_VENV) build *.egg-info
