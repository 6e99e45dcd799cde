"""The streaming sample clock (``channel_models.sample_clock``) against the exact reading of
the whole stream at (1 + epsilon) m (``TimeScale``), and independent of chunking."""
import numpy as np
import pytest

from channel_models.sample_clock import SampleClock
from dsp_kernels.resample import TimeScale


@pytest.mark.parametrize("ppm", [100.0, -50.0])
def test_streamed_clock_reads_the_stream_at_the_slow_instants(rng, ppm):
    n, pad = 120_000, 20_000
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    exact = TimeScale(n + pad, 1 + ppm * 1e-6, dtype=np.complex128)(np.concatenate([x, np.zeros(pad)]).astype(complex))
    clock = SampleClock(ppm, block=1 << 13)
    parts, pos = [], 0
    while pos < n:
        k = int(rng.integers(1, 25_000))
        parts.append(clock.process(x[pos:pos + k]))
        pos += k
    y = np.concatenate(parts + [clock.flush()])
    assert y.size == int(np.floor((n - 1) / (1 + ppm * 1e-6))) + 1
    whole = SampleClock(ppm, block=1 << 13)
    np.testing.assert_array_equal(np.concatenate([whole.process(x), whole.flush()]), y)
    inner = slice(5000, n - 5000)                # away from the stream's own ends
    error = np.mean(np.abs(y[inner] - exact[inner]) ** 2) / np.mean(np.abs(x) ** 2)
    assert 10 * np.log10(error) < -40                 # the window edges, K = 4096: about -43 dB


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="ppm"):
        SampleClock(float("nan"))
    with pytest.raises(ValueError, match="positive"):
        SampleClock(10.0, block=0)
