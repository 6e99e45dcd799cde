"""DC offset: detected in the pilot's guard and removed (``zakotfs.dc_offset``), judged on
the physical emulator with a DC offset against the same frames without one."""
import numpy as np
import pytest

from channel_models.emulator import ChannelEmulator
from channel_models.paths import draw_paths
from channel_models.profiles import load_profile
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.dc_offset import dc_estimate, noise_only_index
from zakotfs.receiver import Receiver


def test_the_estimate_ignores_the_pilots_tails_and_detects_only_an_offset(rng):
    """Guard samples with noise (N0 = 1e-3) and strong pilot tails turning with the pilot's
    Doppler bin: an offset 30 dB over N0 / n_s is found to within its standard deviation;
    300 frames without one give no detection."""
    c = preset("demo")
    index = noise_only_index(c)
    T, N = index.shape
    assert T == c.guard_neg - c.max_delay and N == c.N
    F, n0, offset = 300, 1e-3, 0.05 + 0.02j
    frames = np.sqrt(n0 / 2) * (rng.standard_normal((F, c.MN)) + 1j * rng.standard_normal((F, c.MN)))
    tails = (rng.standard_normal(T) + 1j * rng.standard_normal(T))[:, None] * 0.3
    frames[:, index] += tails * np.exp(2j * np.pi * c.pilot_l * np.arange(N) / N)
    assert np.all(dc_estimate(frames, index) == 0)
    found = dc_estimate(frames[:5] + offset, index)
    assert np.all(np.abs(found - offset) < 4 * np.sqrt(n0 / (T * N)))
    assert noise_only_index(c.replace(pilot_l=0)).size == 0      # the pilot's tails would sit at bin 0


def _frames(config, dc: complex, seed: int, n_frames: int = 3):
    rng = np.random.default_rng(seed)
    bits = random_bits(config, n_frames, rng)
    tx = FrameBuilder(config).stream(bits)
    em = ChannelEmulator(draw_paths(load_profile("veh-a"), 815.0, rng), config.bandwidth, snr_db=25.0, seed=seed,
                         cfo_hz=1500.0, dc_offset=dc)
    rx = np.concatenate([em.process(tx), em.flush()])[:tx.size].reshape(n_frames, -1)
    return np.ascontiguousarray(rx[:, config.preamble_len:]), bits


@pytest.mark.parametrize("dc", [0.1, 0.3j])
def test_a_dc_offset_costs_nothing_once_removed(dc):
    """Demo grid, Veh-A 815 Hz, 25 dB, a 1.5 kHz CFO, two realisations: with a DC offset 20
    or 10 dB under the signal the receiver makes the errors it makes without one (within 5 %
    + 20 bits) and reports |c|^2 (to 4 sigma of its estimate); with the removal off it fails; with no offset the removal
    detects nothing and changes no bit."""
    c = preset("demo")
    on, off = (Receiver(c, backend="cpu", quiet=True, dc_removal=flag) for flag in (True, False))
    errors = {"clean": 0, "removed": 0, "kept": 0}
    for seed in (0, 1):
        clean, bits = _frames(c, 0.0, seed)
        shifted, _ = _frames(c, dc, seed)
        result = on.process(shifted)
        sigma = np.sqrt(10 ** -2.5 / noise_only_index(c).size)        # the estimate's, from N0 / n_s
        np.testing.assert_allclose(np.sqrt(result.dc_power), abs(dc), atol=4 * sigma)
        errors["removed"] += int(np.count_nonzero(result.bits != bits))
        errors["kept"] += int(np.count_nonzero(off.process(shifted).bits != bits))
        plain = on.process(clean)
        assert np.all(plain.dc_power == 0)
        np.testing.assert_array_equal(plain.bits, off.process(clean).bits)
        errors["clean"] += int(np.count_nonzero(plain.bits != bits))
    print(f"DC {dc}: {errors}")
    assert errors["removed"] <= 1.05 * errors["clean"] + 20
    assert errors["kept"] > 5 * errors["clean"]
