"""The data-only-prior equaliser (``zakotfs.data_prior``) against the dense LMMSE with the
same prior, on frames through the physical emulator (fractional delays, one Doppler per
path)."""
import numpy as np
import pytest

from bench.reference_gap import dd_columns, dense_time_matrix, emulate
from zakotfs import design, zak
from zakotfs.channel_operator import ChannelOperator
from zakotfs.data_prior import DataSegments, data_prior_lmmse, default_prior
from zakotfs.equalizer import dense_lmmse
from zakotfs.exact_channel import exact_operator
from zakotfs.frame import pilot_grid
from zakotfs.receiver import Receiver
from zakotfs.zak_transform import inverse_zak

GRID = design(64, 32, 0.96e6, name="64x32")


@pytest.fixture(scope="module")
def frame():
    """One 64x32 frame at 0.96 MHz (Veh-A, 815 Hz, 22 dB): the exact operator, the data
    part r - H s_p, N0 and the dense data-only LMMSE (symbols and per-symbol bias)."""
    c = GRID
    em = emulate(c, 22.0, np.random.default_rng(3), batch=1)
    op = exact_operator(em.paths, c.MN)
    n0 = 10 ** (-22 / 10)
    r = em.frames(c)[:, c.cp_len:].astype(complex)
    y = r - op.apply(inverse_zak(pilot_grid(c))[None])
    H_d = dd_columns(c, dense_time_matrix(op))[:, c.data_index]
    x, mu = dense_lmmse(H_d, y[0], n0, bias=True)
    return op, y, n0, x, mu


def solve(op, y, n0, iterations, segments=None):
    segments = segments or DataSegments(GRID, np, np.float64)
    sol, mu = data_prior_lmmse(op, y, np.array([n0]), iterations, segments)
    x = zak(sol.s, GRID.M, GRID.N).reshape(1, -1)[:, GRID.data_index]
    return sol, x[0], mu[0]


def test_the_segment_inverses_reach_the_dense_solution_in_a_few_iterations(frame):
    """Relative error of the biased symbols against the dense solution after 1, 2, 4 and
    12 iterations: falling, under 5e-4 after 4 (1.0e-3 without the taps beyond the tap
    window, ``SEGMENT_PAD`` = 0) and 1e-8 after 12; the PCG residual (on the data samples)
    falls with it."""
    op, y, n0, x_dense, _ = frame
    errors, residuals = [], []
    for k in (1, 2, 4, 12):
        sol, x, _ = solve(op, y, n0, k)
        errors.append(np.linalg.norm(x - x_dense) / np.linalg.norm(x_dense))
        residuals.append(float(sol.residual[0]))
    print("relative error", errors, "residual", residuals)
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[2] < 5e-4 and errors[3] < 1e-8, errors
    assert residuals[0] > residuals[2] > residuals[3] and residuals[3] < 1e-8


def test_the_solution_is_zero_off_the_data_samples(frame):
    op, y, n0, _, _ = frame
    sol, _, _ = solve(op, y, n0, 4)
    mask = np.tile(GRID.delay_is_data, GRID.N)
    assert np.all(sol.s[0][~mask] == 0) and np.abs(sol.s[0][mask]).min() > 0


def test_the_per_symbol_bias_is_the_dense_one(frame):
    """mu_i = 1 - N0 [A^{-1}]_ii of the dense system against the segments' (their mean over
    the N samples of a delay bin): within 1 % on every symbol, and the bias differs between
    delay bins (the edge bins of a segment see less of the channel's energy)."""
    op, y, n0, _, mu_dense = frame
    _, _, mu = solve(op, y, n0, 4)
    assert np.max(np.abs(mu / mu_dense - 1)) < 1e-2
    per_bin = mu.reshape(-1, GRID.N)[:, 0]
    assert per_bin.max() - per_bin.min() > 10 * np.max(np.abs(mu - mu_dense))


def test_perfect_csi_with_the_data_prior_makes_the_exact_lmmses_errors():
    """The receiver with the true channel and the data-only prior (its default on 64x32)
    against the dense reference (``bench.reference_gap.exact_lmmse``) on 16 frames at 20
    dB: within 3 % of its bit errors; the unit prior makes over 10 % more."""
    from bench.reference_gap import exact_lmmse, hard_bits

    c = GRID
    assert default_prior(c) == "data"
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
    assert abs(errors["data"] - errors["exact"]) <= 0.03 * errors["exact"]
    assert errors["unit"] > 1.1 * errors["exact"]


def test_the_data_prior_needs_the_frame_long_operator():
    with pytest.raises(ValueError, match="operator_window=0"):
        Receiver(GRID, backend="cpu", prior="data", operator_window=1024, quiet=True)
    with pytest.raises(ValueError, match="prior must be one of"):
        Receiver(GRID, backend="cpu", prior="zero", quiet=True)


def test_the_bench_counts_the_data_priors_work():
    from zakotfs.benchmark import work_per_frame

    work = work_per_frame(Receiver(GRID, backend="cpu", quiet=True))
    assert work["prior"] == "data" and work["cg_iterations"] == 4
    assert work["segment_inverses"] == 32 and work["segment_size"] == 25 and work["fft_points_preconditioner"] == 0
    assert work["preconditioner_macs"] == 5 * 32 * 25 * 25
    unit = work_per_frame(Receiver(GRID, backend="cpu", prior="unit", quiet=True))
    assert unit["prior"] == "unit" and unit["fft_points_preconditioner"] == 13 * 4 * GRID.MN
