"""The fused equaliser steps (one GPU kernel each) compute the numpy expressions they
replace, for a basis shared by all frames and for one basis per frame."""
import numpy as np
import pytest

from dsp_kernels.fused import (basis_project, capturable_matmul, cg_step, frequency_shift, matmul, overlap_add,
                               overlapped_windows, quantize_llr, real_dot, taps_reduce, xpby)


def _complex(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.mark.parametrize("shared_basis", [True, False])
def test_fused_steps_match_numpy(backend, rng, shared_basis):
    F, P, L = 3, 5, 4096
    u, taps, v = _complex(rng, F, P, L), _complex(rng, F, P, L), _complex(rng, F, P, L)
    basis = _complex(rng, P, L) if shared_basis else _complex(rng, F, P, L)
    x, res, p, Ap, s = (_complex(rng, F, L) for _ in range(5))
    alpha, n0 = rng.random(F), rng.random(F)
    dev = backend.asarray

    def close(got, want, tol=2e-5):
        got = backend.asnumpy(got)
        assert np.linalg.norm(got - want) <= tol * np.linalg.norm(want)

    close(basis_project(dev(u), dev(basis)), basis.conj() * (basis * u).sum(axis=-2, keepdims=True))
    close(taps_reduce(dev(taps), dev(v), dev(s), dev(n0)), (taps.conj() * v).sum(axis=-2) + n0[:, None] * s)
    close(real_dot(dev(p), dev(Ap)), (p.conj() * Ap).real.sum(axis=-1))
    close(xpby(dev(x), dev(p), dev(alpha)), x + alpha[:, None] * p)
    new_x, new_res = cg_step(dev(x.copy()), dev(res.copy()), dev(p), dev(Ap), dev(alpha))
    close(new_x, x + alpha[:, None] * p)
    close(new_res, res - alpha[:, None] * Ap)


def test_llr_quantiser_rounds_to_the_nearest_code_and_clips(backend, rng):
    """q = clip(rint(LLR / step), -127, 127): the same codes on both backends, LLR within
    half a step of q step inside the range, the range's ends beyond it, 0 stays 0."""
    step = 16 / 127
    llr = np.concatenate([rng.normal(0, 12, 4000), [0.0, 15.9, 16.1, -40.0, 1e6, 0.49 * step, 0.51 * step]])
    llr = llr.astype(np.float32).reshape(1, -1)
    q = backend.asnumpy(quantize_llr(backend.asarray(llr), step))
    assert q.dtype == np.int8 and q.shape == llr.shape
    np.testing.assert_array_equal(q, quantize_llr(llr, step))
    inside = np.abs(llr) <= 127 * step
    assert np.all(np.abs(q[inside] * step - llr[inside]) <= step / 2 + 1e-6)
    assert np.all(q[~inside] == 127 * np.sign(llr[~inside]))
    assert q[0, -7] == 0 and q[0, -2] == 0 and q[0, -1] == 1


def test_window_steps_match_numpy(backend, rng):
    F, S, h = 2, 8, 64
    v, y = _complex(rng, F, S * h), _complex(rng, F, S, 2 * h)
    window = np.sin(np.pi * (np.arange(2 * h) + 0.5) / (2 * h)).astype(np.float32)
    blocks = v.reshape(F, S, h)
    want_windows = np.concatenate([blocks, np.roll(blocks, -1, axis=1)], axis=-1) * window
    got = backend.asnumpy(overlapped_windows(backend.asarray(v), S, backend.asarray(window)))
    np.testing.assert_allclose(got, want_windows, rtol=1e-6)
    yw = y * window
    want = (yw[..., :h] + np.roll(yw[..., h:], 1, axis=1)).reshape(F, S * h)
    got = backend.asnumpy(overlap_add(backend.asarray(y), backend.asarray(window)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # overlap_add is the adjoint of overlapped_windows: <W v, y> = <v, W^H y>
    lhs = np.vdot(want_windows, y)
    rhs = np.vdot(v, want)
    assert abs(lhs - rhs) < 1e-3 * abs(lhs)


@pytest.mark.parametrize("J", [3, 40])
def test_matmul_matches_numpy(backend, rng, J):
    """The graph-capturable product (rank-one updates for J <= 16, a broadcast reduction
    above) on numpy, and ``matmul`` on the backend (on the GPU: the one-pass kernel for
    J <= SHORT_INNER, the capturable product above), with broadcast batch axes."""
    a, b = _complex(rng, 2, 1, 5, J), _complex(rng, 3, J, 7)
    want = np.matmul(a.astype(complex), b.astype(complex))
    np.testing.assert_allclose(capturable_matmul(a, b), want, rtol=1e-5, atol=1e-5)
    got = backend.asnumpy(matmul(backend.asarray(a), backend.asarray(b)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # one matrix for the whole batch (stride 0), and a transposed (non-contiguous) operand
    shared = _complex(rng, 7, J).T
    got = backend.asnumpy(matmul(backend.asarray(a), backend.asarray(shared)))
    np.testing.assert_allclose(got, np.matmul(a.astype(complex), shared.astype(complex)), rtol=1e-5, atol=1e-5)


def test_short_matmul_cuda_source_on_cpu(cuda_on_cpu, rng):
    """``matmul.cu`` run on the CPU: a batch of 3 against one shared matrix (stride 0)."""
    B, I, J, K = 3, 4, 5, 6
    a, x = _complex(rng, B, I, J), _complex(rng, J, K)
    out = np.full((B, I, K), np.nan, np.complex64)
    cuda_on_cpu("matmul.cu").launch("batched_matmul", out.size, a, x, out, B, I, J, K, I * J, 0)
    np.testing.assert_allclose(out, np.matmul(a.astype(complex), x.astype(complex)), rtol=1e-5, atol=1e-5)


def _shift_reference(r, cycles):
    """r[f, q] exp(j 2 pi cycles[f] q) in float64, the turns reduced exactly (integer q)."""
    q = np.arange(r.shape[-1])
    return r.astype(complex) * np.exp(2j * np.pi * np.mod(np.outer(cycles, q), 1.0))


# one frame at -7.4 kHz of a 245.76 MHz stream, one at +1 kHz: ~3e4 turns over the paper grid's 2**19 samples
SHIFTS = np.array([-7.4e3 / 245.76e6, 1e3 / 245.76e6])


def test_frequency_shift_matches_the_float64_rotation(backend, rng):
    """Over 2**19 samples (the paper grid), where the phase reaches 1.6e4 turns: the rotation
    to float32 accuracy, and shifting back restores the input."""
    r = _complex(rng, 2, 1 << 19)
    got = backend.asnumpy(frequency_shift(backend.asarray(r), backend.asarray(SHIFTS)))
    want = _shift_reference(r, SHIFTS)
    assert got.dtype == np.complex64
    assert np.linalg.norm(got - want) <= 2e-6 * np.linalg.norm(want)
    back = backend.asnumpy(frequency_shift(backend.asarray(got), backend.asarray(-SHIFTS)))
    assert np.linalg.norm(back - r) <= 4e-6 * np.linalg.norm(r)
    # with a constant removed first (the DC offset): (r - c) exp(j 2 pi cycles q)
    offset = np.array([0.3 - 0.1j, -0.02j], np.complex64)
    got = backend.asnumpy(frequency_shift(backend.asarray(r), backend.asarray(SHIFTS), backend.asarray(offset)))
    want = _shift_reference(r - offset[:, None], SHIFTS)
    assert np.linalg.norm(got - want) <= 2e-6 * np.linalg.norm(want)


def test_frequency_shift_cuda_source_on_cpu(cuda_on_cpu, rng):
    """``frequency_shift.cu`` run on the CPU, a constant removed first: the first and last 64
    samples of two paper-grid frames (where the phase is largest)."""
    L, n = 1 << 19, 64
    r = _complex(rng, 2, L)
    out = np.full_like(r, np.nan)
    edges = [f * L + q for f in range(2) for q in [*range(n), *range(L - n, L)]]
    offset = np.array([0.3 - 0.1j, -0.02j], np.complex64)
    cuda_on_cpu("frequency_shift.cu").launch("frequency_shift", 2 * L, r, SHIFTS, offset, out, L, 2 * L, elements=edges)
    keep = np.r_[0:n, L - n:L]
    want = _shift_reference(r - offset[:, None], SHIFTS)
    np.testing.assert_allclose(out[:, keep], want[:, keep], rtol=0, atol=2e-6 * np.abs(r).max())
