"""Band-limited fractional delay: band edge, kernel, taps and their truncation error."""
import math

import numpy as np
import pytest

from channel_models import (band_edge_response, circular_delay_response, delay_kernel,
                            fractional_delay_nmse, fractional_delay_taps)


def test_band_edge_response():
    f = np.array([0.0, 0.3, 0.35, 0.4, 0.45, 0.5, -0.4])
    np.testing.assert_array_equal(band_edge_response(f, None), np.ones(7))
    h = band_edge_response(f, 0.4)          # flat to 0.3, zero at 0.5, half way at 0.4
    np.testing.assert_allclose(h, [1, 1, (1 + math.cos(math.pi / 4)) / 2, 0.5,
                                   (1 + math.cos(0.75 * math.pi)) / 2, 0, 0.5], atol=1e-15)
    grid = np.linspace(-0.5, 0.5, 400_001)
    assert np.trapezoid(band_edge_response(grid, 0.4) ** 2, grid) == pytest.approx(1 - 5 * 0.4 / 8, rel=1e-6)


@pytest.mark.parametrize("rolloff", [0.1, 0.25, 1.0])
@pytest.mark.parametrize("delay", [0.0, 0.37, 5.5])
def test_kernel_is_the_impulse_response_of_the_band_edge(rolloff, delay):
    """The taps' DTFT is H_a(f) exp(-j 2 pi f d) (kernel decaying as |x|^-3 with a roll-off)."""
    first, taps = fractional_delay_taps(delay, 2048, rolloff=rolloff)
    n = 16384
    g = np.zeros(n)
    g[np.arange(first, first + taps.size) % n] = taps
    f = np.fft.fftfreq(n)
    expected = band_edge_response(f, rolloff) * np.exp(-2j * np.pi * f * delay)
    np.testing.assert_allclose(np.fft.fft(g), expected, atol=5e-6)


def test_kernel_is_finite_at_its_removable_singularity():
    a = 0.25
    c, b = 1 - a / 2, a / (2 - a)
    x = 1 / (2 * b * c)
    assert delay_kernel(x, a) == pytest.approx(delay_kernel(x + 1e-7, a), abs=1e-6)
    assert np.isfinite(delay_kernel(np.array([x, -x]), a)).all()


def test_integer_delay_is_an_exact_impulse():
    first, taps = fractional_delay_taps(7, 16)
    assert first == 7 - 16 + 1
    expected = np.zeros(32)
    expected[15] = 1.0
    np.testing.assert_array_equal(taps, expected)


def test_truncation_nmse_theory():
    # sin^2(pi d) (psi1(K + 1 - d) + psi1(K + d)) / pi^2 ~ 2 sin^2(pi d) / (pi^2 K)
    for K in (256, 2048, 4096):
        assert fractional_delay_nmse(0.5, K) == pytest.approx(2 / (math.pi**2 * K), rel=1e-3)
        assert fractional_delay_nmse(3.25, K) == pytest.approx(2 * 0.5 / (math.pi**2 * K), rel=1e-3)
    assert 10 * math.log10(fractional_delay_nmse(0.5, 2048)) < -40
    assert 10 * math.log10(fractional_delay_nmse(0.5, 1900)) > -40
    assert fractional_delay_nmse(4.0, 64) < 1e-25
    # A Kaiser window only adds in-band error on a white signal; a roll-off removes the tail.
    assert fractional_delay_nmse(0.5, 512, kaiser_beta=4.0) > fractional_delay_nmse(0.5, 512)
    assert fractional_delay_nmse(0.5, 512, rolloff=0.2) < 1e-12


def test_circular_response_is_the_periodised_kernel():
    """For even n: sum_m sinc(x + m n) = sin(pi x) cot(pi x / n) / n, x = t - d."""
    n, d = 64, 0.37
    x = np.arange(n) - d
    np.testing.assert_allclose(np.fft.ifft(circular_delay_response(n, d)),
                               np.sin(np.pi * x) / np.tan(np.pi * x / n) / n, atol=1e-13)
    batch = circular_delay_response(n, np.array([[0.1], [2.0]]))
    assert batch.shape == (2, 1, n)
    np.testing.assert_allclose(np.fft.ifft(batch[1, 0]), np.roll(np.eye(n)[0], 2), atol=1e-13)


@pytest.mark.parametrize("call, message", [
    (lambda: band_edge_response(0.1, 1.5), "rolloff must be a number in"),
    (lambda: fractional_delay_taps(math.nan, 8), "delay must be a finite number"),
    (lambda: fractional_delay_taps(0.5, 0), "half_len must be a positive integer"),
    (lambda: fractional_delay_taps(0.5, 8, kaiser_beta=-1), "kaiser_beta"),
    (lambda: circular_delay_response(0, 0.5), "n must be a positive integer"),
])
def test_fractional_delay_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()
