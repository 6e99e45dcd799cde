"""Branchless CG-LMMSE against the exact dense LMMSE on a small grid (a physical Veh-A
channel from the emulator, fractional delays and 1.74 Doppler bins)."""
import numpy as np
import pytest

from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths, draw_paths
from channel_models.profiles import load_profile
from dsp_kernels import cpu_cg
from zakotfs import FrameBuilder, FrameConfig, constellation, extract_data, inverse_zak, random_bits, zak
from zakotfs.channel_operator import ChannelOperator
from zakotfs.equalizer import cg_lmmse, data_mask, default_prior, default_segments, dense_lmmse
from zakotfs.exact_channel import exact_operator

SMALL = FrameConfig(M=128, N=16, bandwidth=1.92e6, cp_len=16, guard_neg=17, guard_pos=17,
                    max_delay=5, name="small")


@pytest.fixture(scope="module")
def small_frame():
    c = SMALL
    rng = np.random.default_rng(11)
    paths = draw_paths(load_profile("veh-a"), 1.74 / c.frame_time, rng)
    builder = FrameBuilder(c)
    bits = random_bits(c, 1, rng)
    tx = builder.stream(bits)
    n0 = 10 ** (-18 / 10)
    em = ChannelEmulator(paths, c.bandwidth, noise_var=n0, seed=1)
    rx = np.concatenate([em.process(tx), em.flush()])[:tx.size]
    fp = FramePaths.stack([em.frame_paths(c.preamble_len + c.cp_len)])
    op = exact_operator(fp, c.MN)
    r = rx[None, c.preamble_len + c.cp_len:] - op.apply(inverse_zak(builder.pilot)[None])
    H = np.stack([op.apply(e[None])[0] for e in np.eye(c.MN)], axis=1)
    return c, op, H, r, n0, builder.grid(bits)


def nearest_points(c, s):
    x = extract_data(c, zak(s, c.M, c.N))[0]
    points = constellation(c.modulation).points
    return np.argmin(np.abs(x[:, None] - points[None]), axis=1)


def test_cg_converges_to_dense_lmmse(small_frame):
    c, op, H, r, n0, x = small_frame
    s_dense = dense_lmmse(H, r[0], n0)
    segments = default_segments(c.MN, sum(c.tap_window) + 1, 1.74)
    errors, residuals = [], []
    for iterations in (4, 12, 24):
        sol = cg_lmmse(op, r, np.array([n0]), iterations, segments)
        errors.append(np.linalg.norm(sol.s[0] - s_dense) / np.linalg.norm(s_dense))
        residuals.append(float(sol.residual[0]))
    print("relative error vs dense", errors, "CG residual", residuals)
    assert errors[0] > errors[1] > errors[2] and errors[2] < 2e-3, errors
    assert residuals[0] > residuals[1] > residuals[2], residuals
    # decisions and symbol error rate: 24 iterations (this grid's delay x Doppler spread is
    # twice the demo grid's) agree with the dense solution
    sol = cg_lmmse(op, r, np.array([n0]), 24, segments)
    cg_points, dense_points = nearest_points(c, sol.s), nearest_points(c, s_dense[None])
    true_points = nearest_points(c, inverse_zak(x))
    assert np.mean(cg_points == dense_points) > 0.999
    ser_cg, ser_dense = np.mean(cg_points != true_points), np.mean(dense_points != true_points)
    print(f"symbol error rate: CG {ser_cg:.4f}, dense {ser_dense:.4f}")
    assert abs(ser_cg - ser_dense) <= 2 / cg_points.size + 0.05 * ser_dense


def test_guard_prior_loss_against_masked_dense_lmmse(small_frame):
    """The exact LMMSE (guard known to be zero) vs the unit-prior system CG solves: data MSE
    difference within the documented loss."""
    c, op, H, r, n0, x = small_frame
    s_unmasked = dense_lmmse(H, r[0], n0)
    Z_data = np.stack([inverse_zak(e.reshape(c.M, c.N)) for e in np.eye(c.MN)[c.data_index]], axis=1)
    x_masked, mu = dense_lmmse(H @ Z_data, r[0], n0, bias=True)
    x_true = extract_data(c, x[0])
    x_unmasked = extract_data(c, zak(s_unmasked[None], c.M, c.N))[0]
    mse_masked = np.mean(np.abs(x_masked - x_true) ** 2)
    mse_unmasked = np.mean(np.abs(x_unmasked - x_true) ** 2)
    loss_db = 10 * np.log10(mse_unmasked / mse_masked)
    print(f"guard fraction {1 - c.n_data / c.MN:.2f}: unit-prior loss {loss_db:.2f} dB")
    assert 0 <= loss_db < 0.5
    assert np.all((mu > 0) & (mu < 1))


