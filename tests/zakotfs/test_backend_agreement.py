"""The receiver on the GPU gives the CPU's results to float32 tolerance, stage by stage.

Each stage is fed the same input on both backends, so a difference points at the stage
that makes it: the channel estimate (operator and N0), the CG-LMMSE solution on a common
operator, and the bits and LLRs end to end. The CPU variant of each test compares the CPU
backend with itself through the same code (it keeps the harness honest where CI has no GPU).
"""
import numpy as np
import pytest

from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths, draw_paths
from channel_models.profiles import load_profile
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.channel_operator import ChannelOperator
from zakotfs.equalizer import cg_lmmse
from zakotfs.exact_channel import exact_operator
from zakotfs.receiver import Receiver


@pytest.fixture(scope="module")
def link():
    """Three demo frames through a physical Veh-A channel at 1.74 Doppler bins, 20 dB, with a
    2 kHz carrier offset (which the receivers remove)."""
    c = preset("demo")
    rng = np.random.default_rng(7)
    bits = random_bits(c, 3, rng)
    tx = FrameBuilder(c).stream(bits)
    nu = 1.74 / c.frame_time
    em = ChannelEmulator(draw_paths(load_profile("veh-a"), nu, rng), c.bandwidth, snr_db=20.0, seed=7,
                         cfo_hz=2000.0)
    rx = np.concatenate([em.process(tx), em.flush()])[:tx.size].reshape(3, -1)
    fp = FramePaths.stack([em.frame_paths(f * c.samples_per_frame + c.preamble_len + c.cp_len)
                           for f in range(3)])
    return c, rx[:, c.preamble_len:], bits, exact_operator(fp, c.MN), nu


