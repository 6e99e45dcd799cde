"""CUDA kernel files run on the CPU: compiled as C++ with ``cuda_on_cpu/shim.hpp``."""
import ctypes
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

SHIM = Path(__file__).parent / "cuda_on_cpu"


class CudaOnCpu:
    """One ``dsp_kernels/*.cu`` file as a shared library; ``launch`` runs a kernel over n
    elements, one call per element (kernels with one thread per output, no shared memory)."""

    def __init__(self, source: str, directory: Path, compiler: str):
        library = directory / (Path(source).stem + ".so")
        subprocess.run([compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-include", str(SHIM / "shim.hpp"),
                        f"-I{SHIM}", "-x", "c++", str(resources.files("dsp_kernels").joinpath(source)),
                        "-o", str(library)], check=True)
        self.lib = ctypes.CDLL(str(library))

    def launch(self, name: str, n: int, *args, elements=None) -> None:
        """Arrays go by pointer (C-contiguous, the kernel's dtype); ints as 64-bit unless
        given as ctypes values. ``elements``: run only these of the n (a long launch is
        slow element by element)."""
        kernel = getattr(self.lib, name)
        c_args = []
        for a in args:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous
                c_args.append(a.ctypes.data_as(ctypes.c_void_p))
            elif isinstance(a, int):
                c_args.append(ctypes.c_longlong(a))
            else:
                c_args.append(a)
        for i in range(n) if elements is None else elements:
            self.lib.shim_set_element(ctypes.c_uint(i))
            kernel(*c_args)


@pytest.fixture(scope="session")
def cuda_on_cpu(tmp_path_factory):
    """``cuda_on_cpu("windowed.cu")`` -> CudaOnCpu (skips without a C++ compiler)."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the CUDA sources for the CPU")
    directory = tmp_path_factory.mktemp("cuda_on_cpu")
    built = {}

    def build(source: str) -> CudaOnCpu:
        if source not in built:
            built[source] = CudaOnCpu(source, directory, compiler)
        return built[source]
    return build