@pytest.mark.parametrize("L,taps,bins", [(1600, 30, 1.0), (16384, 64, 1.74), (524288, 638, 1.74), (6144, 20, 0.5)])
def test_default_segments_tile_the_frame(L, taps, bins):
    """Regression: windows of 2h must tile the frame (MN = 1600 once gave 25 windows of 2h = 128)."""
    S = default_segments(L, taps, bins)
    h = L // S
    assert L % S == 0 and L % (2 * h) == 0 and S >= 2


def test_default_segments_are_the_longest_windows_within_the_doppler_phase():
    """2h: the longest power of two with 2 pi (nu T) 2h / L <= 0.4 rad, unless h must grow to
    the smallest power of two >= the taps."""
    from zakotfs.equalizer import DOPPLER_PHASE

    for L, taps, bins, two_h in ((524288, 638, 2.13, 8192), (524288, 638, 4.0, 8192), (16384, 64, 4.0, 256),
                                 (16384, 64, 2.0, 512), (2048, 15, 1.07, 64), (16384, 100, 8.0, 256)):
        S = default_segments(L, taps, bins)
        assert 2 * L // S == two_h, (L, taps, bins, S)
        phase = 2 * np.pi * bins * two_h / L
        assert phase <= DOPPLER_PHASE or two_h // 4 < taps      # the tap floor may exceed the phase


def test_preconditioner_keeps_cg_converging_under_doppler_at_high_snr():
    """Veh-A at 3.5 Doppler bins, 28 dB, exact operator (demo grid): with the window's mean
    power response, 12 iterations reach a worst residual of 4.7e-4 over 3 realisations; the
    response frozen at the window centre left 3.6e-3 (moving channel nulls)."""
    from zakotfs import preset

    c = preset("demo")
    rng = np.random.default_rng(7)
    n0 = np.array([10 ** (-28 / 10)], np.float32)
    worst = 0.0
    for trial in range(3):
        em = ChannelEmulator(draw_paths(load_profile("veh-a"), 3.5 / c.frame_time, rng), c.bandwidth, seed=trial)
        op = exact_operator(em.frame_paths(1000), c.MN).astype(np.complex64)
        s = ((rng.integers(0, 2, (1, c.MN)) * 2 - 1) + 1j * (rng.integers(0, 2, (1, c.MN)) * 2 - 1)) / np.sqrt(2)
        noise = np.sqrt(n0 / 2) * (rng.standard_normal((1, c.MN)) + 1j * rng.standard_normal((1, c.MN)))
        r = (op.apply(s.astype(np.complex64)) + noise).astype(np.complex64)
        segments = default_segments(c.MN, sum(c.tap_window) + 1, 3.5)
        worst = max(worst, float(cg_lmmse(op, r, n0, 12, segments).residual[0]))
    assert worst < 1.5e-3, worst


def test_predicted_sinr_is_the_measured_one_under_doppler():
    """The receiver's SINR (the time-frequency mean of the local gains) against the measured
    error of its unbiased symbols, perfect CSI, Veh-A at 815 Hz (0.87 Doppler bins on the demo
    grid), 20 dB: within 0.3 dB on every frame. The frame-averaged P(f) overstated it by 1.6
    to 3.9 dB on these frames."""
    from zakotfs import preset
    from zakotfs.receiver import Receiver

    c = preset("demo")
    rng = np.random.default_rng(11)
    receiver = Receiver(c, backend="cpu", estimator="perfect", keep_symbols=True, quiet=True)
    builder = FrameBuilder(c)
    noise_var = 0.01
    for _ in range(3):
        bits = random_bits(c, 1, rng)
        tx = builder.stream(bits)
        em = ChannelEmulator(draw_paths(load_profile("veh-a"), 815.0, rng), c.bandwidth, noise_var=noise_var,
                             seed=int(rng.integers(2**31)))
        rx = np.concatenate([em.process(tx), em.flush()])[:tx.size][None, c.preamble_len:]
        truth = exact_operator(FramePaths.stack([em.frame_paths(c.preamble_len + c.cp_len)]), c.MN)
        out = receiver.process(rx, operator=truth, noise_var=noise_var)
        x = extract_data(c, builder.grid(bits))
        measured_db = -10 * np.log10(np.mean(np.abs(out.symbols - x) ** 2))
        assert abs(out.sinr_db[0] - measured_db) < 0.3, (out.sinr_db[0], measured_db)


