"""The accurate estimator's one-launch delay fit (``sparse_fit.cu``: ``psinc_table`` and
``omp_delay_fit``, a thread block per frame whose threads share the residual, reduce by
warp shuffles and meet at barriers) run on the CPU, one OS thread per CUDA thread
(``cuda_blocks_on_cpu``), against the array code it replaces
(``AccurateEstimator.fit_delays``), so CI checks the GPU's delay fit without a GPU."""
import ctypes

import numpy as np
import pytest

from zakotfs import preset
from zakotfs.estimation import AccurateEstimator

THREADS = 512       # as the GPU launches it (GpuBackend.sparse_delay_fit)


def _coefficients(estimator, rng, delays, noise):
    """complex64 [F, W, P]: atoms at ``delays`` [F, J] with random amplitudes, plus noise."""
    F, J = delays.shape
    amplitudes = rng.standard_normal((F, J, estimator.P)) + 1j * rng.standard_normal((F, J, estimator.P))
    atoms = estimator._atoms(delays, np)                                       # [F, W, J]
    clean = np.einsum("fwj,fjp->fwp", atoms, amplitudes)
    return (clean + noise * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))).astype(np.complex64)


SHARED_RESIDUAL, SHARED_ATOMS, SHARED_COEFFS = 1, 2, 4      # sparse_fit.cu's placement bits


