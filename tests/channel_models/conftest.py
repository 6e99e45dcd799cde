"""Shared fixtures for the channel-model tests: golden vectors and the array backends."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zakotfs
from dsp_kernels import gpu_available

DATA = Path(__file__).parent.parent / "vectors"


@pytest.fixture(scope="session")
def golden():
    """frame_ongrid.npz (tests/vectors, copied from shared/vectors): M=16, N=8, cp=4, on-grid paths."""
    with np.load(DATA / "frame_ongrid.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def golden_config(golden):
    """The golden frame's configuration (no preamble: the frame's q = 0 is sample cp)."""
    return zakotfs.FrameConfig(M=int(golden["M"]), N=int(golden["N"]), bandwidth=1.0e6,
                               modulation="qpsk", cp_len=int(golden["cp"]),
                               guard_neg=int(golden["g_neg"]), guard_pos=int(golden["g_pos"]),
                               pilot_k=int(golden["kp"]), pilot_l=int(golden["lp"]),
                               pilot_amplitude=float(golden["pilot"].real))


def _gpu_param():
    ok, reason = gpu_available()
    marks = [pytest.mark.gpu] + ([] if ok else [pytest.mark.skip(reason=f"no GPU: {reason}")])
    return pytest.param("cupy", id="cupy", marks=marks)


@pytest.fixture(params=[pytest.param("numpy", id="numpy"), _gpu_param()])
def xp(request):
    """The array module under test: numpy always, cupy where a GPU works."""
    if request.param == "numpy":
        return np
    import cupy
    return cupy