def _relative_error(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.mark.parametrize("estimator, path_fit", [("accurate", None), ("accurate", True), ("paper", None)])
def test_channel_estimate_agrees(backend, link, estimator, path_fit):
    """The estimate on the backend against the CPU's with the same fits (the path fit by
    default on the CPU only, where it runs compiled; ``path_fit=True`` runs its array code
    on the GPU)."""
    c, frames, _, _, nu = link
    other = Receiver(c, backend=backend, estimator=estimator, max_doppler_hz=1.15 * nu, path_fit=path_fit, quiet=True)
    reference = Receiver(c, backend="cpu", estimator=estimator, max_doppler_hz=1.15 * nu, path_fit=other.path_fit,
                         quiet=True)
    r = frames[:, c.cp_len:].astype(np.complex64)
    want = reference.estimate(r)
    got = other.estimate(backend.asarray(r))
    h_want = want.operator.apply(np.eye(1, c.MN, c.pilot_k + c.M, dtype=np.complex64).repeat(3, 0))
    h_got = got.operator.apply(backend.asarray(np.eye(1, c.MN, c.pilot_k + c.M, dtype=np.complex64).repeat(3, 0)))
    # the impulse response of the estimated channel, and N0
    assert _relative_error(backend.asnumpy(h_got), h_want) < 1e-4
    np.testing.assert_allclose(backend.asnumpy(got.noise_var), want.noise_var, rtol=1e-4)


def test_cg_solution_agrees(backend, link):
    """Twelve CG iterations amplify rounding (the step sizes are data dependent): the GPU's
    complex64 solution, and its residuals, must be as close to the CPU's as the CPU's own
    complex64 ones are to its complex128 ones (measured: solutions 6e-3 apart, GPU to CPU
    3e-4; residuals near the float32 floor, 15 % apart over the three frames, GPU to CPU 3 %
    on the H100)."""
    c, frames, _, truth, _ = link
    r = frames[:, c.cp_len:]
    n0 = np.full(3, 0.01)
    exact = cg_lmmse(truth, r.astype(np.complex128), n0, 12, 32)
    want = cg_lmmse(truth.astype(np.complex64), r.astype(np.complex64), n0, 12, 32)
    op = ChannelOperator(backend.asarray(truth.basis, dtype=np.complex64),
                         backend.asarray(truth.taps_fft, dtype=np.complex64))
    got = cg_lmmse(op, backend.asarray(r.astype(np.complex64)), backend.asarray(n0), 12, 32)
    assert _relative_error(backend.asnumpy(got.s), want.s) <= max(_relative_error(want.s, exact.s), 1e-6)
    floor = max(_relative_error(want.residual, exact.residual), 1e-2)
    assert _relative_error(backend.asnumpy(got.residual), want.residual) <= floor


@pytest.mark.parametrize("estimator", ["accurate", "paper", "perfect"])
def test_bits_and_llrs_agree(backend, link, estimator):
    c, frames, bits, truth, nu = link
    perfect = dict(operator=truth, noise_var=0.01) if estimator == "perfect" else {}
    receiver = Receiver(c, backend=backend, estimator=estimator, max_doppler_hz=1.15 * nu, quiet=True)
    got = receiver.process(frames, **perfect)
    want = Receiver(c, backend="cpu", estimator=estimator, max_doppler_hz=1.15 * nu, path_fit=receiver.path_fit,
                    quiet=True).process(frames, **perfect)
    # a bit flips only where the LLRs' float32 difference can carry it across zero
    flipped = got.bits != want.bits
    assert flipped.mean() < 1e-3, flipped.mean()
    assert np.all(np.abs(want.llr[flipped]) <= np.abs(got.llr - want.llr).max())
    # CG amplifies float32 rounding (test_cg_solution_agrees): LLRs agree to a few 1e-3
    assert _relative_error(got.llr, want.llr) < 1e-2
    np.testing.assert_allclose(got.sinr_db, want.sinr_db, atol=1e-3)
    np.testing.assert_allclose(got.cfo_hz, want.cfo_hz, atol=1.0)
    # and the link works at 20 dB, 16QAM (paper mode has its known model-error floor)
    assert np.mean(got.bits != bits) < (0.2 if estimator == "paper" else 5e-2)


@pytest.mark.parametrize("graph", [True, False])
@pytest.mark.parametrize("operator_window", [0, 1024])
def test_realtime_path_gives_the_receivers_results(backend, link, graph, operator_window):
    """The pre-allocated path (a CUDA graph replay on the GPU) computes what Receiver.process
    does, call after call, on distinct frames, with the exact and the windowed operator; a
    NaN frame is erased in both."""
    from zakotfs.realtime import RealtimeReceiver

    c, frames, _, _, nu = link
    receiver = Receiver(c, backend=backend, max_doppler_hz=1.15 * nu, operator_window=operator_window, quiet=True)
    realtime = RealtimeReceiver(receiver, batch=2, graph=graph)
    assert realtime.capture_error is None
    bad = frames[[2, 0]].copy()
    bad[0, 500] = np.nan
    for batch in (frames[:2], frames[1:], bad):
        want = receiver.process(batch)
        got = realtime.process(realtime.pinned_frames(batch))
        np.testing.assert_array_equal(got.valid, want.valid)
        assert np.mean(got.bits != want.bits) < 1e-4
        assert _relative_error(got.llr, want.llr) < 1e-4
        np.testing.assert_allclose(got.noise_var, want.noise_var, rtol=1e-4)
        np.testing.assert_allclose(got.cfo_hz, want.cfo_hz, atol=1.0)
        np.testing.assert_allclose(got.delay_first, want.delay_first, atol=1e-4)   # float32 in the packed stats
        np.testing.assert_allclose(got.delay_last, want.delay_last, atol=1e-4)
        np.testing.assert_array_equal(np.isnan(got.echo_delay), np.isnan(want.echo_delay))
        assert set(got.stage_s) <= {"transfer_in", "chain", "transfer_out", "front_end", "estimate", "echo", "equalize",
                                    "demap"}
    assert np.all(got.llr[0] == 0)                         # the erased frame carries no information
    # a short batch (the end of a stream) is padded, and its results are the receiver's
    want, got = receiver.process(frames[2:]), realtime.process(frames[2:], copy=True)
    assert got.bits.shape == want.bits.shape and np.mean(got.bits != want.bits) < 1e-4
    assert _relative_error(got.llr, want.llr) < 1e-4
    with pytest.raises(ValueError, match="expected shape"):
        realtime.process(frames)


def test_pipelined_path_keeps_order_and_gives_the_receivers_results(backend, link):
    """Batches in flight (on the GPU two: uploads, chains and downloads on three streams, two
    slots taking turns; on the CPU two, each split between two worker processes): each
    collect returns the oldest batch's results, the receiver's own, through slot reuse and a
    short last batch; misuse raises instead of blocking."""
    from zakotfs.pipelined import PipelinedReceiver

    c, frames, _, _, nu = link
    receiver = Receiver(c, backend=backend, max_doppler_hz=1.15 * nu, quiet=True)
    pipeline = PipelinedReceiver(receiver, batch=2, depth=2, copy=True, workers=2)
    with pytest.raises(RuntimeError, match="no batch in flight"):
        pipeline.collect()
    batches = [pipeline.pinned_frames(frames[:2]), pipeline.pinned_frames(frames[1:]), frames[[2, 0]], frames[2:]]
    wants = [receiver.process(b) for b in batches]
    depth = pipeline.describe()["depth"]
    assert depth == 2 and pipeline.describe()["cpu_workers"] == (2 if backend.name == "cpu" else 0)
    got = []
    for b in batches[:depth]:
        pipeline.submit(b)
    with pytest.raises(RuntimeError, match="already in flight"):
        pipeline.submit(batches[depth])
    for b in batches[depth:]:
        got.append(pipeline.collect())
        pipeline.submit(b)
    while pipeline.in_flight:
        got.append(pipeline.collect())
    pipeline.close()
    assert len(got) == len(wants)
    # CPU workers take a batch's frames apart, and FFTW vectorises across the frames of a
    # batch: other float32 rounding, which the CG's data-dependent steps amplify
    tolerance = 1e-4 if backend.name == "gpu" else 1e-3
    for g, w in zip(got, wants):
        assert g.bits.shape == w.bits.shape
        assert np.mean(g.bits != w.bits) < 3 * tolerance / 10
        assert _relative_error(g.llr, w.llr) < tolerance
        np.testing.assert_allclose(g.noise_var, w.noise_var, rtol=1e-4)


def test_int8_llrs_are_the_float_llrs_quantised(backend, link):
    """llr_format="int8": codes of the float32 LLRs (within one code where CG's float32
    rounding moves an LLR across a code boundary), the same bits, through Receiver.process
    and the real-time path; an erased frame's codes are 0."""
    from dsp_kernels.fused import quantize_llr
    from zakotfs.modulation import LLR_INT8_STEP
    from zakotfs.realtime import RealtimeReceiver

    c, frames, _, _, nu = link
    frames = frames.copy()
    frames[1, 700] = np.inf
    options = dict(backend=backend, max_doppler_hz=1.15 * nu, quiet=True)
    want = Receiver(c, **options).process(frames)
    receiver = Receiver(c, **options, llr_format="int8")
    realtime = RealtimeReceiver(receiver, batch=3)
    for got in (receiver.process(frames), realtime.process(realtime.pinned_frames(frames))):
        assert got.llr.dtype == np.int8 and got.llr_step == LLR_INT8_STEP
        codes = quantize_llr(want.llr, LLR_INT8_STEP).astype(int)
        assert np.abs(got.llr.astype(int) - codes).max() <= 1 and np.mean(got.llr == codes) > 0.999
        assert np.mean(got.bits != want.bits) < 1e-4
        assert np.all(got.llr[1] == 0) and not got.valid[1]


def test_fused_estimator_kernels_match_the_array_code(backend, link):
    """The backend's fused delay fit and taps (sparse_fit.cu on the GPU, cpu_fit's compiled
    loops on the CPU) against the array code they replace, on the tap coefficients of real
    frames."""
    from zakotfs.estimation import AccurateEstimator

    c, frames, _, _, nu = link
    cpu = AccurateEstimator(c, 1.15 * nu, dtype=np.complex64)
    r = frames[:, c.cp_len:].astype(np.complex64)
    coeffs = (cpu._pinv[None] * cpu.snapshots(r)[:, :, None, :]).sum(axis=-1)
    coeff_var = np.full(3, 1e-4)
    want = cpu.fit_delays(coeffs, coeff_var)
    lo, hi = cpu.taus[0] + cpu.edge, cpu.taus[-1] - cpu.edge
    got = [backend.asnumpy(a) for a in backend.sparse_delay_fit(
        backend.asarray(coeffs), backend.asarray(cpu.floor_factor * coeff_var), cpu.taus[0],
        cpu.delay_resolution, cpu.coarse_stride, cpu.n_atoms, lo, hi, c.MN)]
    np.testing.assert_array_equal(got[2], want[2])                       # the same atoms active
    active = want[2]
    np.testing.assert_allclose(got[1][active], want[1][active], atol=1e-9)   # at the same delays
    assert _relative_error(got[0], want[0]) < 1e-4
    taps = backend.asnumpy(backend.atom_taps_fft(backend.asarray(want[0]), backend.asarray(want[1]), c.MN))
    reference = ChannelOperator.from_delay_doppler_atoms(c.MN, cpu.basis, want[0].astype(np.complex128),
                                                         want[1]).taps_fft
    assert _relative_error(taps, reference) < 1e-5


@pytest.mark.parametrize("delay_spread_s", [5e-6, 20e-6])
def test_the_delay_fit_kernel_takes_a_long_delay_spread(backend, delay_spread_s):
    """At the paper grid a 5 us delay spread (W = 1270 taps) leaves the fit's atoms out of
    shared memory, 20 us (W = 5080) all its scratch arrays (``_fit_placement``; before, the
    residual alone exceeded the limit and the launch failed): the kernel still matches the
    array code, on synthetic coefficients of five paths spread over the window (the CPU's
    compiled fit too)."""
    from zakotfs import design
    from zakotfs.estimation import AccurateEstimator

    est = AccurateEstimator(design(16384, 32, 245.76e6, delay_spread_s=delay_spread_s), dtype=np.complex64)
    W, P, J = est.taus.size, est.P, est.n_atoms
    if backend.name == "gpu":
        import cupy as cp

        from dsp_kernels.gpu import _fit_placement, _shared_budget

        placement, _ = _fit_placement(W, P, J, _shared_budget("sparse_fit.cu", "omp_delay_fit", cp.cuda.Device().id))
        assert placement != 7
    rng = np.random.default_rng(11)
    lo, hi = est.taus[0] + est.edge, est.taus[-1] - est.edge
    delays = np.sort(rng.uniform(lo, hi, (2, 5)), axis=-1)
    amplitudes = rng.standard_normal((2, 5, P)) + 1j * rng.standard_normal((2, 5, P))
    coeffs = np.einsum("fwj,fjp->fwp", est._atoms(delays, np), amplitudes)
    coeffs = (coeffs + 0.01 * (rng.standard_normal(coeffs.shape) + 1j * rng.standard_normal(coeffs.shape))).astype(np.complex64)
    coeff_var = np.full(2, 2e-4)
    want = est.fit_delays(coeffs, coeff_var)
    got = [backend.asnumpy(a) for a in backend.sparse_delay_fit(
        backend.asarray(coeffs), backend.asarray(est.floor_factor * coeff_var), est.taus[0], est.delay_resolution,
        est.coarse_stride, J, lo, hi, est.config.MN)]
    np.testing.assert_array_equal(got[2], want[2])
    assert want[2].sum(axis=-1).min() >= 5
    np.testing.assert_allclose(got[1][want[2]], want[1][want[2]], atol=1e-9)
    assert _relative_error(got[0], want[0]) < 1e-4
