"""Carrier-frequency offset: the pilot's estimate (``zakotfs.cfo``: the middle of the
plateau of the energy the estimator's DPSS band captures) and the receiver that removes it, judged on the physical
sample-level emulator (the offset is a Doppler shift common to its paths) against the same
link without an offset and against perfect CSI."""
import numpy as np
import pytest

from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths, draw_paths
from channel_models.profiles import load_profile
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.cfo import PilotCFO, snapshot_rotation
from zakotfs.estimation import pilot_snapshots
from zakotfs.exact_channel import exact_operator
from zakotfs.receiver import Receiver

NU_MAX = 815.0
SNR_DB = 25.0


def test_a_rotation_of_the_snapshots_is_read_back(rng):
    """Snapshots that turn by 2 pi nu / nu_p from one to the next give nu back, anywhere in
    (-nu_p / 2, nu_p / 2), to within the estimate's grid (nu_p / (16 N)); rounded to a step
    when asked; 0 without signal."""
    nu_p, N, W = 15e3, 16, 5
    cfo = np.array([-7.2e3, -812.5, 0.0, 3.3e3, 7.4e3])
    taps = rng.standard_normal((len(cfo), W, 1)) + 1j * rng.standard_normal((len(cfo), W, 1))
    z = taps * np.exp(2j * np.pi * cfo[:, None, None] / nu_p * np.arange(N))
    np.testing.assert_allclose(PilotCFO(N, nu_p, 1000.0)(z), cfo, atol=nu_p / (16 * N))
    np.testing.assert_allclose(PilotCFO(N, nu_p, 1000.0, step_hz=937.5)(z), [-7500.0, -937.5, 0.0, 3750.0, 7500.0])
    assert PilotCFO(N, nu_p, 1000.0)(np.zeros((2, W, N), complex)).tolist() == [0.0, 0.0]


def _paths(rng, dopplers_hz, powers, nu_p, N, W, snr_db):
    """Snapshots [1, W, N] of paths at ``dopplers_hz`` with random taps of the given mean
    powers, plus white noise ``snr_db`` under the total power a snapshot."""
    q = np.arange(N)
    z = sum(np.sqrt(p / 2) * (rng.standard_normal((1, W, 1)) + 1j * rng.standard_normal((1, W, 1)))
            * np.exp(2j * np.pi * nu / nu_p * q) for nu, p in zip(dopplers_hz, powers))
    noise = np.sqrt(sum(powers) / 2 * 10 ** (-snr_db / 10))
    return z + noise * (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape))


def test_the_estimate_keeps_the_doppler_support_in_the_band(rng):
    """Two paths at -800 Hz (strong) and +800 Hz (weak, 9.5 dB under) in a band of +-1000 Hz:
    after the estimate is removed both lie inside the band, where the power-weighted mean
    (the pulse-pair estimate, about -650 Hz) pushes the weak path to about +1450 Hz."""
    nu_p, N, W = 15e3, 32, 8
    z = _paths(rng, [-800.0, 800.0], [9.0, 1.0], nu_p, N, W, snr_db=30.0)
    pulse_pair = np.angle((z[..., :-1].conj() * z[..., 1:]).sum()) / (2 * np.pi) * nu_p
    got = PilotCFO(N, nu_p, 1000.0)(z)[0]
    assert 800 - pulse_pair > 1000 + nu_p / (2 * N)
    assert max(800 - got, got + 800) < 1000


def test_a_path_21_db_under_the_strongest_stays_in_the_band(rng):
    """The benchmark's Veh-A draw (``make_frames``, seed 0): the strongest path at -618 Hz, the
    others at -806 / -809 Hz and, 21 dB under it, at +776 Hz; band +-1000 Hz, paper grid
    (N = 32), snapshot SNR 25 dB. Every path stays 50 Hz inside the band after the
    estimate is removed (the support's middle is +-17 Hz from 0); a periodogram's band
    energy held within 1 % of its peak put the +776 Hz path at +1407 Hz."""
    nu_p, N, W = 15e3, 32, 40
    dopplers = [-618.0, -806.0, -809.0, 776.0, 501.0]
    powers = [0.95, 0.08, 0.07, 0.0085, 0.0097]
    for _ in range(5):
        got = PilotCFO(N, nu_p, 1000.0)(_paths(rng, dopplers, powers, nu_p, N, W, snr_db=25.0))[0]
        assert max(abs(nu - got) for nu in dopplers) < 950, got


def _link(config, cfo_hz: float, seed: int, n_frames: int = 3):
    """Frames through physical Veh-A with a carrier offset: (frames, bits, true operator)."""
    rng = np.random.default_rng(seed)
    bits = random_bits(config, n_frames, rng)
    tx = FrameBuilder(config).stream(bits)
    em = ChannelEmulator(draw_paths(load_profile("veh-a"), NU_MAX, rng), config.bandwidth, snr_db=SNR_DB,
                         seed=seed, cfo_hz=cfo_hz)
    rx = np.concatenate([em.process(tx), em.flush()])[:tx.size].reshape(n_frames, -1)
    starts = [f * config.samples_per_frame + config.preamble_len + config.cp_len for f in range(n_frames)]
    truth = exact_operator(FramePaths.stack([em.frame_paths(t) for t in starts]), config.MN)
    return np.ascontiguousarray(rx[:, config.preamble_len:]), bits, truth


@pytest.fixture(scope="module")
def demo_receivers():
    c = preset("demo")
    return {on: Receiver(c, backend="cpu", quiet=True, cfo_correction=on) for on in (True, False)}


