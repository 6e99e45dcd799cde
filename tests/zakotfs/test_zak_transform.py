import numpy as np

from zakotfs import inverse_zak, zak


def test_golden_zak_small(vectors, backend):
    v = vectors["zak_small"]
    M, N = int(v["M"]), int(v["N"])
    s = backend.asnumpy(inverse_zak(backend.asarray(v["X"])))
    Y = backend.asnumpy(zak(backend.asarray(v["r"]), M, N))
    np.testing.assert_allclose(s, v["s"], atol=1e-12 if backend.name == "cpu" else 1e-5)
    np.testing.assert_allclose(Y, v["Y"], atol=1e-12 if backend.name == "cpu" else 1e-5)


def test_definition_by_direct_sum(rng):
    """Direct evaluation of s[k + nM] = 1/sqrt(N) sum_l x[k,l] e^{+j2pi nl/N}."""
    M, N = 6, 5
    x = rng.standard_normal((M, N)) + 1j * rng.standard_normal((M, N))
    n, l = np.arange(N)[:, None], np.arange(N)[None, :]
    twiddle = np.exp(2j * np.pi * n * l / N) / np.sqrt(N)           # [n, l]
    expected = np.einsum("nl,kl->nk", twiddle, x).reshape(-1)        # q = k + nM
    np.testing.assert_allclose(inverse_zak(x), expected, atol=1e-12)


def test_unitary_and_round_trip_batched(rng):
    M, N, F = 16, 8, 3
    x = rng.standard_normal((F, M, N)) + 1j * rng.standard_normal((F, M, N))
    s = inverse_zak(x)
    assert s.shape == (F, M * N)
    np.testing.assert_allclose(np.linalg.norm(s, axis=-1), np.linalg.norm(x, axis=(-1, -2)), rtol=1e-12)
    np.testing.assert_allclose(zak(s, M, N), x, atol=1e-12)
    # the matrix of the transform is unitary
    eye = np.eye(M * N).reshape(M * N, M, N)
    Z = inverse_zak(eye.astype(complex)).T
    np.testing.assert_allclose(Z.conj().T @ Z, np.eye(M * N), atol=1e-12)


def test_zak_rejects_wrong_length():
    import pytest
    with pytest.raises(ValueError, match="expected M\\*N"):
        zak(np.zeros(10, complex), 4, 4)
