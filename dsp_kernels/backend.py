"""Backend selection: ``get_backend("auto" | "cpu" | "gpu")``.

``auto`` takes the GPU when CuPy imports and a device answers, else the CPU with a
one-line notice on stderr; ``gpu`` where none works raises :class:`BackendError`
with the reason (no traceback reaches the user from the CLI).
"""
from __future__ import annotations

import sys
from typing import Protocol

__all__ = ["Backend", "BackendError", "get_backend", "gpu_available"]


class BackendError(RuntimeError):
    """The requested backend cannot run here."""


class Backend(Protocol):
    """What every backend offers. Arrays are ``xp`` arrays; host arrays are numpy."""

    name: str          # "cpu" or "gpu"
    device: str        # human description, e.g. "NVIDIA H100 80GB HBM3" or "CPU x86_64, 2 cores"

    @property
    def xp(self): ...

    def asarray(self, a, dtype=None): ...
    def asnumpy(self, a): ...
    def fft(self, a, axis: int = -1, norm: str | None = None, n: int | None = None): ...
    def ifft(self, a, axis: int = -1, norm: str | None = None, n: int | None = None): ...
    def maxlog_llr(self, z, noise_var, constellation): ...
    def sparse_delay_fit(self, coeffs, floor, tau0: float, resolution: int, coarse_stride: int, n_atoms: int,
                         lo: float, hi: float, L: int): ...   # the accurate estimator's delay fit; None: not here
    def sparse_path_fit(self, coeffs, floor, tau0: float, resolution: int, coarse_stride: int, n_paths: int,
                        lo: float, hi: float, L: int, tones, coarse, tone_ratio: int, rounds: int, final_rounds: int,
                        delay_steps, tone_half: int): ...   # the accurate estimator's path fit; None: not here
    def atom_residual(self, coeffs, amplitudes, delays, tau0: float, L: int): ...   # atoms' residual; None: not here
    def data_leak(self, amplitudes, delays, gram, lags, weights, L: int): ...   # data in the snapshots; None: not here
    def atom_taps_fft(self, amplitudes, delays, L: int, dtype=None): ...   # C_p(f) of delay atoms; None: not here
    def synchronize(self) -> None: ...


def gpu_available() -> tuple[bool, str]:
    """(True, device name) when CuPy works with a GPU, else (False, the reason)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library that fails to load
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"no CUDA device answers: {exc}"
    if count < 1:
        return False, "CuPy found no CUDA device"
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return True, name


def get_backend(kind: str = "auto", *, quiet: bool = False) -> Backend:
    """Return the CPU or GPU backend.

    Parameters
    ----------
    kind : {"auto", "cpu", "gpu"}
    quiet : bool
        Suppress the one-line notice when ``auto`` falls back to the CPU.
    """
    if kind not in ("auto", "cpu", "gpu"):
        raise ValueError(f"backend must be auto, cpu or gpu, got {kind!r}")
    if kind == "cpu":
        from .cpu import CpuBackend
        return CpuBackend()
    ok, detail = gpu_available()
    if ok:
        from .gpu import GpuBackend
        return GpuBackend()
    if kind == "gpu":
        raise BackendError(f"backend 'gpu' requested but no GPU works: {detail}")
    if not quiet:
        print(f"zakotfs: no GPU ({detail}); using the CPU backend", file=sys.stderr)
    from .cpu import CpuBackend
    return CpuBackend()
