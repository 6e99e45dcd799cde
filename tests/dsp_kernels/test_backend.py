import numpy as np
import pytest

from dsp_kernels import BackendError, fft, get_backend, gpu_available, ifft, xp_of


def test_cpu_backend_and_dispatch(rng):
    be = get_backend("cpu")
    a = rng.standard_normal(64) + 1j * rng.standard_normal(64)
    assert be.name == "cpu" and xp_of(a) is np
    np.testing.assert_allclose(fft(a), np.fft.fft(a), atol=1e-12)
    np.testing.assert_allclose(ifft(fft(a, norm="ortho"), norm="ortho"), a, atol=1e-12)


def test_auto_falls_back_with_notice_or_uses_gpu(capsys):
    ok, why = gpu_available()
    be = get_backend("auto")
    if ok:
        assert be.name == "gpu"
    else:
        assert be.name == "cpu"
        assert "using the CPU backend" in capsys.readouterr().err


def test_gpu_request_without_gpu_is_a_clear_error():
    ok, why = gpu_available()
    if ok:
        pytest.skip("a GPU works here")
    with pytest.raises(BackendError, match="backend 'gpu' requested but no GPU works"):
        get_backend("gpu")


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be auto, cpu or gpu"):
        get_backend("tpu")


def test_gpu_fft_matches_cpu(backend, rng):
    a = (rng.standard_normal((4, 1024)) + 1j * rng.standard_normal((4, 1024))).astype(np.complex64)
    out = backend.asnumpy(backend.fft(backend.asarray(a), axis=-1))
    np.testing.assert_allclose(out, np.fft.fft(a, axis=-1), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("modulation", ["qpsk", "16qam", "64qam", "256qam"])
def test_maxlog_llr_cuda_source_on_cpu(cuda_on_cpu, rng, modulation):
    """``maxlog_llr.cu`` run on the CPU (a thread per symbol) gives the CPU backend's LLRs
    (the Numba kernel, itself checked against brute force in tests/zakotfs) to float32."""
    import ctypes

    from zakotfs.modulation import constellation

    c = constellation(modulation)
    n = 200
    z = (1.3 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)
    noise_var = rng.uniform(0.05, 1.0, n).astype(np.float32)
    want = get_backend("cpu").maxlog_llr(z, noise_var, c)
    got = np.full((n, c.q), np.nan, np.float32)
    cuda_on_cpu("maxlog_llr.cu").launch(
        "maxlog_llr", n, z, (1 / noise_var).astype(np.float32), c.levels.astype(np.float32),
        np.ascontiguousarray(c.level_bits), ctypes.c_int(n), ctypes.c_int(c.levels.size), ctypes.c_int(c.q // 2), got)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