@pytest.mark.parametrize("cfo_hz", [3000.0, -6000.0])
def test_an_offset_costs_nothing_once_removed(demo_receivers, cfo_hz):
    """Demo grid (nu_p = 15 kHz), two Veh-A realisations at 815 Hz and 25 dB: with an offset
    of 3 or -6 kHz the corrected receiver makes as many errors as without any offset (the
    same frames and noise), within 20 % + 30 bits, and stays within 2x + 50 bits of the
    perfect-CSI LMMSE on the offset frames; the receiver that ignores the offset fails. The
    removed offset is the true one within nu_max (the channel's Doppler centroid is removed
    with it)."""
    c = preset("demo")
    on, off = demo_receivers[True], demo_receivers[False]
    perfect = Receiver(c, backend="cpu", estimator="perfect", quiet=True)
    errors = {"clean": 0, "corrected": 0, "ignored": 0, "perfect": 0}
    n_bits = 0
    for seed in (0, 1):
        clean, bits, _ = _link(c, 0.0, seed)
        shifted, _, truth = _link(c, cfo_hz, seed)
        result = on.process(shifted)
        assert np.all(np.abs(result.cfo_hz - cfo_hz) < NU_MAX)
        errors["corrected"] += int(np.count_nonzero(result.bits != bits))
        errors["clean"] += int(np.count_nonzero(on.process(clean).bits != bits))
        errors["ignored"] += int(np.count_nonzero(off.process(shifted).bits != bits))
        exact = perfect.process(shifted, operator=truth, noise_var=10 ** (-SNR_DB / 10))
        assert np.all(exact.cfo_hz == 0)                # perfect CSI: nothing to remove
        errors["perfect"] += int(np.count_nonzero(exact.bits != bits))
        n_bits += bits.size
    print(f"CFO {cfo_hz:+.0f} Hz, {n_bits} bits: {errors}")
    assert errors["corrected"] <= 1.2 * errors["clean"] + 30
    assert errors["corrected"] <= 2 * errors["perfect"] + 50
    assert errors["ignored"] > 0.1 * n_bits


def test_correction_off_reports_no_offset(demo_receivers):
    frames, _, _ = _link(preset("demo"), 0.0, 3, n_frames=1)
    assert demo_receivers[False].process(frames).cfo_hz.tolist() == [0.0]


def test_the_estimate_is_read_from_the_pilot_of_the_received_frame():
    """The receiver's estimate is ``PilotCFO`` of the frame's own snapshots (CP removed)."""
    c = preset("demo")
    frames, _, _ = _link(c, 2500.0, 4, n_frames=2)
    got = Receiver(c, backend="cpu", quiet=True, max_doppler_hz=1000.0).process(frames).cfo_hz
    want = PilotCFO(c.N, c.nu_p, 1000.0)(pilot_snapshots(c, frames[:, c.cp_len:].astype(np.complex128)))
    np.testing.assert_allclose(got, want, atol=0.5)


def test_snapshot_rotation_removes_a_known_offset_from_the_snapshots(rng):
    """Snapshots of a frame turned by 31 kHz (beyond the estimate's +-7.5 kHz), rotated back
    by a known 29 kHz: the estimate reads the 2 kHz left."""
    c = preset("demo")
    frame = np.zeros((1, c.MN), complex)
    frame[0] = rng.standard_normal(c.MN) + 1j * rng.standard_normal(c.MN)
    z = pilot_snapshots(c, frame * np.exp(2j * np.pi * 31e3 / c.bandwidth * np.arange(c.MN)))
    direct = pilot_snapshots(c, frame * np.exp(2j * np.pi * 2e3 / c.bandwidth * np.arange(c.MN)))
    np.testing.assert_allclose(z * snapshot_rotation(c, 29e3, dtype=np.complex128), direct, atol=1e-9)


def test_a_known_offset_beyond_the_range_is_given_once(demo_receivers):
    """A 25 kHz offset (beyond +-nu_p / 2): with cfo_offset_hz 23 kHz (a 2 kHz error) the
    receiver decodes as without any offset; without it, it fails."""
    c = preset("demo")
    clean, bits, _ = _link(c, 0.0, 5)
    shifted, _, _ = _link(c, 25e3, 5)
    given = Receiver(c, backend="cpu", quiet=True, cfo_offset_hz=23e3).process(shifted)
    errors = int(np.count_nonzero(given.bits != bits))
    assert errors <= 1.2 * np.count_nonzero(demo_receivers[True].process(clean).bits != bits) + 30
    assert np.all(np.abs(given.cfo_hz - 25e3) < NU_MAX)
    assert np.mean(demo_receivers[True].process(shifted).bits != bits) > 0.1
    with pytest.raises(ValueError, match="cfo_offset_hz"):
        Receiver(c, backend="cpu", quiet=True, cfo_offset_hz=float("nan"))


def test_no_offset_costs_nothing_on_the_benchmark_frames():
    """The benchmark's 8 distinct frames (``zakotfs bench``: paper grid, 16QAM, Veh-A 815 Hz,
    20 dB, no offset): the corrected receiver makes within 5 % + 20 of the uncorrected one's
    bit errors (the pulse-pair estimate made 2.5x: it pushed a weak path out of the band)."""
    from zakotfs.benchmark import make_frames

    c = preset("paper")
    data = make_frames(c, 8, snr_db=20.0, nu_max_hz=NU_MAX)
    errors = {on: int(np.count_nonzero(Receiver(c, backend="cpu", quiet=True, cg_iterations=8, cfo_correction=on)
                                       .process(data.frames).bits != data.bits)) for on in (True, False)}
    print(f"bit errors with / without the correction: {errors[True]} / {errors[False]}")
    assert errors[False] > 100                      # the count can tell
    assert errors[True] <= 1.05 * errors[False] + 20
