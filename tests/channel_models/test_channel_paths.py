"""Path realisations: statistics of the drawn channels, frame truth, circular reference."""
import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import j0

import zakotfs
from channel_models import (FramePaths, PathSet, PowerDelayProfile, apply_frame_circular, check_cp,
                            draw_paths, load_profile, on_grid_paths)
from zakotfs.exact_channel import exact_operator

VEH_A = load_profile("veh-a")
ONE_PATH = PowerDelayProfile("one", (0.0,), (0.0,))


@pytest.mark.parametrize("doppler_model", ["single", "jakes"])
def test_mean_path_powers_follow_the_profile(doppler_model):
    rng = np.random.default_rng(11)
    n = 4000
    power = np.empty((n, VEH_A.n_paths))
    for r in range(n):
        paths = draw_paths(VEH_A, 500.0, rng, doppler_model=doppler_model, n_sinusoids=8)
        power[r] = np.abs(paths.gains([1e-3])[:, 0]) ** 2
    p = VEH_A.powers_linear
    # |h_i|^2 is (close to) exponential with mean p_i: standard error p_i / sqrt(n).
    assert np.all(np.abs(power.mean(0) - p) < 4.5 * p / math.sqrt(n)), (power.mean(0), p)
    # and Rayleigh: P(|h|^2 > p) = e^-1 (the Jakes sum of 8 sinusoids is close to it).
    assert np.abs(np.mean(power > p, axis=0) - math.exp(-1)) == pytest.approx(0, abs=0.04)


def test_fixed_gains_have_exactly_the_profile_power():
    paths = draw_paths(VEH_A, 100.0, np.random.default_rng(1), gain_model="fixed")
    np.testing.assert_allclose(np.abs(paths.amplitudes[:, 0]) ** 2, VEH_A.powers_linear, rtol=1e-12)
    np.testing.assert_allclose(paths.delays_s, VEH_A.delays_s)


def test_single_doppler_follows_the_cos_theta_law():
    """nu = nu_max cos(theta), theta uniform: the arcsine law, U-shaped (Jakes) spectrum."""
    rng = np.random.default_rng(5)
    nu_max = 815.0
    x = np.concatenate([draw_paths(VEH_A, nu_max, rng).dopplers_hz[:, 0] for _ in range(3000)]) / nu_max
    assert np.all(np.abs(x) <= 1)
    assert stats.kstest(x, lambda v: 1 - np.arccos(np.clip(v, -1, 1)) / np.pi).pvalue > 1e-3
    # A uniform Doppler, the obvious wrong model, is rejected by the same test.
    assert stats.kstest(rng.uniform(-1, 1, x.size),
                        lambda v: 1 - np.arccos(np.clip(v, -1, 1)) / np.pi).pvalue < 1e-6
    counts, _ = np.histogram(x, bins=20, range=(-1, 1))
    assert counts[0] > 3 * counts[10] and counts[-1] > 3 * counts[9]   # peaks at +-nu_max


@pytest.mark.parametrize("n_sinusoids", [4, 16])
def test_jakes_autocorrelation_is_bessel_j0(n_sinusoids):
    rng = np.random.default_rng(3)
    nu_max = 300.0
    lags = np.linspace(0, 3.0, 31) / nu_max       # nu_max dt up to 3
    n = 3000
    products = np.empty((n, lags.size), dtype=complex)
    for r in range(n):
        paths = draw_paths(ONE_PATH, nu_max, rng, doppler_model="jakes", n_sinusoids=n_sinusoids)
        h = paths.gains(0.25 + lags)[0]
        products[r] = h * np.conj(h[0])
    estimate = products.mean(0)
    stderr = products.std(0) / math.sqrt(n)
    theory = j0(2 * np.pi * nu_max * lags)
    assert np.all(np.abs(estimate.real - theory) < 4.5 * stderr + 1e-3), (estimate.real, theory)
    assert np.all(np.abs(estimate.imag) < 4.5 * stderr + 1e-3)
    # Each realisation's sinusoids keep their Dopplers inside [-nu_max, nu_max].
    assert np.all(np.abs(paths.dopplers_hz) <= nu_max)
    assert paths.amplitudes.shape == (1, n_sinusoids)


