"""CUDA kernel files run on the CPU: compiled as C++ with a shim from ``cuda_on_cpu/``."""
import ctypes
import re
import shutil
import subprocess
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

SHIM = Path(__file__).parent / "cuda_on_cpu"


def _c_args(args) -> list:
    """Arrays by pointer (C-contiguous, the kernel's dtype); ints as 64-bit unless given as
    ctypes values; anything else as it is."""
    c_args = []
    for a in args:
        if isinstance(a, np.ndarray):
            assert a.flags.c_contiguous
            c_args.append(a.ctypes.data_as(ctypes.c_void_p))
        elif isinstance(a, int):
            c_args.append(ctypes.c_longlong(a))
        else:
            c_args.append(a)
    return c_args


class CudaOnCpu:
    """One ``dsp_kernels/*.cu`` file as a shared library; ``launch`` runs a kernel over n
    elements, one call per element (kernels with one thread per output, no shared memory:
    ``shim.hpp``)."""

    shim, standard = "shim.hpp", "c++17"

    def __init__(self, source: str, directory: Path, compiler: str):
        text = resources.files("dsp_kernels").joinpath(source).read_text()
        code = directory / f"{Path(source).stem}_{Path(self.shim).stem}.cpp"
        code.write_text(self.rewrite(text))
        library = code.with_suffix(".so")
        subprocess.run([compiler, f"-std={self.standard}", "-O1", "-shared", "-fPIC", "-pthread",
                        "-include", str(SHIM / self.shim), f"-I{SHIM}", str(code), "-o", str(library)], check=True)
        self.lib = ctypes.CDLL(str(library))

    @staticmethod
    def rewrite(text: str) -> str:
        return text

    def launch(self, name: str, n: int, *args, elements=None) -> None:
        """``elements``: run only these of the n (a long launch is slow element by element)."""
        kernel = getattr(self.lib, name)
        c_args = _c_args(args)
        for i in range(n) if elements is None else elements:
            self.lib.shim_set_element(ctypes.c_uint(i))
            kernel(*c_args)


class CudaBlocksOnCpu(CudaOnCpu):
    """A kernel file whose threads cooperate, run a thread block at a time with one OS thread
    per CUDA thread (``blocks.hpp``); dynamic shared memory becomes a pointer into the shim's
    buffer."""

    shim, standard = "blocks.hpp", "c++20"

    @staticmethod
    def rewrite(text: str) -> str:
        return re.sub(r"extern __shared__ (\w+) (\w+)\[\];",
                      r"\1* const \2 = reinterpret_cast<\1*>(shim_dynamic_shared);", text)

    def launch(self, name: str, grid: int, block: int, *args, timeout_s: float = 300.0) -> None:
        """Kernel ``name`` over ``grid`` blocks of ``block`` threads (a multiple of 32). A block
        that does not finish in ``timeout_s`` (a barrier that not every thread reached) fails
        the launch; its threads are daemons, left behind."""
        kernel = getattr(self.lib, name)
        c_args = _c_args(args)

        def thread(t: int) -> None:
            self.lib.shim_set_thread(ctypes.c_uint(t))
            kernel(*c_args)                            # ctypes lets go of the GIL for the call
        for b in range(grid):
            self.lib.shim_begin_block(ctypes.c_uint(b), ctypes.c_uint(block))
            threads = [threading.Thread(target=thread, args=(t,), daemon=True) for t in range(block)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + timeout_s
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            if any(t.is_alive() for t in threads):
                raise RuntimeError(f"{name}: block {b} did not finish in {timeout_s} s")


def _builder(tmp_path_factory, kind):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the CUDA sources for the CPU")
    directory = tmp_path_factory.mktemp("cuda_on_cpu")
    built = {}

    def build(source: str):
        if source not in built:
            built[source] = kind(source, directory, compiler)
        return built[source]
    return build


@pytest.fixture(scope="session")
def cuda_on_cpu(tmp_path_factory):
    """``cuda_on_cpu("windowed.cu")`` -> CudaOnCpu (skips without a C++ compiler)."""
    return _builder(tmp_path_factory, CudaOnCpu)


@pytest.fixture(scope="session")
def cuda_blocks_on_cpu(tmp_path_factory):
    """``cuda_blocks_on_cpu("sparse_fit.cu")`` -> CudaBlocksOnCpu (skips without a C++
    compiler)."""
    return _builder(tmp_path_factory, CudaBlocksOnCpu)