@pytest.mark.skipif(not cpu_cg.available(), reason="FFTW (pyFFTW) is not installed")
@pytest.mark.parametrize("prior", ["unit", "data"])
def test_compiled_cg_runs_the_array_codes_iterations(small_frame, monkeypatch, prior):
    """``dsp_kernels.cpu_cg`` (a frame at a time, FFTW from compiled code) against the array
    code of ``cg_lmmse`` on the same inputs, two frames with different N0, without and with
    the data mask: after 1, 4 and 12 iterations its iterates are within float32 rounding of
    the complex128 array code's (the complex64 array code's distance, up to 10x: the steps
    are data dependent, and FFTW's measured plans round differently from run to run; a
    wrong term is off by 1e-3 or more), with the same residuals; the operator alone to
    float32; without the mask, with 24 iterations, the dense LMMSE's solution."""
    c, op, H, r, n0, _ = small_frame
    mask = data_mask(c) if prior == "data" else None
    op64 = ChannelOperator(op.basis.reshape(op.basis.shape[-2:]).astype(np.complex64),
                           np.concatenate([op.taps_fft, op.taps_fft]).astype(np.complex64))
    frames = np.concatenate([r, r[:, ::-1]]).astype(np.complex64)
    noise = np.array([n0, 3 * n0])
    segments = default_segments(c.MN, sum(c.tap_window) + 1, 1.74)
    assert op64.compiled(frames)
    op128 = ChannelOperator(op64.basis.astype(complex), op64.taps_fft.astype(complex))
    for iterations in (1, 4, 12):
        compiled = cg_lmmse(op64, frames, noise, iterations, segments, mask=mask)
        with monkeypatch.context() as m:
            m.setattr(ChannelOperator, "compiled", lambda *_: False)
            array = cg_lmmse(op64, frames, noise, iterations, segments, mask=mask)
            exact = cg_lmmse(op128, frames.astype(complex), noise, iterations, segments, mask=mask)
        error = lambda sol: np.linalg.norm(sol.s - exact.s) / np.linalg.norm(exact.s)   # noqa: E731
        assert error(compiled) <= 10 * error(array) + 1e-5, (iterations, error(compiled), error(array))
        np.testing.assert_allclose(compiled.residual, exact.residual, rtol=2e-2)
    np.testing.assert_allclose(op64.apply(frames), op128.apply(frames.astype(complex)), atol=1e-5)
    if mask is not None:
        assert np.all(compiled.s[:, mask == 0] == 0)
        return
    s_dense = dense_lmmse(H, r[0], n0)
    converged = cg_lmmse(op64, frames, noise, 24, segments).s[0]
    assert np.linalg.norm(converged - s_dense) < 2e-3 * np.linalg.norm(s_dense)


def test_the_masked_cg_converges_to_the_data_prior_lmmse(small_frame):
    """``cg_lmmse`` with the data mask against the dense LMMSE with zero variance on guard
    and pilot (this grid's guard is 27 % of its delay bins): the symbols' relative error
    falls with the iterations to under 1e-2 at 24, and the solution is zero off the data
    samples."""
    c, op, H, r, n0, _ = small_frame
    Z_data = np.stack([inverse_zak(e.reshape(c.M, c.N)) for e in np.eye(c.MN)[c.data_index]], axis=1)
    x_dense = dense_lmmse(H @ Z_data, r[0], n0)
    segments = default_segments(c.MN, sum(c.tap_window) + 1, 1.74)
    mask = data_mask(c, dtype=np.float64)
    errors = []
    for iterations in (4, 12, 24):
        sol = cg_lmmse(op, r, np.array([n0]), iterations, segments, mask=mask)
        x = extract_data(c, zak(sol.s, c.M, c.N))[0]
        errors.append(np.linalg.norm(x - x_dense) / np.linalg.norm(x_dense))
    print("relative error against the dense data-prior LMMSE", errors)
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-2, errors
    assert np.all(sol.s[0][mask == 0] == 0)


def test_perfect_csi_with_the_data_prior_makes_the_exact_lmmses_errors():
    """The receiver with the true channel and the data prior (its default on 64x32 at 0.96
    MHz, a guard of 61 % of the delay bins) against the dense reference
    (``bench.reference_gap.exact_lmmse``) on 16 frames at 20 dB: within 5 % of its bit
    errors; the unit prior makes over 10 % more. The paper grid's guard (8 %) keeps the
    unit prior by default."""
    from bench.reference_gap import GRIDS, emulate, exact_lmmse, hard_bits
    from zakotfs import preset
    from zakotfs.receiver import Receiver

    c = GRIDS["64x32"]()
    assert default_prior(c) == "data" and default_prior(preset("paper")) == "unit"
    receivers = {p: Receiver(c, backend="cpu", estimator="perfect", prior=p, quiet=True) for p in ("data", "unit")}
    rng = np.random.default_rng(8)
    errors = dict.fromkeys(("data", "unit", "exact"), 0)
    for _ in range(4):
        em = emulate(c, 20.0, rng, batch=4)
        frames = em.frames(c)
        op = exact_operator(em.paths, c.MN)
        for p, rx in receivers.items():
            errors[p] += int(np.count_nonzero(rx.process(frames, operator=op, noise_var=0.01).bits != em.bits))
        r = frames[:, c.cp_len:].astype(complex)
        x = np.stack([exact_lmmse(c, ChannelOperator(op.basis[f:f + 1], op.taps_fft[f:f + 1]), r[f], 0.01)
                      for f in range(4)])
        errors["exact"] += int(np.count_nonzero(hard_bits(c, x) != em.bits))
    print(errors)
    assert abs(errors["data"] - errors["exact"]) <= 0.05 * errors["exact"]
    assert errors["unit"] > 1.1 * errors["exact"]
