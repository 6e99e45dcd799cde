"""The channel stage: the emulator alone without a clock offset; with one, the receiver's
clock and then the carrier turned on the clock's samples."""
import numpy as np

from channel_models import ChannelEmulator, ChannelStage, PathSet
from channel_models.sample_clock import SampleClock

RATE = 1e6


def _paths():
    return PathSet(np.array([0.0, 3e-6]), np.array([[1.0], [0.3j]]), np.array([[0.0], [200.0]]))


def _run(stage, x, chunk=1000):
    return np.concatenate([stage.process(x[i:i + chunk]) for i in range(0, x.size, chunk)] + [stage.flush()])


def test_without_a_clock_offset_the_carrier_goes_to_the_emulator():
    x = (np.random.default_rng(1).standard_normal(5000) + 0j).astype(np.complex64)
    stage = ChannelStage.from_paths(_paths(), RATE, snr_db=None, seed=1, cfo_hz=300.0)
    want = ChannelEmulator(_paths(), RATE, seed=1, cfo_hz=300.0)
    assert stage.clock is None and stage.emulator.cfo_hz == 300.0
    np.testing.assert_array_equal(_run(stage, x), _run(want, x))


def test_with_a_clock_offset_the_carrier_turns_after_the_clock():
    x = (np.random.default_rng(2).standard_normal(20000) + 0j).astype(np.complex64)
    cfo, ppm = 2000.0, 100.0
    got = _run(ChannelStage.from_paths(_paths(), RATE, snr_db=None, seed=1, cfo_hz=cfo, sco_ppm=ppm), x, 3000)
    clocked = _run(ChannelStage(ChannelEmulator(_paths(), RATE, seed=1), 0.0), x)
    clock = SampleClock(ppm)
    clocked = np.concatenate([clock.process(clocked), clock.flush()])
    m = np.arange(clocked.size)
    np.testing.assert_allclose(got, clocked * np.exp(2j * np.pi * cfo * (1 + ppm * 1e-6) / RATE * m), atol=1e-4)