def test_frame_truth_is_the_absolute_time_channel_on_the_frame_clock():
    B = 3.84e6
    paths = draw_paths(VEH_A, 815.0, np.random.default_rng(2), doppler_model="jakes")
    t0 = 12_345_678
    fp = paths.at_frame(t0, B)
    q = np.arange(0, 5000, 7)
    np.testing.assert_allclose(fp.gains(q), paths.gains((t0 + q) / B), rtol=0, atol=1e-9)
    np.testing.assert_allclose(fp.delay, paths.delays_s * B)
    np.testing.assert_allclose(fp.doppler, paths.dopplers_hz / B)


def test_on_grid_paths_give_the_spec_frame_model(golden_config):
    cfg = golden_config
    h, d, m = np.array([0.5 + 0.1j, -0.3j]), np.array([1, 3]), np.array([-2, 1])
    paths = on_grid_paths(h, d, m, cfg, t0=40)
    fp = paths.at_frame(40, cfg.bandwidth)
    np.testing.assert_allclose(fp.delay, d, atol=1e-12)
    np.testing.assert_allclose(fp.doppler[:, 0], m / cfg.MN, atol=1e-15)
    np.testing.assert_allclose(fp.amp[:, 0], h * np.exp(-2j * np.pi * m * d / cfg.MN), atol=1e-12)
    # Default t0: the first frame of a stream, after preamble and CP.
    default = on_grid_paths(h, d, m, cfg).at_frame(cfg.preamble_len + cfg.cp_len, cfg.bandwidth)
    np.testing.assert_allclose(default.amp, fp.amp, atol=1e-12)


def test_circular_reference_reproduces_the_golden_frame(golden, golden_config):
    paths = on_grid_paths(golden["paths_h"], golden["paths_d"], golden["paths_m"], golden_config)
    fp = paths.at_frame(int(golden["cp"]), golden_config.bandwidth)
    s = zakotfs.inverse_zak(golden["X"])
    np.testing.assert_allclose(apply_frame_circular(fp, s), golden["rx"][int(golden["cp"]):], atol=1e-12)


def test_circular_reference_delay_and_doppler():
    rng = np.random.default_rng(0)
    n = 256
    s = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    shift = FramePaths(delay=[5.0], amp=[[1.0]], doppler=[[0.0]])
    np.testing.assert_allclose(apply_frame_circular(shift, s), np.roll(s, 5), atol=1e-12)
    # A fractional delay multiplies a (non-Nyquist) tone by exp(-j 2 pi f d) ...
    k, d = 17, 2.3
    tone = np.exp(2j * np.pi * k * np.arange(n) / n)
    out = apply_frame_circular(FramePaths(delay=[d], amp=[[1.0]], doppler=[[0.0]]), tone)
    np.testing.assert_allclose(out, tone * np.exp(-2j * np.pi * k / n * d), atol=1e-12)
    # ... a Doppler multiplies by exp(j 2 pi doppler q), and the band edge filter scales it.
    fp = FramePaths(delay=[0.0], amp=[[0.5j]], doppler=[[0.013]], rolloff=0.5)
    edge_tone = np.exp(2j * np.pi * 115 * np.arange(n) / n)     # f = 0.449: in the taper
    expected = 0.5j * np.exp(2j * np.pi * 0.013 * np.arange(n)) * edge_tone * \
        0.5 * (1 + np.cos(2 * np.pi * (115 / n - 0.25) / 0.5))
    np.testing.assert_allclose(apply_frame_circular(fp, edge_tone), expected, atol=1e-12)


def test_circular_reference_broadcasts_over_frames_and_keeps_complex64():
    rng = np.random.default_rng(4)
    paths = draw_paths(VEH_A, 815.0, rng, doppler_model="jakes", n_sinusoids=4)
    frames = [paths.at_frame(t0, 3.84e6) for t0 in (16, 16 + 2064)]
    batch = FramePaths.stack(frames)
    assert batch.amp.shape == (2, 6, 4) and batch.delay.shape == (2, 6)
    s = (rng.standard_normal((2, 128)) + 1j * rng.standard_normal((2, 128))).astype(np.complex64)
    out = apply_frame_circular(batch, s)
    assert out.dtype == np.complex64 and out.shape == (2, 128)
    for f in range(2):
        np.testing.assert_allclose(out[f], apply_frame_circular(frames[f], s[f]), atol=1e-5)


