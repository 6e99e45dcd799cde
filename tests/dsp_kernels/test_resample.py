"""Band-limited time scaling (``dsp_kernels.resample.TimeScale``) against the Fourier series
evaluated directly, on the backend (numpy; CuPy where a GPU works)."""
import numpy as np
import pytest

from dsp_kernels.resample import TimeScale


def _direct(x, a, m):
    """(1/L) sum_k X[k] exp(j 2 pi k a m / L), k in [-L/2, L/2) (fftshift's order), float64."""
    L = x.size
    k = np.arange(L) - L // 2
    X = np.fft.fftshift(np.fft.fft(x))
    return np.exp(2j * np.pi * np.outer(m, k) * a / L) @ X / L


@pytest.mark.parametrize("L", [4096, 4095])
@pytest.mark.parametrize("a", [1 + 20e-6, 1 - 1e-3])
def test_time_scale_is_the_fourier_series_at_scaled_instants(backend, rng, L, a):
    x = (rng.standard_normal((2, L)) + 1j * rng.standard_normal((2, L))).astype(np.complex64)
    got = backend.asnumpy(TimeScale(L, a, backend.xp)(backend.asarray(x)))
    m = np.r_[0:50, L // 2 - 25:L // 2 + 25, L - 50:L]
    for f in range(2):
        want = _direct(x[f].astype(complex), a, m)
        assert np.abs(got[f, m] - want).max() <= 2e-5 * np.abs(x[f]).max() * np.sqrt(L) / 10


def test_unit_scale_is_the_identity_and_bad_input_is_refused(backend, rng):
    x = (rng.standard_normal((1, 1000)) + 1j * rng.standard_normal((1, 1000))).astype(np.complex64)
    np.testing.assert_allclose(backend.asnumpy(TimeScale(1000, 1.0, backend.xp)(backend.asarray(x))), x, atol=2e-5)
    with pytest.raises(ValueError, match="blocks of 1000"):
        TimeScale(1000, 1.0)(x[:, :999])
    with pytest.raises(ValueError, match="a > 0"):
        TimeScale(1000, float("nan"))
