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
