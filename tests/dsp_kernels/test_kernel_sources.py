"""Every CUDA kernel file compiles with NVRTC as CuPy's RawKernel compiles it (the same
options and headers), on a machine with no GPU: CuPy and NVRTC are pip packages
(the ``kernel-check`` extra, which ``make test`` installs). Skips where they are missing.
"""
from importlib import resources

import pytest

ARCH = "compute_90"          # H100 / H200; NVRTC needs no device to compile for it


def _nvrtc():
    try:
        from cupy._core.core import assemble_cupy_compiler_options
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
    except Exception as exc:  # ImportError, or the NVRTC library not found
        pytest.skip(f"CuPy's NVRTC is not available ({type(exc).__name__}: {exc})")
    return nvrtc, assemble_cupy_compiler_options


SOURCES = sorted(p.name for p in resources.files("dsp_kernels").iterdir() if p.name.endswith(".cu"))


def test_there_are_kernel_sources():
    assert {"maxlog_llr.cu", "sparse_fit.cu", "windowed.cu"} <= set(SOURCES)


@pytest.mark.parametrize("name", SOURCES)
def test_kernel_source_compiles_with_nvrtc(name):
    nvrtc, assemble = _nvrtc()
    source = resources.files("dsp_kernels").joinpath(name).read_text()
    program = nvrtc.createProgram(source, name, [], [])
    try:
        nvrtc.compileProgram(program, list(assemble(("-std=c++17",))) + [f"-arch={ARCH}"])
    except nvrtc.NVRTCError as exc:
        pytest.fail(f"{name} does not compile: {exc}\n{nvrtc.getProgramLog(program)}")
    assert len(nvrtc.getPTX(program)) > 0


@pytest.mark.parametrize("name", SOURCES)
def test_no_kernel_spills_registers_on_hopper(name):
    """Compiled to sm_90 machine code (NVRTC runs ptxas; ``-Xptxas=-v`` reports each entry
    function's registers, spills and shared memory): no kernel spills registers to local
    memory, a slowdown that would otherwise show only on a GPU."""
    import re

    nvrtc, assemble = _nvrtc()
    source = resources.files("dsp_kernels").joinpath(name).read_text()
    program = nvrtc.createProgram(source, name, [], [])
    nvrtc.compileProgram(program, list(assemble(("-std=c++17",))) + ["-arch=sm_90", "-Xptxas=-v"])
    log = nvrtc.getProgramLog(program)
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", log)]
    assert spills and not any(spills), log
