"""The windowed operator against the exact one: exact where its model holds (LTI and
linear-in-time channels with taps inside its support), within its predicted error on a
physical Veh-A channel, the same bits in the receiver, and the same on both backends."""
import numpy as np
import pytest

from channel_models.emulator import ChannelEmulator
from channel_models.paths import draw_paths
from channel_models.profiles import load_profile
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.channel_operator import ChannelOperator
from zakotfs.config import design
from zakotfs.exact_channel import exact_operator
from zakotfs.receiver import Receiver
from zakotfs.windowed_operator import (OVERLAP_FRACTIONS, WINDOW_ERROR_DB, WindowedOperator, default_window,
                                       window_error, window_overlap, window_polynomials)


def _random(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _error_db(a, b) -> float:
    return float(10 * np.log10(np.sum(np.abs(a - b) ** 2) / np.sum(np.abs(b) ** 2)))


def _integer_tap_operator(rng, L, basis, delays):
    """c_p: random taps at integer ``delays`` (no sinc tails), one set per basis function."""
    taps = np.zeros((1, basis.shape[0], L), complex)
    taps[..., np.asarray(delays) % L] = _random(rng, basis.shape[0], len(delays))
    return ChannelOperator(basis, np.fft.fft(taps, axis=-1))


def test_polynomials_are_orthonormal():
    phi = window_polynomials(64, 3)
    np.testing.assert_allclose(phi @ phi.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(phi[0], 1 / 8)              # degree 0: the constant


@pytest.mark.parametrize("overlap", [128, 64, 16])
@pytest.mark.parametrize("order", [1, 2])
def test_exact_for_the_channels_it_models(rng, order, overlap):
    """Order 1: an LTI channel; order 2: a gain linear in time. Integer taps in [d0, d0 + V]
    (negative delays and both ends included), blocks of Lw + V for overlaps V = Lw, Lw / 2
    and Lw / 8: no approximation is left, so the operators agree exactly."""
    L, Lw, d0 = 1024, 128, -20
    q = np.arange(L)
    basis = np.stack([np.ones(L), 1 + 0.01 * q])[:order].astype(complex)
    delays = sorted({d0, d0 + overlap // 3, d0 + overlap // 2, d0 + overlap - 1, d0 + overlap})
    op = _integer_tap_operator(rng, L, basis, delays)
    windowed = WindowedOperator.from_operator(op, window_polynomials(Lw, order), d0, overlap)
    assert windowed.block == Lw + overlap
    s = _random(rng, 1, L)
    np.testing.assert_allclose(windowed.apply(s), op.apply(s), atol=1e-10 * np.abs(op.apply(s)).max())
    np.testing.assert_allclose(windowed.adjoint(s), op.adjoint(s), atol=1e-10 * np.abs(op.adjoint(s)).max())
    np.testing.assert_allclose(windowed.normal(s, np.array([0.1])), op.normal(s, np.array([0.1])),
                               atol=1e-9 * np.abs(op.normal(s, np.array([0.1]))).max())


@pytest.mark.parametrize("overlap", [64, 32])
def test_a_tap_outside_the_support_is_cut(rng, overlap):
    """The support is [d0, d0 + V]: taps at d0 - 1 and d0 + V + 1 are left out, not wrapped in."""
    L, Lw, d0 = 512, 64, -8
    op = _integer_tap_operator(rng, L, np.ones((1, L), complex), [d0 - 1, d0 + overlap + 1])
    windowed = WindowedOperator.from_operator(op, window_polynomials(Lw, 1), d0, overlap)
    assert np.abs(windowed.apply(_random(rng, 1, L))).max() < 1e-12


@pytest.mark.parametrize("overlap", [256, 128])
def test_adjoint_and_batch(rng, overlap):
    """<H s, r> = <s, H^H r> for a random time-varying operator, frame by frame; shared and
    per-frame bases give the same result."""
    L, P, F = 2048, 3, 2
    basis = _random(rng, P, L)
    op = ChannelOperator(basis, _random(rng, F, P, L))
    windowed = WindowedOperator.from_operator(op, window_polynomials(256), -100, overlap)
    per_frame = WindowedOperator.from_operator(ChannelOperator(np.broadcast_to(basis, (F, P, L)), op.taps_fft),
                                               window_polynomials(256), -100, overlap)
    s, r = _random(rng, F, L), _random(rng, F, L)
    np.testing.assert_allclose(np.sum(windowed.apply(s).conj() * r, -1), np.sum(s.conj() * windowed.adjoint(r), -1))
    np.testing.assert_allclose(per_frame.apply(s), windowed.apply(s))
    assert windowed.apply(s).shape == (F, L)


BINS = 1.74
"""Veh-A's Doppler nu_max T in the physical-channel tests (815 Hz at the paper's grid)."""


@pytest.fixture(scope="module")
def veh_a():
    """An 8192 x 16 grid (L = 131072) whose default window is 4096; Veh-A at 1.74 Doppler
    bins, the emulator's exact operator for 4 channel realisations."""
    c = design(8192, 16)
    rng = np.random.default_rng(11)
    ops = []
    for seed in range(4):
        em = ChannelEmulator(draw_paths(load_profile("veh-a"), BINS / c.frame_time, rng), c.bandwidth, seed=seed)
        ops.append(exact_operator(em.frame_paths(1000), c.MN))
    return c, ops


def test_error_on_a_physical_channel_is_under_its_prediction(veh_a):
    """The measured error stays under ``window_error`` (a worst-case bound: a half-sample
    path at the edge of the tap window), for a full overlap and for half of one, and under
    -40 dB at the default window; a window that leaves the sinc tails a short margin errs
    well above that."""
    c, ops = veh_a
    taps = sum(c.tap_window) + 1
    window = default_window(c.MN, taps, BINS)
    overlap = window_overlap(c.MN, window, taps, BINS)
    assert (window, overlap) == (4096, 4096)
    rng = np.random.default_rng(0)
    s = _random(rng, 1, c.MN)
    measured = {}
    for Lw, V in ((window, overlap), (4096, 2048), (512, 512)):
        predicted = 10 * np.log10(window_error(Lw, V, taps, 2 * np.pi * BINS * Lw / c.MN))
        d0 = (c.tap_window[1] - c.tap_window[0]) // 2 - V // 2
        measured[V] = [_error_db(WindowedOperator.from_operator(op, window_polynomials(Lw), d0, V).apply(s),
                                 op.apply(s)) for op in ops]
        assert max(measured[V]) < predicted, (Lw, V, measured[V], predicted)
    assert max(measured[overlap]) < WINDOW_ERROR_DB
    # a window of 512 leaves the taps' sinc tails a margin of 93 delays: more error, by 8 dB
    # on average over these channels (the bound says 13 dB)
    assert np.mean(measured[512]) > np.mean(measured[overlap]) + 5, measured


def test_default_window_is_the_least_work_under_the_limit():
    """Every window and overlap of less work per sample than the default's (B / Lw), or as
    little in a shorter block, errs above the limit; the paper grid gets blocks of
    8192 + 4096 samples (three quarters of the work of 4096 + 4096)."""
    limit = 10 ** (WINDOW_ERROR_DB / 10)
    for name, expected in (("tiny", (0, 0)), ("demo", (0, 0)), ("paper", (8192, 4096))):
        c = preset(name)
        taps, bins = sum(c.tap_window) + 1, 1000 * c.frame_time

        def error(w, v):
            return window_error(w, v, taps, 2 * np.pi * bins * w / c.MN)

        Lw = default_window(c.MN, taps, bins)
        V = window_overlap(c.MN, Lw, taps, bins) if Lw else 0
        assert (Lw, V) == expected, name
        if Lw:
            assert error(Lw, V) <= limit
        for w in 2 ** np.arange(1, int(np.log2(c.MN // 8)) + 1):
            for v in {w // f for f in OVERLAP_FRACTIONS}:
                if not Lw or ((w + v) / w, w + v) < ((Lw + V) / Lw, Lw + V):
                    assert error(w, v) > limit, (name, w, v)
    # a window given by hand where no overlap keeps under the limit: the full one
    assert window_overlap(preset("demo").MN, 256, 64, 1.07) == 256


@pytest.mark.parametrize("M, window, overlap", [(8192, 4096, 4096), (16384, 8192, 4096)])
def test_receiver_gives_the_exact_operators_bits(M, window, overlap):
    """The same frames through the exact and the windowed operator (M x 16, Veh-A at 1.74
    Doppler bins, 24 dB; the default window with a full overlap at M = 8192, with half of
    one at 16384): the bits agree where the LLRs are not near zero, and the BER is the same
    to 2 %."""
    c = design(M, 16)
    rng = np.random.default_rng(5)
    nu = BINS / c.frame_time
    bits = random_bits(c, 2, rng)
    tx = FrameBuilder(c).stream(bits)
    em = ChannelEmulator(draw_paths(load_profile("veh-a"), nu, rng), c.bandwidth, snr_db=24.0, seed=5)
    rx = np.concatenate([em.process(tx), em.flush()])[:tx.size].reshape(2, -1)[:, c.preamble_len:]
    exact, windowed = (Receiver(c, backend="cpu", operator_window=w, max_doppler_hz=1.15 * nu, quiet=True)
                       for w in (0, None))
    assert (exact.operator_window, windowed.operator_window, windowed.operator_overlap) == (0, window, overlap)
    want, got = exact.process(rx), windowed.process(rx)
    differ = got.bits != want.bits                 # measured: 0.15 %, all within 0.6 % of
    assert differ.mean() < 3e-3                    # the largest LLR (a faded channel, SINR 15 dB)
    assert np.all(np.abs(want.llr[differ]) < 0.02 * np.abs(want.llr).max())
    np.testing.assert_allclose(got.sinr_db, want.sinr_db, atol=0.01)
    ber_exact, ber_windowed = np.mean(want.bits != bits), np.mean(got.bits != bits)
    assert 0 < ber_exact < 5e-2 and abs(ber_windowed - ber_exact) <= 0.02 * ber_exact


def test_receiver_rejects_a_bad_window():
    c = preset("demo")
    for window in (1000, c.MN, 32, -1024):  # not a divisor; one window; shorter than the taps; negative
        with pytest.raises(ValueError, match="operator_window"):
            Receiver(c, backend="cpu", operator_window=window, quiet=True)


@pytest.mark.parametrize("overlap", [4096, 2048])
def test_backends_agree(backend, veh_a, overlap):
    """Build and apply on the backend in complex64 against complex128 on the CPU."""
    c, ops = veh_a
    op = ops[0]
    Lw, d0 = 4096, (c.tap_window[1] - c.tap_window[0]) // 2 - overlap // 2
    want = WindowedOperator.from_operator(op, window_polynomials(Lw), d0, overlap)
    dev = ChannelOperator(backend.asarray(op.basis, np.complex64), backend.asarray(op.taps_fft, np.complex64))
    got = WindowedOperator.from_operator(dev, backend.asarray(window_polynomials(Lw), np.float32), d0, overlap)
    s = _random(np.random.default_rng(1), 1, c.MN)
    s_dev = backend.asarray(s, np.complex64)
    n0 = np.array([0.05])
    for name, a, b in (("apply", got.apply(s_dev), want.apply(s)),
                       ("adjoint", got.adjoint(s_dev), want.adjoint(s)),
                       ("normal", got.normal(s_dev, backend.asarray(n0, np.float32)), want.normal(s, n0))):
        assert _error_db(backend.asnumpy(a), b) < -90, name       # float32 rounding: about -120 dB


@pytest.mark.parametrize("overlap", [512, 256])
def test_atoms_give_the_operators_taps_and_the_same_windowed_operator(rng, overlap):
    """DelayAtoms' strided spectra and support taps are those of the full operator; the
    windowed operator built from the atoms is the one built from that operator, and its
    local response on the kept bins is the exact operator's."""
    from zakotfs.channel_operator import DelayAtoms

    L, P, J, F, Lw, d0, stride = 4096, 3, 4, 2, 512, -100, 8
    q = np.arange(L)
    basis = np.exp(2j * np.pi * np.outer([-1.5, 0.0, 2.0], q) / L)
    atoms = DelayAtoms(L, basis, _random(rng, F, J, P), rng.uniform(0, 60, (F, J)))
    op = atoms.operator()
    np.testing.assert_allclose(atoms.taps_fft(stride), op.taps_fft[..., ::stride], atol=1e-9)
    support = np.arange(d0, d0 + Lw + 1) % L
    np.testing.assert_allclose(atoms.taps(d0, Lw + 1), np.fft.ifft(op.taps_fft)[..., support], atol=1e-12)
    phi = window_polynomials(Lw)
    from_atoms = WindowedOperator.from_atoms(atoms, phi, d0, overlap, stride)
    from_op = WindowedOperator.from_operator(op, phi, d0, overlap, stride)
    block = Lw + overlap
    np.testing.assert_allclose(from_atoms.response * block, from_op.response * block, atol=1e-9)
    times = np.array([5, 700, 3000])
    np.testing.assert_allclose(from_atoms.local_response(times, L // stride), op.local_response(times, L // stride),
                               atol=1e-9)
    with pytest.raises(ValueError, match="every 8-th bin"):
        from_atoms.local_response(times, L // 4)


def test_receiver_fits_its_basis_once(rng):
    """The receiver's window coefficients of its estimator's basis, computed once, give the
    operator that a fit from scratch gives; another basis is fitted from scratch."""
    from zakotfs.channel_operator import DelayAtoms

    c = preset("demo")
    rx = Receiver(c, backend="cpu", operator_window=2048, quiet=True)
    basis, beta = rx._window_beta
    assert basis is rx.estimator.operator_basis
    J, P = 3, basis.shape[0]
    atoms = DelayAtoms(c.MN, basis, _random(rng, 1, J, P).astype(basis.dtype), rng.uniform(0, 20, (1, J)))
    fresh = WindowedOperator.from_atoms(atoms, rx.polynomials, rx.delay_start, rx.operator_overlap, rx.bin_stride)
    np.testing.assert_array_equal(rx.equalizer_operator(atoms).response, fresh.response)
    other = DelayAtoms(c.MN, basis.copy() * 2, atoms.amplitudes, atoms.delays)
    np.testing.assert_allclose(rx.equalizer_operator(other).response, 2 * fresh.response, rtol=1e-5)
