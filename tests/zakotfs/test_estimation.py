import numpy as np

from zakotfs import FrameConfig, preset
from zakotfs.estimation import AccurateEstimator, PaperEstimator, guard_noise_variance, pilot_snapshots


def test_paper_readoff_reproduces_golden_heff(vectors):
    """PaperEstimator.read_off on the golden pilot-only frame = heff_pilot_only (spec formula)."""
    v = vectors["frame_ongrid"]
    c = FrameConfig(M=int(v["M"]), N=int(v["N"]), bandwidth=1e6, modulation="qpsk", cp_len=int(v["cp"]),
                    guard_neg=int(v["g_neg"]), guard_pos=int(v["g_pos"]), max_delay=0,
                    pilot_k=int(v["kp"]), pilot_l=int(v["lp"]), pilot_amplitude=float(v["pilot"].real))
    est = PaperEstimator(c, max_doppler_hz=1e9, threshold=0.0)          # all N Dopplers, no threshold
    h, _ = est.read_off(v["rx_pilot_only"][None, c.cp_len:])
    for i, d in enumerate(v["heff_delays"]):
        for j, m in enumerate(v["heff_dopplers"]):
            if d in est.delays:
                got = h[0, list(est.delays).index(d), list(est.dopplers).index(m)]
                assert abs(got - v["heff_pilot_only"][i, j]) < 1e-12, (d, m)


def test_noise_variance_estimates_on_pure_noise(rng):
    c = preset("demo")
    n0 = 0.05
    r = np.sqrt(n0 / 2) * (rng.standard_normal((4, c.MN)) + 1j * rng.standard_normal((4, c.MN)))
    guard = guard_noise_variance(c, pilot_snapshots(c, r))
    accurate = AccurateEstimator(c)(r).noise_var
    for estimate in (guard, accurate):
        assert np.all(np.abs(np.asarray(estimate) / n0 - 1) < 0.15), estimate


def test_delay_atoms_stay_inside_the_window(rng):
    """Regression: residual energy at the window edge must not buy a half-observed atom."""
    c = preset("demo")
    est = AccurateEstimator(c)
    W, P = est.taus.size, est.P
    coeffs = 1e-3 * (rng.standard_normal((2, W, P)) + 1j * rng.standard_normal((2, W, P)))
    coeffs[:, -1, :] += 0.2                                             # energy on the last tap
    coeffs[:, 12, 0] += 1.0                                             # a path at delay 0
    amplitudes, delays, active = est.fit_delays(coeffs, np.full(2, 1e-6))
    kept = delays[active]
    assert np.all(kept >= est.taus[0] + est.edge) and np.all(kept <= est.taus[-1] - est.edge)
    assert np.any(np.abs(kept) < 1e-9)                                  # the real path is found


def test_a_path_beyond_the_fit_range_does_not_end_the_fit(rng):
    """The strongest path 1.4 samples beyond the fit's range (its candidates would all clip
    to the edge and score nothing): the three paths inside it are still found, to within
    0.05 samples (the far path's sinc tails pull them by about 0.02)."""
    est = AccurateEstimator(preset("demo"))
    hi = est.taus[-1] - est.edge
    inside = np.array([3.3, 17.6, 30.2])
    delays_true = np.append(inside, hi + 1.4)
    gains = np.array([0.5, 0.4, 0.3, 1.0])[:, None] * np.exp(2j * np.pi * rng.random((4, est.P)))
    coeffs = est._atoms(delays_true, np) @ gains
    coeffs = coeffs[None] + 1e-3 * (rng.standard_normal((1,) + coeffs.shape) + 1j * rng.standard_normal((1,) + coeffs.shape))
    _, delays, active = est.fit_delays(coeffs, np.full(1, 2e-6))
    kept = delays[active]
    for d in inside:
        assert np.min(np.abs(kept - d)) < 0.05, (d, kept)


def test_path_fit_beats_the_delay_fit_on_paths_within_a_sample(rng):
    """Two paths 0.3 samples apart with Dopplers a bin and a half apart (the 64 x 32 grid at
    0.96 MHz, 8 DPSS functions): the path fit finds both at their delays and its estimate of
    the coefficients is closer than the delay fit's, whose atoms carry P free coefficients
    each; noise alone gives no path."""
    from zakotfs import design

    est = AccurateEstimator(design(64, 32, 0.96e6))
    W, P = est.taus.size, est.P
    G = est.tones.shape[1]
    delays_true = np.array([0.4, 0.7])
    tones_true = np.array([G // 2 - 300, G // 2 + 84])                 # -1.17 and +0.33 bins
    gains = np.array([1.0, 0.6 * np.exp(1j)])
    clean = np.einsum("wj,pj,j->wp", est._atoms(delays_true, np).real, est.tones[:, tones_true], gains)
    sigma = 3e-3
    noise = sigma * (rng.standard_normal((3, W, P)) + 1j * rng.standard_normal((3, W, P)))
    coeffs = np.concatenate([clean[None] + noise[:2], noise[2:]])
    coeff_var = np.full(3, 2 * sigma ** 2)
    amplitudes, delays, active = est.fit_paths(coeffs, coeff_var)
    assert not active[2].any()
    errors = {}
    for name, (a, d, on) in {"paths": (amplitudes, delays, active),
                             "delays": est.fit_delays(coeffs, coeff_var)}.items():
        model = np.einsum("fwj,fjp->fwp", est._atoms(d, np), a * on[..., None])
        errors[name] = np.sum(np.abs(model[:2] - clean) ** 2) / np.sum(np.abs(clean) ** 2)
    for f in range(2):
        for d in delays_true:
            assert np.min(np.abs(delays[f][active[f]] - d)) < 0.02, (d, delays[f][active[f]])
    assert errors["paths"] < 0.5 * errors["delays"], errors


def test_n0_is_the_noise_not_the_datas_leak():
    """128x16 at 1.92 MHz, Veh-A 815 Hz, 25 dB, 6 realisations x 4 frames with data, the
    receiver's N0 (``RxResult.noise_var``): the data beyond the guard reach the pilot's
    snapshots through the channel's sinc tails and, left in, read as 2.9x the noise
    (median); with their predicted power removed (``AccurateEstimator.data_leak``, at least
    half the residual kept: ``LEAK_FLOOR``) 1.5x, and no frame under 0.8x."""
    from bench.reference_gap import GRIDS, emulate
    from zakotfs.receiver import Receiver

    c = GRIDS["128x16"]()
    receiver = Receiver(c, backend="cpu", quiet=True)
    rng = np.random.default_rng(4)
    ratios = []
    for _ in range(6):
        ratios += list(receiver.process(emulate(c, 25.0, rng, batch=4).frames(c)).noise_var / 10 ** -2.5)
    print("N0 estimate / N0: median", np.median(ratios), "range", min(ratios), max(ratios))
    assert 0.8 < np.median(ratios) < 1.7 and min(ratios) > 0.75
