import numpy as np
import pytest

from zakotfs import MODULATIONS, awgn_ber, constellation, qfunc


@pytest.mark.parametrize("mod", list(MODULATIONS))
def test_golden_38211(vectors, mod):
    np.testing.assert_allclose(constellation(mod).points, vectors["qam_38211"][mod], atol=1e-12)


@pytest.mark.parametrize("mod", list(MODULATIONS))
def test_map_bits_and_unit_energy(mod):
    c = constellation(mod)
    idx = np.arange(2 ** c.q)
    bits = ((idx[:, None] >> np.arange(c.q - 1, -1, -1)) & 1).astype(np.uint8)
    np.testing.assert_array_equal(c.map(bits.reshape(-1)), c.points)
    assert abs(np.mean(np.abs(c.points) ** 2) - 1) < 1e-12


def _brute_force_llr(z, noise_var, c):
    """Max-log LLR by exhaustive search over all 2^q points (independent of the per-axis kernel)."""
    d = np.abs(z[:, None] - c.points[None, :]) ** 2
    idx = np.arange(2 ** c.q)
    out = np.empty((z.size, c.q))
    for j in range(c.q):
        bit = (idx >> (c.q - 1 - j)) & 1
        out[:, j] = (d[:, bit == 1].min(1) - d[:, bit == 0].min(1)) / noise_var
    return out


@pytest.mark.parametrize("mod", list(MODULATIONS))
def test_maxlog_llr_matches_brute_force(backend, rng, mod):
    c = constellation(mod)
    z = c.points[rng.integers(0, 2 ** c.q, 500)] + 0.3 * (rng.standard_normal(500) + 1j * rng.standard_normal(500))
    noise_var = rng.uniform(0.05, 0.5, 500)
    llr = backend.asnumpy(backend.maxlog_llr(backend.asarray(z), backend.asarray(noise_var), c))
    np.testing.assert_allclose(llr, _brute_force_llr(z, noise_var, c), rtol=1e-4, atol=1e-3)


def test_awgn_ber_closed_form_qpsk_textbook():
    snr = np.array([0.0, 5.0, 10.0])
    np.testing.assert_allclose(awgn_ber("qpsk", snr), qfunc(np.sqrt(10 ** (snr / 10))), rtol=1e-12)


@pytest.mark.parametrize("mod,snr_db", [("qpsk", 7.0), ("16qam", 14.0), ("64qam", 20.0), ("256qam", 26.0)])
def test_monte_carlo_ber_matches_theory(rng, mod, snr_db):
    """Hard decisions from the max-log LLR sign on AWGN, 4-sigma binomial interval."""
    from dsp_kernels import get_backend
    c = constellation(mod)
    n_sym = 400_000 // c.q
    bits = rng.integers(0, 2, n_sym * c.q, dtype=np.uint8)
    n0 = 10 ** (-snr_db / 10)
    z = c.map(bits) + np.sqrt(n0 / 2) * (rng.standard_normal(n_sym) + 1j * rng.standard_normal(n_sym))
    llr = get_backend("cpu").maxlog_llr(z, n0, c)
    errors = np.count_nonzero(c.hard_bits(llr).reshape(-1) != bits)
    p = float(awgn_ber(mod, snr_db))
    n = bits.size
    assert 1e-3 < p < 5e-2  # the operating point is informative
    assert abs(errors / n - p) < 4 * np.sqrt(p * (1 - p) / n), (errors / n, p)


def test_bad_modulation_and_bits():
    with pytest.raises(ValueError, match="modulation must be one of"):
        constellation("8psk")
    with pytest.raises(ValueError, match="multiple of q=4"):
        constellation("16qam").map(np.zeros(6, np.uint8))
