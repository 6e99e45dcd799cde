"""GPU backend: CuPy arrays, cuFFT (plans cached by CuPy), RawKernels from ``*.cu`` files."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import cupy as cp
import numpy as np

from .arrays import fft, ifft

__all__ = ["GpuBackend"]


@lru_cache(maxsize=None)
def _kernel(file: str, name: str, device_id: int) -> cp.RawKernel:
    """Compile ``name`` from ``dsp_kernels/<file>`` once per device (CuPy caches the binary on disk)."""
    source = resources.files("dsp_kernels").joinpath(file).read_text()
    return cp.RawKernel(source, name, options=("-std=c++17",))


@lru_cache(maxsize=None)
def _levels(modulation: str, device_id: int):
    """(levels float32 [L], level_bits uint8 [L, h]) of a constellation, on the device once."""
    from zakotfs.modulation import constellation

    c = constellation(modulation)
    return cp.asarray(c.levels, dtype=cp.float32), cp.asarray(np.ascontiguousarray(c.level_bits))


class GpuBackend:
    name = "gpu"

    def __init__(self) -> None:
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"]
        self.device = name.decode() if isinstance(name, bytes) else str(name)

    @property
    def xp(self):
        return cp

    def asarray(self, a, dtype=None):
        return cp.asarray(a, dtype=dtype)

    def asnumpy(self, a):
        return cp.asnumpy(a)

    fft = staticmethod(fft)
    ifft = staticmethod(ifft)

    def maxlog_llr(self, z, noise_var, constellation):
        """complex [..., n], noise variance (scalar or [..., n]) -> float32 [..., n, q]."""
        z = cp.asarray(z)
        flat = cp.ascontiguousarray(z.reshape(-1), dtype=cp.complex64)
        inv_var = cp.ascontiguousarray(
            cp.broadcast_to(1.0 / cp.asarray(noise_var, dtype=cp.float32), z.shape).reshape(-1))
        levels, level_bits = _levels(constellation.name, cp.cuda.Device().id)
        h = constellation.q // 2
        out = cp.empty((flat.size, constellation.q), dtype=cp.float32)
        threads = 256
        blocks = (flat.size + threads - 1) // threads
        _kernel("maxlog_llr.cu", "maxlog_llr", cp.cuda.Device().id)(
            (blocks,), (threads,),
            (flat, inv_var, levels, level_bits, np.int32(flat.size), np.int32(levels.size),
             np.int32(h), out))
        return out.reshape(z.shape + (constellation.q,))

    def synchronize(self) -> None:
        cp.cuda.get_current_stream().synchronize()