@pytest.mark.parametrize("placement", [SHARED_RESIDUAL | SHARED_ATOMS | SHARED_COEFFS, 0, SHARED_RESIDUAL | SHARED_COEFFS])
def test_omp_delay_fit_matches_the_array_code(cuda_blocks_on_cpu, rng, placement):
    """Tiny grid (W = 15 taps, P = 5 DPSS functions), 8 fine offsets a sample, 6 atoms, four
    frames: three paths apart; two paths a sample apart; a path beyond the fit's edge, whose
    candidates are clipped (their atoms computed in the kernel, not read from the table);
    noise alone. The kernel finds the same active atoms at the same delays, amplitudes to
    float32, whichever scratch arrays it keeps in shared memory (all, as at the paper grid;
    none, as with a 20 us delay spread there; or some). The global scratch arrays are written
    exactly where the placement leaves them out of shared memory."""
    est = AccurateEstimator(preset("tiny"), n_atoms=6, delay_resolution=8)
    W, P, J, R, L = est.taus.size, est.P, est.n_atoms, est.delay_resolution, est.config.MN
    K = 2 * R + 1
    lo, hi = est.taus[0] + est.edge, est.taus[-1] - est.edge
    paths = np.array([[1.3, 4.77, 7.1], [3.2, 4.25, 8.6], [hi + 0.4, 2.4, 5.5]])
    noise = 0.3 * (rng.standard_normal((1, W, P)) + 1j * rng.standard_normal((1, W, P)))
    coeffs = np.concatenate([_coefficients(est, rng, paths, 0.01), noise.astype(np.complex64)])
    F = coeffs.shape[0]
    coeff_var = 2 * np.array([0.01, 0.01, 0.01, 0.3]) ** 2
    want = est.fit_delays(coeffs, coeff_var)

    kernels = cuda_blocks_on_cpu("sparse_fit.cu")
    table = np.zeros((K, 2 * W - 1), np.float32)
    kernels.launch("psinc_table", -(-table.size // THREADS), THREADS, ctypes.c_int(W), ctypes.c_int(R), ctypes.c_int(L), table)
    residuals, atoms, coeffs_t = np.zeros((F, P, W), np.complex64), np.zeros((F, J, W)), np.zeros((F, P, W), np.complex64)
    amplitudes, delays, active = np.zeros((F, J, P), complex), np.zeros((F, J)), np.zeros((F, J), bool)
    floor = est.floor_factor * coeff_var
    kernels.launch("omp_delay_fit", F, THREADS, coeffs, floor, table, ctypes.c_int(R), ctypes.c_int(W), ctypes.c_int(P),
                   ctypes.c_int(est.coarse_stride), ctypes.c_int(J), ctypes.c_int(L), ctypes.c_double(est.taus[0]), ctypes.c_double(lo),
                   ctypes.c_double(hi), ctypes.c_int(placement), residuals, atoms, coeffs_t, amplitudes, delays, active)

    np.testing.assert_array_equal(active, want[2])
    assert active[:3].sum(axis=1).min() >= 3 and not active[3].any()      # the paths found, noise not
    np.testing.assert_allclose(delays[active], want[1][active], atol=1e-9)
    np.testing.assert_allclose(amplitudes, want[0], atol=1e-4 * np.abs(want[0]).max())
    for bit, scratch in ((SHARED_RESIDUAL, residuals), (SHARED_ATOMS, atoms), (SHARED_COEFFS, coeffs_t)):
        assert scratch.any() != bool(placement & bit)
    if not placement & SHARED_COEFFS:
        np.testing.assert_array_equal(coeffs_t, coeffs.transpose(0, 2, 1))


def test_atom_taps_fft_matches_the_array_code(cuda_blocks_on_cpu, rng):
    """``atom_taps_fft`` (a thread per frame and bin): C_p(f) = sum_j a_jp e^{-j2pi f delta_j / L}
    against ``DelayAtoms.operator``, to float32, on an even L (the Nyquist bin's cos(pi delta))
    with delays far from the origin (the phase reduced modulo 1 in float64)."""
    from zakotfs.channel_operator import ChannelOperator

    est = AccurateEstimator(preset("tiny"))
    F, J, P, L = 2, 4, est.P, est.config.MN
    amplitudes = rng.standard_normal((F, J, P)) + 1j * rng.standard_normal((F, J, P))
    delays = rng.uniform(-3.0, 600.0, (F, J))
    want = ChannelOperator.from_delay_doppler_atoms(L, est.basis, amplitudes, delays).taps_fft
    got = np.zeros((F, P, L), np.complex64)
    cuda_blocks_on_cpu("sparse_fit.cu").launch("atom_taps_fft", -(-F * L // THREADS), THREADS, amplitudes, delays,
                                               ctypes.c_int(J), ctypes.c_int(P), ctypes.c_int(L), ctypes.c_int(F), got)
    assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)


def test_compiled_cpu_delay_fit_matches_the_array_code(rng):
    """The CPU's twin of ``omp_delay_fit`` (``cpu_fit``, compiled with Numba) on the frames of
    the kernel's test: three paths apart, two a sample apart, one beyond the fit's edge
    (its candidates clipped), noise alone. The same active atoms at the same delays, the
    amplitudes to float32; and its ``atom_taps_fft`` is ``DelayAtoms.taps_fft`` on an odd
    and an even L."""
    from dsp_kernels.cpu_fit import atom_taps_fft, omp_delay_fit
    from zakotfs.channel_operator import DelayAtoms

    est = AccurateEstimator(preset("tiny"), n_atoms=6, delay_resolution=8)
    W, P = est.taus.size, est.P
    lo, hi = est.fit_range
    paths = np.array([[1.3, 4.77, 7.1], [3.2, 4.25, 8.6], [hi + 0.4, 2.4, 5.5]])
    noise = 0.3 * (rng.standard_normal((1, W, P)) + 1j * rng.standard_normal((1, W, P)))
    coeffs = np.concatenate([_coefficients(est, rng, paths, 0.01), noise.astype(np.complex64)])
    coeff_var = 2 * np.array([0.01, 0.01, 0.01, 0.3]) ** 2
    want = est.fit_delays(coeffs, coeff_var)
    amplitudes, delays, active = omp_delay_fit(coeffs, est.floor_factor * coeff_var, est.taus[0],
                                               est.delay_resolution, est.coarse_stride, est.n_atoms, lo, hi,
                                               est.config.MN)
    np.testing.assert_array_equal(active, want[2])
    assert active[:3].sum(axis=1).min() >= 3 and not active[3].any()
    np.testing.assert_allclose(delays[active], want[1][active], atol=1e-9)
    np.testing.assert_allclose(amplitudes, want[0], atol=1e-4 * np.abs(want[0]).max())
    for L in (999, 1000):                   # the negative bins start off the phase's anchors
        d = rng.uniform(-3.0, 600.0, (2, 4))
        a = rng.standard_normal((2, 4, P)) + 1j * rng.standard_normal((2, 4, P))
        reference = DelayAtoms(L, np.ones((P, L)), a, d).taps_fft()
        got = atom_taps_fft(a, d, L, np.complex128)
        assert np.abs(got - reference).max() < 1e-9 * np.abs(reference).max()


def test_compiled_cpu_path_fit_matches_the_array_code(rng):
    """The CPU's twin of ``AccurateEstimator.fit_paths`` (``cpu_fit.omp_path_fit``): three
    paths (delay x Doppler tone) apart; two half a sample apart, told apart by their
    Dopplers (the band's two ends); a path beyond the fit's edge; noise alone. The paths
    inside the range found to 0.05 samples; the same active paths at the same delays, the
    amplitudes to 1e-6."""
    from dsp_kernels.cpu_fit import omp_path_fit
    from zakotfs import estimation as E

    est = AccurateEstimator(preset("tiny"), n_paths=8, delay_resolution=8)
    W, P = est.taus.size, est.P
    lo, hi = est.fit_range
    G = est.tones.shape[1]
    delays_true = np.array([[1.3, 4.77, 7.1], [3.2, 3.7, 8.6], [hi + 0.4, 2.4, 5.5]])
    tones_true = rng.integers(0, G, delays_true.shape)
    tones_true[1] = [0, G - 1, G // 2]
    gains = rng.standard_normal(delays_true.shape) + 1j * rng.standard_normal(delays_true.shape)
    atoms = est._atoms(delays_true, np).real                                        # [F, W, J]
    clean = np.einsum("fwj,pfj,fj->fwp", atoms, est.tones[:, tones_true], gains)
    noise = lambda s, shape: s * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))   # noqa: E731
    coeffs = np.concatenate([clean + noise(0.01, clean.shape), noise(0.3, (1, W, P))]).astype(np.complex64)
    coeff_var = 2 * np.array([0.01, 0.01, 0.01, 0.3]) ** 2
    want = est.fit_paths(coeffs, coeff_var)
    amplitudes, delays, active = omp_path_fit(
        coeffs, est.path_floor_factor * coeff_var, est.taus[0], est.delay_resolution, est.coarse_stride,
        est.n_paths, lo, hi, est.config.MN, est.tones, est.coarse_tones, E.TONE_STEPS // E.COARSE_TONE_STEPS,
        E.PATH_ROUNDS, E.FINAL_ROUNDS, np.linspace(-1 / 16, 1 / 16, E.REFINE_DELAYS), E.REFINE_TONES)
    np.testing.assert_array_equal(active, want[2])
    assert active[:3].sum(axis=1).min() >= 3 and not active[3].any()
    for f in range(2):                                                             # the paths inside the range
        for d in delays_true[f]:
            assert np.min(np.abs(delays[f][active[f]] - d)) < 0.05, (f, d, delays[f][active[f]])
    np.testing.assert_allclose(delays[active], want[1][active], atol=1e-9)
    np.testing.assert_allclose(amplitudes, want[0], atol=1e-6 * np.abs(want[0]).max())


def test_compiled_cpu_atom_residual_matches_the_array_code(rng):
    """``cpu_fit.atom_residual`` (``AccurateEstimator.select``'s residual energies) against
    the array code, with delays on the atoms' table grid and off it, and atoms of zero
    amplitude."""
    from dsp_kernels.cpu_fit import atom_residual

    est = AccurateEstimator(preset("tiny"))
    W, P = est.taus.size, est.P
    delays = np.array([[1.25, 4.015625, 7.3], [2.0, 5.1234, 0.0]])
    amplitudes = rng.standard_normal((2, 3, P)) + 1j * rng.standard_normal((2, 3, P))
    amplitudes[1, 2] = 0
    coeffs = rng.standard_normal((2, W, P)) + 1j * rng.standard_normal((2, W, P))
    want = (np.abs(coeffs - np.einsum("fwj,fjp->fwp", est._atoms(delays, np), amplitudes)) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(atom_residual(coeffs, amplitudes, delays, est.taus[0], est.config.MN), want, rtol=1e-12)


def test_compiled_cpu_data_leak_matches_the_array_code(rng):
    """``cpu_fit.data_leak`` (the closed form of the periodic sinc at integer lags) against
    ``AccurateEstimator.data_leak``'s array code, on random atoms (a zero one among them,
    one at an integer delay) on an even and an odd frame length."""
    from types import SimpleNamespace

    from dsp_kernels.cpu_fit import data_leak
    from zakotfs import FrameConfig

    for config in (preset("tiny"), FrameConfig(M=63, N=15, bandwidth=1e6, cp_len=16, guard_neg=14, guard_pos=14,
                                               max_delay=10, name="odd")):
        est = AccurateEstimator(config)
        amplitudes = rng.standard_normal((3, 5, est.P)) + 1j * rng.standard_normal((3, 5, est.P))
        amplitudes[:, 2] = 0
        delays = rng.uniform(0, 8, (3, 5))
        delays[0, 1] = 3.0
        got = data_leak(amplitudes, delays, est.gram, est.leak_lags, est.leak_weights, config.MN)
        est.backend = SimpleNamespace(data_leak=lambda *args: None)          # the array code
        want = est.data_leak(amplitudes, delays)
        assert np.all(want > 0)
        np.testing.assert_allclose(got, want, rtol=1e-9)
