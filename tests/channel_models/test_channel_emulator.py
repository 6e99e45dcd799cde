"""The streaming sample-level emulator: golden vector, accuracy, chunking, noise, frame truth."""
import math

import numpy as np
import pytest
from scipy.special import polygamma

import zakotfs
from channel_models import (ChannelEmulator, PathSet, apply_channel, apply_frame_circular,
                            circular_delay_response, delay_kernel, draw_paths, fractional_delay_nmse,
                            load_profile, noise_var_from_snr_db, on_grid_paths)

VEH_A = load_profile("veh-a")


def to_numpy(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def nmse_db(estimate, reference) -> float:
    estimate, reference = to_numpy(estimate), to_numpy(reference)
    return float(10 * np.log10(np.sum(np.abs(estimate - reference) ** 2) / np.sum(np.abs(reference) ** 2)))


def run(emulator, x, chunks=None):
    """Whole output (process + flush) for input x cut at the given chunk lengths."""
    xp = emulator.xp
    bounds = np.cumsum([0] + list(chunks)) if chunks is not None else np.array([0, x.shape[0]])
    assert bounds[-1] == x.shape[0]
    parts = [emulator.process(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    parts.append(emulator.flush())
    return to_numpy(xp.concatenate(parts))


def white(rng, n, dtype=np.complex64):
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(dtype)


def test_golden_frame_through_the_stream(xp, golden, golden_config):
    paths = on_grid_paths(golden["paths_h"], golden["paths_d"], golden["paths_m"], golden_config)
    for tx_key, rx_key in (("tx", "rx"), ("rx_pilot_only", None)):
        if rx_key is None:   # the pilot-only frame: rebuild its tx from the pilot grid
            pilot = zakotfs.pilot_grid(golden_config)
            tx = zakotfs.add_cp(zakotfs.inverse_zak(pilot), golden_config.cp_len)
            expected = golden["rx_pilot_only"]
        else:
            tx, expected = golden[tx_key], golden[rx_key]
        emulator = ChannelEmulator(paths, golden_config.bandwidth, xp=xp)
        out = run(emulator, xp.asarray(tx.astype(np.complex64)))
        assert out.dtype == np.complex64
        assert out.size == tx.size + emulator.tail_len
        np.testing.assert_allclose(out[:tx.size], expected, rtol=0, atol=1e-6)


def test_integer_delays_are_exact_shifts():
    rng = np.random.default_rng(1)
    x = white(rng, 3000)
    emulator = ChannelEmulator(PathSet([7 / 1e6], [1.0], [0.0]), 1e6, half_len=64, block_len=500)
    out = run(emulator, x, [1234, 1766])
    np.testing.assert_array_equal(out[:7], 0)
    np.testing.assert_array_equal(out[7:3007], x)
    np.testing.assert_array_equal(out[3007:], 0)


def test_carrier_offset_rotates_with_absolute_time():
    rng = np.random.default_rng(2)
    B, cfo, d = 2e6, 1234.5, 3
    x = white(rng, 20000)
    out = run(ChannelEmulator(PathSet([d / B], [0.5j], [0.0]), B, cfo_hz=cfo, half_len=32), x)
    t = np.arange(d, x.size)
    np.testing.assert_allclose(out[d:x.size], 0.5j * np.exp(2j * np.pi * cfo * t / B) * x[:-d],
                               rtol=0, atol=2e-6)


def flat_periodic(rng, period):
    """One period of a 'white' signal with a flat spectrum: |S[k]| = 1 on every DFT bin,
    random phases, unit power. Its NMSE is the filter error averaged over the band exactly,
    with no Monte-Carlo spread (a Gaussian signal's error, confined to ~Lp/K bins near the
    band edge, would scatter by +-1 dB)."""
    spectrum = np.exp(2j * np.pi * rng.uniform(size=period))
    return (np.fft.ifft(spectrum) * math.sqrt(period)).astype(np.complex64)


@pytest.mark.parametrize("half_len", [256, 2048, 4096])
def test_fractional_delay_accuracy(half_len):
    """NMSE against the exact band-limited delay (periodised sinc via the DFT) of a long
    periodic white signal, away from the edges, at the worst fractional part 1/2: it follows
    sin^2(pi d) 2/(pi^2 K); K = 2048 just reaches -40 dB, the default K = 4096 gives -43."""
    rng = np.random.default_rng(3)
    B, delay, period = 10e6, 3.5, 1 << 18
    one = flat_periodic(rng, period)
    out = apply_channel(PathSet([delay / B], [1.0], [0.0]), np.tile(one, 3), B, half_len=half_len)
    exact = np.fft.ifft(np.fft.fft(one.astype(complex)) * circular_delay_response(period, delay))
    measured = nmse_db(out[period:2 * period], exact)
    theory = 10 * math.log10(fractional_delay_nmse(delay, half_len))
    assert measured == pytest.approx(theory, abs=0.5)
    if half_len >= 2048:
        assert measured <= -40.0


def test_roll_off_filter_makes_the_delay_nearly_exact():
    rng = np.random.default_rng(4)
    B, delay, period, a = 10e6, 0.5, 1 << 15, 0.25
    one = flat_periodic(rng, period)
    out = apply_channel(PathSet([delay / B], [1.0], [0.0]), np.tile(one, 3), B, tx_rx_filter=a, half_len=1024)
    exact = np.fft.ifft(np.fft.fft(one.astype(complex)) * circular_delay_response(period, delay, a))
    assert nmse_db(out[period:2 * period], exact) < -100.0


def _chunks(rng, n):
    """Random chunk lengths: a run of single samples, then a mix of small and large."""
    sizes = [1] * 300
    while sum(sizes) < n:
        sizes.append(int(rng.choice([1, 2, 3, 17, 255, 1000, 4099, 30000])))
    sizes[-1] -= sum(sizes) - n
    return [s for s in sizes if s > 0]


@pytest.mark.parametrize("rolloff", [None, 0.2])
def test_output_does_not_depend_on_chunking(xp, rolloff):
    rng = np.random.default_rng(5)
    paths = draw_paths(VEH_A, 815.0, rng, doppler_model="jakes")
    x = xp.asarray(white(rng, 40_000))
    kwargs = dict(snr_db=10.0, seed=99, cfo_hz=321.0, timing_offset=0.37, tx_rx_filter=rolloff,
                  half_len=128, block_len=777, xp=xp)
    reference = run(ChannelEmulator(paths, 15.36e6, **kwargs), x)
    for trial in range(3):
        emulator = ChannelEmulator(paths, 15.36e6, **kwargs)
        assert np.array_equal(run(emulator, x, _chunks(rng, x.shape[0])), reference)
    emulator.reset()
    assert np.array_equal(run(emulator, x, [x.shape[0]]), reference)


def test_chunking_invariance_at_default_size():
    rng = np.random.default_rng(6)
    paths = draw_paths(VEH_A, 815.0, rng)
    x = white(rng, 150_000)
    emulator = ChannelEmulator(paths, 15.36e6, snr_db=20.0, seed=1)
    reference = run(emulator, x)
    emulator.reset()
    assert np.array_equal(run(emulator, x, _chunks(rng, x.size)), reference)
    assert np.array_equal(apply_channel(paths, x, 15.36e6, snr_db=20.0, seed=1), reference)


def test_noise_power_matches_the_snr():
    snr_db = 7.0
    n0 = noise_var_from_snr_db(snr_db)
    assert n0 == pytest.approx(10 ** -0.7)
    emulator = ChannelEmulator(PathSet([0.0], [1.0], [0.0]), 1e6, snr_db=snr_db, seed=3, half_len=64)
    w = run(emulator, np.zeros(400_000, dtype=np.complex64)).astype(complex)
    n = w.size
    assert np.mean(np.abs(w) ** 2) == pytest.approx(n0, abs=5 * n0 / math.sqrt(n))
    assert np.var(w.real) == pytest.approx(n0 / 2, abs=5 * n0 / math.sqrt(n))
    assert abs(np.mean(w * w)) < 5 * n0 / math.sqrt(n)                  # circular
    lag1 = np.mean(w[1:] * np.conj(w[:-1]))
    assert abs(lag1) < 5 * n0 / math.sqrt(n)                            # white
    # The noise adds to the signal: (noisy - noiseless) has the same power.
    rng = np.random.default_rng(7)
    paths = draw_paths(VEH_A, 815.0, rng)
    x = white(rng, 200_000)
    noisy = run(ChannelEmulator(paths, 15.36e6, noise_var=n0, seed=8), x)
    clean = run(ChannelEmulator(paths, 15.36e6), x)
    diff = (noisy - clean).astype(complex)
    assert np.mean(np.abs(diff) ** 2) == pytest.approx(n0, abs=5 * n0 / math.sqrt(diff.size))


def _frames(rng, config, n_frames):
    """[n_frames, MN] complex64 random 16QAM frames from the project's frame builder."""
    builder = zakotfs.FrameBuilder(config)
    bits = zakotfs.random_bits(config, n_frames, rng)
    return zakotfs.inverse_zak(builder.grid(bits)).astype(np.complex64)


def test_emulator_equals_the_circular_reference_on_a_periodic_stream():
    """Doppler, CFO, timing offset and roll-off conventions, to complex64 precision: frames
    1 and 2 of a periodic stream see the circular channel exactly (the kernel's tail at K is
    ~1e-8 with a roll-off)."""
    rng = np.random.default_rng(9)
    config = zakotfs.preset("tiny", cp_len=0, preamble_len=0)
    s = _frames(rng, config, 1)[0]
    paths = draw_paths(VEH_A, 815.0, rng, doppler_model="jakes")
    emulator = ChannelEmulator(paths, config.bandwidth, cfo_hz=250.0, timing_offset=-0.6,
                               tx_rx_filter=0.25, half_len=512, block_len=1000)
    out = run(emulator, np.tile(s, 4))           # frames straddle internal blocks
    for frame in (1, 2):
        t0 = frame * config.MN
        reference = apply_frame_circular(emulator.frame_paths(t0), s)
        assert nmse_db(out[t0:t0 + config.MN], reference) < -100.0


def _tail_energy(delay, start, rolloff, reach=1 << 16):
    """sum_{n >= start} kappa(n - delay)^2 for each integer ``start`` (array)."""
    n = np.arange(start.min(), start.max() + reach)
    energy = delay_kernel(n - delay, rolloff) ** 2
    from_right = np.cumsum(energy[::-1])[::-1]
    total = from_right[start - n[0]]
    if rolloff == 0:     # closed-form sinc remainder beyond the numerical reach
        frac = delay - math.floor(delay)
        total += math.sin(math.pi * frac) ** 2 / math.pi**2 * polygamma(1, n[-1] + 1 - delay)
    return total


@pytest.mark.parametrize("rolloff", [None, 0.25])
def test_emulator_matches_the_circular_reference_on_cp_frames(rolloff):
    """Two CP'd frames back to back. In-window the emulator is exactly the circular channel;
    the difference is the kernel tail beyond the CP and the frame end (other frames' samples
    or zeros instead of the periodic extension). Stated bound: 4 x the Cauchy-Schwarz bound
    on the expected tail leakage for white frames,
    sum_q (sum_i |h_i(q)| sqrt(2 sum_{n outside} kappa(n - d_i)^2))^2 (a realisation of a
    leakage concentrated at the frame edges reaches ~2x over seeds). A wrong Doppler, CFO or
    delay convention would give an error near 0 dB."""
    rng = np.random.default_rng(10)
    config = zakotfs.preset("tiny")                     # 64 x 32, 3.84 MHz, cp 16
    frames = _frames(rng, config, 2)
    paths = draw_paths(VEH_A, 815.0, rng, doppler_model="jakes")
    emulator = ChannelEmulator(paths, config.bandwidth, cfo_hz=100.0, timing_offset=0.37,
                               tx_rx_filter=rolloff)
    stream = np.concatenate([zakotfs.add_cp(f, config.cp_len) for f in frames])
    out = run(emulator, stream)
    MN, cp = config.MN, config.cp_len
    q = np.arange(MN)
    for f in range(2):
        t0 = cp + f * (MN + cp)
        truth = emulator.frame_paths(t0)
        reference = apply_frame_circular(truth, frames[f])
        error = np.sum(np.abs(out[t0:t0 + MN] - reference) ** 2)
        leak = np.zeros(MN)
        gains = np.abs(truth.gains(q))                                 # [P, MN]
        for i, d in enumerate(truth.delay):
            outside = (_tail_energy(d, q + cp + 1, truth.rolloff)      # before the CP
                       + _tail_energy(-d, MN - q, truth.rolloff))      # after the frame
            leak += gains[i] * np.sqrt(2 * outside)
        bound = 4 * np.sum(leak**2)
        assert error <= bound, (error, bound)
        assert nmse_db(out[t0:t0 + MN], reference) < (-25.0 if rolloff is None else -38.0)
        if rolloff is not None:     # |x|^-3 kernel: the frame's interior is exact
            inner = slice(200, MN - 200)
            assert nmse_db(out[t0:t0 + MN][inner], reference[inner]) < -90.0


def test_frame_paths_include_the_impairments():
    paths = PathSet([1e-6], [1.0], [100.0])
    emulator = ChannelEmulator(paths, 1e6, cfo_hz=50.0, timing_offset=0.25, tx_rx_filter=0.1, half_len=16)
    truth = emulator.frame_paths(1000)
    assert truth.delay[0] == pytest.approx(1.25)
    assert truth.doppler[0, 0] == pytest.approx(150.0 / 1e6)
    assert truth.rolloff == 0.1
    # amp: h(t0) on the frame clock, phase from absolute time, CFO included
    assert truth.amp[0, 0] == pytest.approx(np.exp(2j * np.pi * (100 * (1e-3 - 1.25e-6) + 50 * 1e-3)))


def test_stream_geometry_and_state():
    emulator = ChannelEmulator(PathSet([0.0, 10e-6], [1.0, 0.5], [0.0, 0.0]), 1e6, half_len=100,
                               block_len=1000)
    assert emulator.tail_len == 10 + 100
    assert emulator.lookahead == 99
    assert emulator.max_latency == 999 + 99
    # output t is released once input t + lookahead is in, a whole block at a time
    assert emulator.process(np.zeros(1098, np.complex64)).size == 0
    assert emulator.process(np.zeros(1, np.complex64)).size == 1000
    emulator.flush()
    with pytest.raises(RuntimeError, match="reset"):
        emulator.process(np.zeros(4, np.complex64))
    with pytest.raises(RuntimeError, match="already flushed"):
        emulator.flush()
    emulator.reset()
    assert emulator.process(np.zeros(5, np.complex64)).size == 0


@pytest.mark.parametrize("kwargs, error, message", [
    ({"sample_rate": -1.0}, ValueError, "sample_rate must be a positive number"),
    ({"sample_rate": math.nan}, ValueError, "sample_rate"),
    ({"noise_var": -0.1}, ValueError, "noise_var must be >= 0"),
    ({"noise_var": 0.1, "snr_db": 10.0}, ValueError, "noise_var or snr_db, not both"),
    ({"snr_db": math.nan}, ValueError, "snr_db must be a finite number"),
    ({"cfo_hz": math.inf}, ValueError, "cfo_hz must be a finite number"),
    ({"timing_offset": math.nan}, ValueError, "timing_offset must be a finite number"),
    ({"timing_offset": 5000.0}, ValueError,
     r"timing_offset=5000.0 puts the earliest path at 5000.000 samples"),
    ({"half_len": 0}, ValueError, "half_len must be a positive integer"),
    ({"block_len": 0}, ValueError, "block_len must be a positive integer"),
    ({"tx_rx_filter": 1.5}, ValueError, "rolloff must be a number in"),
    ({"kaiser_beta": -1.0}, ValueError, "kaiser_beta"),
    ({"seed": -3}, ValueError, "seed must be a non-negative integer"),
    ({"paths": "veh-a"}, TypeError, "paths must be a PathSet"),
])
def test_bad_parameters_are_rejected(kwargs, error, message):
    args = {"paths": PathSet([0.0], [1.0], [0.0]), "sample_rate": 1e6} | kwargs
    with pytest.raises(error, match=message):
        ChannelEmulator(**args)


def test_bad_chunks_are_rejected():
    emulator = ChannelEmulator(PathSet([0.0], [1.0], [0.0]), 1e6, half_len=8)
    with pytest.raises(ValueError, match="chunk must be 1-D"):
        emulator.process(np.zeros((2, 3), np.complex64))
    with pytest.raises(TypeError, match="chunk must be a numpy array"):
        emulator.process([0j, 1j])
