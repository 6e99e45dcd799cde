"""The windowed operator's fused steps (``dsp_kernels.windowed``) against their array code.

Three ways: the backend fixture (numpy; CuPy kernels where a GPU works), and the CUDA
source itself, ``windowed.cu``, compiled as C++ and run on the CPU element by element
(the ``cuda_on_cpu`` fixture), so CI checks the kernels' index arithmetic without a GPU.
Each for blocks of B = Lw + V with the overlap V = Lw, Lw / 2 and Lw / 8.
"""
import ctypes

import numpy as np
import pytest

from dsp_kernels.windowed import window_gather, window_reduce, window_scatter, window_sum, window_weight

F, K, S, LW = 2, 2, 4, 8
D0 = -13                   # shift = d0 + V stays negative, so the modulo wraps both ways


def _complex(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.fixture(params=[LW, LW // 2, LW // 8], ids=lambda v: f"overlap{v}")
def inputs(rng, request):
    B = LW + request.param
    phi = rng.standard_normal((K, LW)).astype(np.float32)
    return dict(s=_complex(rng, F, S * LW), r=_complex(rng, F, S * LW), phi=phi,
                filtered=_complex(rng, F, K, S, B), g=_complex(rng, F, K, S, B),
                z=_complex(rng, F, K, S, B), y=_complex(rng, F, S, B),
                n0=rng.random(F).astype(np.float32), B=B, shift=D0 + request.param)


def test_gather_and_scatter_are_adjoint(inputs):
    """<gather(s), y> = <s, scatter(y)>: scatter is the overlap-add that undoes gather's reads."""
    B, shift = inputs["B"], inputs["shift"]
    s, y = inputs["s"].astype(np.complex128), inputs["y"].astype(np.complex128)
    lhs = np.vdot(window_gather(s, LW, B, shift), y)
    rhs = np.vdot(s, window_scatter(y, LW, shift))
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    # block w reads s from w Lw - shift on: explicit index check
    blocks = window_gather(s, LW, B, shift)
    L = S * LW
    assert np.array_equal(blocks[1, 2], s[1, (2 * LW + np.arange(B) - shift) % L])


def test_steps_match_array_code_on_backend(backend, inputs):
    dev, host = backend.asarray, backend.asnumpy
    i, B, shift = inputs, inputs["B"], inputs["shift"]

    def close(got, want):
        got = host(got)
        assert got.shape == want.shape
        assert np.linalg.norm(got - want) <= 1e-6 * np.linalg.norm(want)

    close(window_gather(dev(i["s"]), LW, B, shift), window_gather(i["s"], LW, B, shift))
    close(window_sum(dev(i["filtered"]), dev(i["phi"])), window_sum(i["filtered"], i["phi"]))
    close(window_weight(dev(i["r"]), dev(i["phi"]), B), window_weight(i["r"], i["phi"], B))
    close(window_reduce(dev(i["g"]), dev(i["z"])), window_reduce(i["g"], i["z"]))
    close(window_scatter(dev(i["y"]), LW, shift), window_scatter(i["y"], LW, shift))
    close(window_scatter(dev(i["y"]), LW, shift, dev(i["s"]), dev(i["n0"])),
          window_scatter(i["y"], LW, shift, i["s"], i["n0"]))


def test_cuda_source_matches_array_code(cuda_on_cpu, inputs):
    i, run = inputs, cuda_on_cpu("windowed.cu").launch
    B, shift = i["B"], i["shift"]
    K32 = ctypes.c_int(K)

    blocks = np.empty((F, S, B), np.complex64)
    run("window_gather", blocks.size, i["s"], blocks, F, S, LW, B, shift)
    np.testing.assert_array_equal(blocks, window_gather(i["s"], LW, B, shift))

    y = np.empty((F, S * LW), np.complex64)
    run("window_sum", y.size, i["filtered"], i["phi"], y, F, K32, S, LW, B)
    np.testing.assert_allclose(y, window_sum(i["filtered"], i["phi"]), rtol=1e-5, atol=1e-5)

    weighted = np.full((F, K, S, B), np.nan, np.complex64)       # the zeros must be written
    run("window_weight", weighted.size, i["r"], i["phi"], weighted, F, K32, S, LW, B)
    np.testing.assert_allclose(weighted, window_weight(i["r"], i["phi"], B), rtol=1e-6, atol=1e-6)

    reduced = np.empty((F, S, B), np.complex64)
    run("window_reduce", reduced.size, i["g"], i["z"], reduced, F, K32, S, B)
    np.testing.assert_allclose(reduced, window_reduce(i["g"], i["z"]), rtol=1e-5, atol=1e-5)

    out = np.empty((F, S * LW), np.complex64)
    run("window_scatter", out.size, i["y"], out, F, S, LW, B, shift)
    np.testing.assert_allclose(out, window_scatter(i["y"], LW, shift), rtol=1e-6, atol=1e-6)
    run("window_scatter_add", out.size, i["y"], i["s"], i["n0"], out, F, S, LW, B, shift)
    np.testing.assert_allclose(out, window_scatter(i["y"], LW, shift, i["s"], i["n0"]), rtol=1e-5, atol=1e-5)
