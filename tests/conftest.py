"""Shared fixtures: golden vectors, backends (GPU ones skip with the reason)."""
from pathlib import Path

import numpy as np
import pytest

from dsp_kernels import get_backend, gpu_available

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def vectors():
    return {name: dict(np.load(VECTORS / f"{name}.npz"))
            for name in ("zak_small", "qam_38211", "frame_ongrid")}


def _backend_param(kind):
    if kind == "gpu":
        ok, why = gpu_available()
        return pytest.param(kind, marks=[pytest.mark.gpu, pytest.mark.skipif(not ok, reason=why)])
    return kind


@pytest.fixture(params=[_backend_param("cpu"), _backend_param("gpu")])
def backend(request):
    """Each test using this runs once per backend against numpy references."""
    return get_backend(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)