def test_frame_paths_round_trip_through_json():
    paths = draw_paths(VEH_A, 815.0, np.random.default_rng(8), doppler_model="jakes", n_sinusoids=3)
    fp = paths.at_frame(1000, 15.36e6, rolloff=0.2)
    back = FramePaths.from_dict(json.loads(json.dumps(fp.to_dict())))
    for key in ("delay", "amp", "doppler"):
        np.testing.assert_array_equal(getattr(back, key), getattr(fp, key))
    assert back.rolloff == 0.2
    again = PathSet.from_dict(json.loads(json.dumps(paths.to_dict())))
    np.testing.assert_array_equal(again.amplitudes, paths.amplitudes)
    with pytest.raises(ValueError, match="lacks amp_im"):
        FramePaths.from_dict({"delay": [0], "amp_re": [[1]], "doppler": [[0]]})
    with pytest.raises(ValueError, match="share their path and sinusoid counts"):
        FramePaths.stack([fp, draw_paths(VEH_A, 1.0, np.random.default_rng(0)).at_frame(0, 1e6, rolloff=0.2)])
    with pytest.raises(ValueError, match="share one rolloff"):
        FramePaths.stack([fp, paths.at_frame(0, 1e6)])


def test_check_cp():
    demo = zakotfs.preset("demo")
    assert check_cp(demo, draw_paths(VEH_A, 0.0, np.random.default_rng(0))) == pytest.approx(
        2.51e-6 * demo.bandwidth)
    with pytest.raises(ValueError, match=r"delay spread 307\.20 samples exceeds cp_len 96"):
        check_cp(demo, draw_paths(load_profile("veh-b"), 0.0, np.random.default_rng(0)))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"nu_max_hz": -1.0}, ValueError, "nu_max_hz"),
    ({"nu_max_hz": math.nan}, ValueError, "nu_max_hz"),
    ({"doppler_model": "flat"}, ValueError, "doppler_model must be one of single, jakes"),
    ({"gain_model": "rician"}, ValueError, "gain_model must be one of rayleigh, fixed"),
    ({"doppler_model": "jakes", "gain_model": "fixed"}, ValueError, "needs doppler_model='single'"),
    ({"doppler_model": "jakes", "n_sinusoids": 0}, ValueError, "n_sinusoids"),
    ({"rng": 42}, TypeError, "rng must be a numpy.random.Generator"),
])
def test_draw_paths_rejects_bad_parameters(kwargs, error, message):
    args = {"nu_max_hz": 100.0, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(error, match=message):
        draw_paths(VEH_A, **args)


@pytest.mark.parametrize("kwargs, message", [
    ({"delays_s": [0.0, 1e-7], "amplitudes": [1.0], "dopplers_hz": [0.0]},
     r"amplitudes must have shape \[P=2"),
    ({"delays_s": [0.0], "amplitudes": [[1.0, 1.0]], "dopplers_hz": [0.0]},
     "dopplers_hz must have the shape"),
    ({"delays_s": [math.nan], "amplitudes": [1.0], "dopplers_hz": [0.0]}, "delays_s must be finite"),
    ({"delays_s": [], "amplitudes": [], "dopplers_hz": []}, "non-empty"),
])
def test_path_set_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PathSet(**kwargs)


def test_frame_operator_is_the_circular_channel_with_rolloff():
    """FramePaths.operator (the receiver's perfect CSI) = apply_frame_circular, roll-off included."""
    from channel_models.paths import FramePaths, apply_frame_circular

    rng = np.random.default_rng(4)
    L = 256
    for rolloff in (0.0, 0.25):
        fp = FramePaths(delay=np.array([0.0, 3.4, 7.71]),
                        amp=rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2)),
                        doppler=rng.uniform(-2, 2, (3, 2)) / L, rolloff=rolloff)
        s = rng.standard_normal(L) + 1j * rng.standard_normal(L)
        np.testing.assert_allclose(exact_operator(fp, L).apply(s[None])[0], apply_frame_circular(fp, s), atol=1e-10)
