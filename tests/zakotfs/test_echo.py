"""Pilot echoes beyond the tap window (``zakotfs.echo``): a path of known power and delay
past the guard is found where it is and as strong as it is; channels the guard holds give
no echo, and frames with no channel at all raise a false alarm at the designed rate; the
receiver and its real-time path report them alike."""
import numpy as np
import pytest

from channel_models.emulator import ChannelEmulator
from channel_models.paths import PathSet, draw_paths
from channel_models.profiles import load_profile
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.echo import FALSE_ALARM, PilotEchoes
from zakotfs.receiver import Receiver


def _received(config, paths, n_frames, snr_db, seed):
    """[F, cp_len + MN] frames through the sample-level emulator, and N0."""
    rng = np.random.default_rng(seed)
    tx = FrameBuilder(config).stream(random_bits(config, n_frames, rng))
    em = ChannelEmulator(paths, config.bandwidth, snr_db=snr_db, seed=seed)
    rx = np.concatenate([em.process(tx), em.flush()])[:tx.size].reshape(n_frames, -1)
    return rx[:, config.preamble_len:], 10 ** (-snr_db / 10)


@pytest.mark.parametrize("echo_delay, farthest", [(200.0, 200), (200.5, 201), (-150.0, -150)])
def test_an_echo_is_found_at_its_delay_and_power(echo_delay, farthest):
    """Demo grid (guard +-63, tap window -12..51): two paths inside the window (power 1.36)
    and one 12 dB under them at ``echo_delay`` samples (a negative one: before the pilot,
    as a timing error or a channel longer than M would put it), 8 frames at 30 dB. Its
    delay is the farthest column it lights (a half-sample delay: 201) in every frame; its
    power, over the frames, within 1.5 dB (measured: -12.3, -13.1, -12.6 dB; the three
    columns around a half-sample path hold 86 % of it, -0.7 dB), and within 3 dB in each
    (the echo's cross term with the data in its column: about +-0.8 dB a frame)."""
    c = preset("demo")
    B = c.bandwidth
    echo_amplitude = np.sqrt((1 + 0.6 ** 2) * 10 ** (-12 / 10))
    delay = echo_delay % c.M              # the emulator's delay; the grid sees it modulo M
    paths = PathSet(np.array([0.0, 3.3, delay]) / B, np.array([1.0, 0.6j, echo_amplitude]),
                    np.array([120.0, -300.0, 200.0]))
    r, n0 = _received(c, paths, 8, 30.0, seed=1)
    echo = PilotEchoes(c)(r[:, c.cp_len:], np.full(8, n0))
    np.testing.assert_array_equal(echo[:, 0], farthest)
    assert abs(np.mean(echo[:, 1]) + 12) <= 1.5 and np.all(np.abs(echo[:, 1] + 12) <= 3), echo[:, 1]


@pytest.mark.parametrize("name, profile", [("demo", "veh-a"), ("demo", "eva"), ("tiny", "veh-a")])
def test_a_channel_the_guard_holds_gives_no_echo(name, profile):
    c = preset(name)
    for snr_db in (10.0, 30.0):
        paths = draw_paths(load_profile(profile), 815.0, np.random.default_rng(int(snr_db)))
        r, n0 = _received(c, paths, 6, snr_db, seed=int(snr_db))
        assert np.all(np.isnan(PilotEchoes(c)(r[:, c.cp_len:], np.full(6, n0)))), (name, profile, snr_db)


def test_false_alarms_come_at_the_designed_rate():
    """400 frames of the tiny grid with no channel but noise at 10 dB: the threshold's
    FALSE_ALARM (1e-3 a frame) predicts 0.4; a Poisson count above 4 has odds of 1e-4."""
    c = preset("tiny")
    rng = np.random.default_rng(3)
    F = 400
    s = FrameBuilder(c).build(random_bits(c, F, rng))[:, c.preamble_len + c.cp_len:]
    n0 = 0.1
    r = s + np.sqrt(n0 / 2) * (rng.standard_normal(s.shape) + 1j * rng.standard_normal(s.shape))
    echo = PilotEchoes(c)(r, np.full(F, n0))
    assert np.count_nonzero(np.isfinite(echo[:, 0])) <= 4, FALSE_ALARM


def test_receiver_and_realtime_path_report_the_echo(backend):
    """Veh-B on the demo grid (paths at 137, 198, 263 and 307 samples, beyond its guard):
    every frame reports an echo, the farthest at one of those delays, the same through
    ``Receiver.process`` and the pre-allocated real-time path."""
    from zakotfs.realtime import RealtimeReceiver

    c = preset("demo")
    paths = draw_paths(load_profile("veh-b"), 815.0, np.random.default_rng(4))
    frames, _ = _received(c, paths, 2, 25.0, seed=4)
    receiver = Receiver(c, backend=backend, quiet=True)
    want = receiver.process(frames)
    got = RealtimeReceiver(receiver, batch=2).process(frames)
    assert np.all(np.isfinite(want.echo_delay))
    assert all(min(abs(d - np.array([137.0, 198.1, 262.7, 307.2]))) <= 1.5 for d in want.echo_delay)
    np.testing.assert_allclose(got.echo_delay, want.echo_delay)
    np.testing.assert_allclose(got.echo_db, want.echo_db, atol=0.01)
