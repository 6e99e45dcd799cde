"""FFTW plans that compiled (Numba) code executes: complex64 transforms inside a kernel's
loop, without a return to Python between them.

The single-precision FFTW library is the one pyFFTW ships (``pyfftw.libs``). A plan is made
once per (length, rows, direction) with FFTW_MEASURE on 64-byte aligned scratch arrays;
``execute_dft(EXECUTE, plan, src, dst)`` (``numba.njit`` code; ``fftwf_execute_dft`` called
through its address, so that the calling function's machine code, which holds no address,
is cached on disk like any other) then runs it on any pair of distinct, C-contiguous,
64-byte aligned complex64 arrays of the plan's shape (``array.ctypes.data`` pointers).
Transforms are unnormalised:
forward sum_q x[q] e^{-j2pi fq/L}, backward with e^{+j2pi fq/L}.

Timed plans round differently from one process to another, so each plan is timed
once a machine and kept as FFTW wisdom in ``WISDOM`` (a file lock orders the processes
that plan at once): every later process, the CPU workers of one receiver included, takes
the same plan and gets the same bits. Where the file cannot be written, each process
times its own plans.

``available()`` is False where pyFFTW or its library is missing; callers then run their
array code (``arrays.fft``).
"""
from __future__ import annotations

import ctypes
import fcntl
import glob
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

__all__ = ["available", "plan", "aligned", "execute_dft", "EXECUTE", "FORWARD", "BACKWARD"]

FORWARD, BACKWARD = -1, 1
_MEASURE = 0
ALIGNMENT = 64
WISDOM = Path(os.environ.get("ZAKOTFS_FFTW_WISDOM") or Path.home() / ".cache" / "zakotfs" / "fftwf.wisdom")
"""Where the timed plans are kept (environment ZAKOTFS_FFTW_WISDOM)."""


def _library():
    try:
        import pyfftw
    except ImportError:
        return None
    folder = os.path.join(os.path.dirname(os.path.dirname(pyfftw.__file__)), "pyfftw.libs")
    found = sorted(glob.glob(os.path.join(folder, "libfftw3f-*.so*")))
    if not found:
        return None
    lib = ctypes.CDLL(found[0])
    lib.fftwf_plan_many_dft.restype = ctypes.c_void_p
    lib.fftwf_plan_many_dft.argtypes = [
        ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint]
    lib.fftwf_execute_dft.restype = None
    lib.fftwf_execute_dft.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    for name in ("fftwf_import_wisdom_from_filename", "fftwf_export_wisdom_to_filename"):
        getattr(lib, name).restype = ctypes.c_int
        getattr(lib, name).argtypes = [ctypes.c_char_p]
    return lib


_lib = _library()
EXECUTE = 0 if _lib is None else ctypes.cast(_lib.fftwf_execute_dft, ctypes.c_void_p).value
"""The address of ``fftwf_execute_dft`` (0 where the library is missing)."""


@intrinsic
def execute_dft(typingctx, function, plan, src, dst):
    """``function(plan, src, dst)`` for integer addresses: FFTW's new-array execute, given
    ``EXECUTE``, a ``plan`` and two arrays' ``ctypes.data``."""
    if not all(isinstance(t, types.Integer) for t in (function, plan, src, dst)):
        return None

    def codegen(context, builder, signature, args):
        pointer = ir.IntType(8).as_pointer()
        callee = builder.inttoptr(args[0], ir.FunctionType(ir.VoidType(), [pointer] * 3).as_pointer())
        builder.call(callee, [builder.inttoptr(a, pointer) for a in args[1:]])
        return context.get_dummy_value()
    return types.void(function, plan, src, dst), codegen

_plans: dict = {}
_planner = threading.Lock()         # FFTW's planner is not thread-safe


def available() -> bool:
    """True where the compiled transforms can run."""
    return _lib is not None


def aligned(shape) -> np.ndarray:
    """An empty complex64 array of ``shape`` whose data starts on a 64-byte boundary."""
    n = int(np.prod(shape))
    raw = np.empty(n * 8 + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + n * 8].view(np.complex64).reshape(shape)


@contextmanager
def _shared_wisdom():
    """The machine's wisdom imported, under its file lock, and exported again on leaving;
    nothing where the folder cannot be written."""
    try:
        WISDOM.parent.mkdir(parents=True, exist_ok=True)
        lock = open(WISDOM.with_suffix(".lock"), "a")
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if WISDOM.exists():
            _lib.fftwf_import_wisdom_from_filename(str(WISDOM).encode())
        yield
        scratch = WISDOM.with_suffix(f".{os.getpid()}")
        if _lib.fftwf_export_wisdom_to_filename(str(scratch).encode()):
            os.replace(scratch, WISDOM)


def plan(length: int, rows: int, direction: int) -> int:
    """The plan (a pointer, as int) of ``rows`` contiguous transforms of ``length`` points,
    FORWARD or BACKWARD, out of place: FFTW times the candidates the first time a machine
    plans it and keeps its choice as wisdom (module doc)."""
    key = (length, rows, direction)
    with _planner:
        if key not in _plans:
            src, dst = aligned((rows, length)), aligned((rows, length))
            n = (ctypes.c_int * 1)(length)
            with _shared_wisdom():
                pointer = _lib.fftwf_plan_many_dft(1, n, rows, src.ctypes.data, None, 1, length, dst.ctypes.data,
                                                   None, 1, length, direction, _MEASURE)
            if not pointer:
                raise RuntimeError(f"FFTW could not plan {rows} x {length} points")
            _plans[key] = pointer
        return _plans[key]
