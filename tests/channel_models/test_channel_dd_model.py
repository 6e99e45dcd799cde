"""The DD twisted-convolution model against the golden vector and the time-domain channel."""
import numpy as np
import pytest

import zakotfs
from channel_models import apply_frame_circular, dd_twisted_convolution, on_grid_paths


def test_golden_frame(golden):
    y = dd_twisted_convolution(golden["X"], golden["paths_h"], golden["paths_d"], golden["paths_m"])
    np.testing.assert_allclose(y, golden["Y"], atol=1e-12)
    pilot = np.zeros_like(golden["X"])
    pilot[int(golden["kp"]), int(golden["lp"])] = golden["pilot"]
    y = dd_twisted_convolution(pilot, golden["paths_h"], golden["paths_d"], golden["paths_m"])
    np.testing.assert_allclose(y, golden["Y_pilot_only"], atol=1e-12)


def test_model_equals_the_circular_time_channel_for_on_grid_taps():
    """Exact for integer taps, wraps across the grid included (d beyond M, negative m)."""
    M, N = 8, 4
    cfg = zakotfs.FrameConfig(M=M, N=N, bandwidth=1e6, cp_len=0)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, M, N)) + 1j * rng.standard_normal((3, M, N))
    h = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    d = np.array([0, 3, 9, -2, 17])
    m = np.array([0, -1, 2, 5, -6])
    frame = on_grid_paths(h, d, m, cfg, t0=0).at_frame(0, cfg.bandwidth)
    r = apply_frame_circular(frame, zakotfs.inverse_zak(x))
    np.testing.assert_allclose(dd_twisted_convolution(x, h, d, m), zakotfs.zak(r, M, N), atol=1e-12)
    y64 = dd_twisted_convolution(x.astype(np.complex64), h, d, m)
    assert y64.dtype == np.complex64


def test_dd_model_validation():
    x = np.zeros((4, 2), dtype=complex)
    with pytest.raises(ValueError, match="d and m must be integer bins"):
        dd_twisted_convolution(x, [1.0], [0.5], [0])
    with pytest.raises(ValueError, match="1-D of one length"):
        dd_twisted_convolution(x, [1.0, 2.0], [0], [0])
    with pytest.raises(ValueError, match=r"x must have shape \[..., M, N\]"):
        dd_twisted_convolution(np.zeros(4), [1.0], [0], [0])
