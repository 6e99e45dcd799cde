"""Frame acquisition on streams built by zakotfs.FrameBuilder (tiny and demo presets, one
noiseless paper-preset case).

Every case checks exact absolute frame starts and that a returned frame is the stream's
CP + payload samples, not only counts.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import zakotfs
from streaming.acquisition import (NO_PREAMBLE_MESSAGE, FrameAcquirer, acquire,
                                   false_alarm_threshold, preamble_metric, split_aligned)


def noise(rng, n, var):
    w = np.sqrt(var / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    return w.astype(np.complex64)


def transmit(config, n_frames, rng):
    """(wire frames complex64 [F, S], stream [F S])."""
    builder = zakotfs.FrameBuilder(config)
    frames = builder.build(zakotfs.random_bits(config, n_frames, rng))
    return frames, frames.reshape(-1)


def push_pieces_open(acq, stream, rng, max_len):
    """Push ``stream`` in random message sizes 1 .. max_len (the stream goes on)."""
    out, i = [], 0
    while i < stream.size:
        k = int(rng.integers(1, max_len + 1))
        out += acq.push(stream[i:i + k])
        i += k
    return out


def push_pieces(acq, stream, rng, max_len):
    """``push_pieces_open``, then flush: the stream ends."""
    return push_pieces_open(acq, stream, rng, max_len) + acq.flush()


def starts(found):
    return [meta["start"] for _, meta in found]


def check_frames_are_stream_slices(found, rx, config):
    n = config.cp_len + config.MN
    for frame, meta in found:
        assert frame.dtype == np.complex64 and frame.shape == (n,)
        assert np.all(np.isfinite(frame))
        np.testing.assert_array_equal(frame, rx[meta["start"]:meta["start"] + n])


# ---- AWGN, random offset, random message sizes ------------------------------------------------
@pytest.mark.parametrize("name,seed", [("tiny", 1), ("tiny", 2), ("demo", 3)])
def test_awgn_every_frame_exact(name, seed):
    config = zakotfs.preset(name)
    rng = np.random.default_rng(seed)
    S, L, F, nv = config.samples_per_frame, config.preamble_len, 6, 0.1   # 10 dB
    wire, tx = transmit(config, F, rng)
    offset = int(rng.integers(1, S))
    clean = np.concatenate([np.zeros(offset, np.complex64), tx])
    rx = clean + noise(rng, clean.size, nv)
    found = push_pieces(FrameAcquirer(config), rx, rng, max_len=3000)

    assert starts(found) == [offset + f * S + L for f in range(F)]
    assert [m["seq"] for _, m in found] == list(range(F))
    assert all(m["lost_before"] == 0 for _, m in found)
    check_frames_are_stream_slices(found, rx, config)
    for f, (frame, meta) in enumerate(found):
        # the transmitted CP + payload, up to the 10 dB noise (a 1-sample shift gives ~2)
        assert np.mean(np.abs(frame - wire[f, L:]) ** 2) < 1.5 * nv
        assert 0.8 < meta["metric"] <= 1.0


def test_acquirer_stats_on_clean_run():
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(5)
    _, tx = transmit(config, 5, rng)
    rx = np.concatenate([noise(rng, 777, 0.1), tx + noise(rng, tx.size, 0.1)])
    acq = FrameAcquirer(config)
    found = acq.push(rx) + acq.flush()
    assert len(found) == 5
    s = acq.stats
    assert s["samples_in"] == rx.size
    assert (s["frames_out"], s["frames_lost"], s["frames_bad"], s["resyncs"]) == (5, 0, 0, 0)
    assert (s["acquisitions"], s["false_locks"]) == (1, 0)
    assert (s["lock_checks"], s["timing_jumps"]) == (4, 0)


# ---- multipath: align to the first path -----------------------------------------------------
@pytest.mark.parametrize("taps", [
    {0: 1.0, 3: 0.5j, 7: -0.3},          # first path strongest
    {0: 0.6, 2: 1.0, 6: 0.35j},          # first path 4.4 dB weaker than the second
])
def test_multipath_start_on_first_path(taps):
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(11)
    S, L, F, nv = config.samples_per_frame, config.preamble_len, 5, 0.1
    h = np.zeros(max(taps) + 1, np.complex128)
    for d, g in taps.items():
        h[d] = g
    h /= np.linalg.norm(h)
    _, tx = transmit(config, F, rng)
    offset = 1234
    clean = np.convolve(np.concatenate([np.zeros(offset, np.complex64), tx]), h)
    rx = (clean + noise(rng, clean.size, nv)).astype(np.complex64)
    found = push_pieces(FrameAcquirer(config), rx, rng, max_len=5000)
    assert starts(found) == [offset + f * S + L for f in range(F)]   # first path at delay 0
    check_frames_are_stream_slices(found, rx, config)


# ---- gaps, NaN, restart ---------------------------------------------------------------------
def test_dropped_block_counts_lost_and_relocks():
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(21)
    S, L, F, nv = config.samples_per_frame, config.preamble_len, 8, 0.1
    wire, tx = transmit(config, F, rng)
    offset, gap, gap_at = 500, 700, 3 * S + L + 900       # inside frame 3's payload
    clean = np.concatenate([np.zeros(offset, np.complex64), tx])
    cut = offset + gap_at
    rx = np.concatenate([clean[:cut], clean[cut + gap:]])
    rx = rx + noise(rng, rx.size, nv)
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=4000)

    expected = ([offset + f * S + L for f in range(3)]
                + [offset + f * S + L - gap for f in range(4, F)])
    assert starts(found) == expected
    assert [m["seq"] for _, m in found] == [0, 1, 2, 4, 5, 6, 7]
    assert [m["lost_before"] for _, m in found] == [0, 0, 0, 1, 0, 0, 0]
    s = acq.stats
    assert (s["frames_lost"], s["resyncs"], s["frames_bad"], s["false_locks"]) == (1, 1, 0, 0)
    check_frames_are_stream_slices(found, rx, config)
    for frame, meta in found[3:]:
        assert np.mean(np.abs(frame - wire[meta["seq"], L:]) ** 2) < 1.5 * nv


def test_few_dropped_samples_stay_locked():
    """A drop smaller than the tracking window: the damaged frame is dropped, no resync."""
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(22)
    S, L, F = config.samples_per_frame, config.preamble_len, 6
    _, tx = transmit(config, F, rng)
    gap, cut = 5, 2 * S + L + 1000
    rx = np.concatenate([tx[:cut], tx[cut + gap:]])
    rx = rx + noise(rng, rx.size, 0.1)
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=2500)
    assert starts(found) == [L, S + L] + [f * S + L - gap for f in range(3, F)]
    assert [m["seq"] for _, m in found] == [0, 1, 3, 4, 5]
    s = acq.stats
    assert (s["frames_lost"], s["timing_jumps"], s["resyncs"]) == (1, 1, 0)


def test_one_sample_slip_between_frames_is_followed():
    """A sample inserted before a preamble (clock drift): every frame kept, timing follows."""
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(24)
    S, L, F = config.samples_per_frame, config.preamble_len, 6
    _, tx = transmit(config, F, rng)
    at = 3 * S                                   # just before frame 3's preamble
    rx = np.concatenate([tx[:at], noise(rng, 1, 0.1), tx[at:]])
    rx = rx + noise(rng, rx.size, 0.1)
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=2500)
    assert starts(found) == [f * S + L + (f >= 3) for f in range(F)]
    assert acq.stats["frames_lost"] == 0 and acq.stats["timing_jumps"] == 0


@pytest.mark.parametrize("ppm", [150.0, -200.0])
def test_a_sample_clock_offset_is_tracked_and_a_slip_still_seen(ppm):
    """Demo frames read by a receiver whose clock is off by 150 or -200 ppm (-2.5 or +3.3
    samples a frame, beyond jump_tolerance): every frame is kept, the starts follow the
    sender's clock; 5 samples dropped inside frame 6 are still a timing jump (that frame
    lost)."""
    from channel_models.sample_clock import SampleClock

    config = zakotfs.preset("demo")
    rng = np.random.default_rng(31)
    S, L, F = config.samples_per_frame, config.preamble_len, 10
    _, tx = transmit(config, F, rng)
    clock = SampleClock(ppm, half_len=512)
    slow = np.concatenate([clock.process(tx), clock.flush(), np.zeros(S // 4, np.complex64)])   # then silence
    period = S / (1 + ppm * 1e-6)
    rx = slow + noise(rng, slow.size, 0.1)
    found = push_pieces(FrameAcquirer(config), rx, rng, max_len=8191)
    assert [m["seq"] for _, m in found] == list(range(F))
    assert all(abs(m["start"] - (f * period + L)) <= 2 for f, (_, m) in enumerate(found))
    cut = round(6 * period + L + 5000)
    dropped = np.concatenate([slow[:cut], slow[cut + 5:]])
    acq = FrameAcquirer(config)
    found = push_pieces(acq, dropped + noise(rng, dropped.size, 0.1), rng, max_len=8191)
    assert [m["seq"] for _, m in found] == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert acq.stats["timing_jumps"] == 1 and acq.stats["resyncs"] == 0


@pytest.mark.parametrize("seed,timing", [(4, 0.5), (4, -0.5), (2, 0.5)])
def test_fading_multipath_at_half_sample_timing_keeps_every_frame(seed, timing):
    """Veh-A at 815 Hz, 25 dB, sampled half a sample off: fading makes the first path (split
    over two samples) and the strongest path jump between Veh-A's paths from frame to frame.
    Every frame is kept and placed where the previous ones were (the delay profile's
    alignment), not where its own first path happened to be found."""
    from channel_models.emulator import ChannelEmulator
    from channel_models.paths import draw_paths
    from channel_models.profiles import load_profile

    config = zakotfs.preset("demo")
    S, L, F, lead = config.samples_per_frame, config.preamble_len, 20, 1000
    paths = draw_paths(load_profile("veh-a"), 815.0, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    _, tx = transmit(config, F, rng)
    tx = np.concatenate([np.zeros(lead, np.complex64), tx, np.zeros(S // 4, np.complex64)])
    em = ChannelEmulator(paths, config.bandwidth, snr_db=25.0, seed=seed, timing_offset=timing)
    rx = np.concatenate([em.process(tx), em.flush()])[:tx.size]
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=8191)
    assert [m["seq"] for _, m in found] == list(range(F))
    assert acq.stats["timing_jumps"] == 0 and acq.stats["frames_lost"] == 0
    offsets = {m["start"] - (lead + f * S + L) for f, (_, m) in enumerate(found)}
    assert len(offsets) == 1 and abs(offsets.pop()) <= 12        # one placement, inside the tap window


def test_placement_moves_to_a_first_path_that_was_faded_at_acquisition():
    """Two paths 20 samples apart; the first is 26 dB down for the first three frames, so the
    acquisition places the frames on the second. Once the first path has been seen in two
    frames the placement moves to it (earlier only) and stays."""
    config = zakotfs.preset("demo")
    rng = np.random.default_rng(41)
    S, L, F, d = config.samples_per_frame, config.preamble_len, 10, 20
    _, tx = transmit(config, F, rng)
    first = np.where(np.arange(tx.size) < 3 * S, 0.05, 1.0).astype(np.float32)
    rx = first * tx + np.concatenate([np.zeros(d, np.complex64), tx[:-d]])
    rx = np.concatenate([rx, np.zeros(S // 4, np.complex64)])
    rx = rx + noise(rng, rx.size, 0.01)
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=8191)
    assert [m["seq"] for _, m in found] == list(range(F))
    offsets = [m["start"] - (f * S + L) for f, (_, m) in enumerate(found)]
    assert offsets == [d] * 4 + [0] * (F - 4)
    assert acq.stats["timing_jumps"] == 0


def test_a_cheap_clock_on_the_paper_grid_keeps_every_frame():
    """Paper frames (525 184 samples) read by a clock 20 ppm slow, a cheap SDR's crystal:
    10.5 samples of drift a frame. Every frame is kept (1 of 8 before the drift line)."""
    from channel_models.sample_clock import SampleClock

    config = zakotfs.preset("paper")
    rng = np.random.default_rng(51)
    S, L, F = config.samples_per_frame, config.preamble_len, 6
    _, tx = transmit(config, F, rng)
    clock = SampleClock(20.0, half_len=256, block=1 << 17)
    slow = np.concatenate([clock.process(tx), clock.flush(), np.zeros(S // 4, np.complex64)])
    acq = FrameAcquirer(config)
    found = acq.push(slow + noise(rng, slow.size, 0.05)) + acq.flush()
    assert [m["seq"] for _, m in found] == list(range(F))
    assert acq.stats["timing_jumps"] == 0
    period = S / (1 + 20e-6)
    assert all(abs(m["start"] - (f * period + L)) <= 2 for f, (_, m) in enumerate(found))


def test_random_faults_never_give_a_damaged_frame():
    """300 tiny-grid streams of 12 frames, 16 dB, cut into random messages, each with one
    fault at a random place: up to 300 samples dropped, a gap of silence up to 3 frames, a
    NaN block up to 500 samples, or the sender restarting. Every frame emitted is a whole
    frame of the wire, and no fewer are emitted than before the tracking followed the delay
    profile (3758: the frames around each fault are lost, some sent twice after a
    restart)."""
    config = zakotfs.preset("tiny")
    S, L, n = config.samples_per_frame, config.preamble_len, config.cp_len + config.MN
    emitted = damaged = 0
    for trial in range(300):
        rng = np.random.default_rng(trial)
        _, stream = transmit(config, 12, rng)
        wire = np.arange(stream.size)              # the wire index of each sample, -1: none
        at = int(rng.integers(S, stream.size - S))
        fault = trial % 4
        if fault == 0:
            k = int(rng.integers(1, 300))
            stream, wire = np.delete(stream, slice(at, at + k)), np.delete(wire, slice(at, at + k))
        elif fault == 1:
            k = int(rng.integers(1, 3 * S))
            stream, wire = np.insert(stream, at, np.zeros(k, np.complex64)), np.insert(wire, at, -np.ones(k, int))
        elif fault == 2:
            k = int(rng.integers(1, 500))
            stream[at:at + k], wire[at:at + k] = np.nan, -1
        else:
            stream, wire = np.concatenate([stream[:at], stream]), np.concatenate([wire[:at], wire])
        found = push_pieces(FrameAcquirer(config), stream + noise(rng, stream.size, 0.025), rng, max_len=4000)
        for _, meta in found:
            w = wire[meta["start"]:meta["start"] + n]
            emitted += 1
            damaged += not (w.size == n and w[0] >= 0 and (w[0] - L) % S == 0 and np.all(np.diff(w) == 1))
    assert damaged == 0
    assert emitted >= 3758             # what the acquirer emitted before the profile placement too


def test_flush_then_continue():
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(25)
    S, L = config.samples_per_frame, config.preamble_len
    _, a = transmit(config, 2, rng)
    _, b = transmit(config, 3, rng)
    a = a + noise(rng, a.size, 0.1)
    b = b + noise(rng, b.size, 0.1)
    acq = FrameAcquirer(config)
    first = acq.push(a) + acq.flush()
    second = acq.push(b) + acq.flush()
    assert starts(first) == [L, S + L]
    assert starts(second) == [a.size + f * S + L for f in range(3)]
    assert [m["seq"] for _, m in first + second] == [0, 1, 2, 3, 4]
    assert acq.stats["frames_out"] == 5 and acq.stats["frames_lost"] == 0 and acq.flush() == []


def test_large_gap_later_frames_exact():
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(23)
    S, L, F = config.samples_per_frame, config.preamble_len, 10
    _, tx = transmit(config, F, rng)
    cut, gap = 2 * S + L + 300, 5 * S // 2        # frame 2 damaged, 3 and 4 gone or damaged
    rx = np.concatenate([tx[:cut], tx[cut + gap:]])
    rx = rx + noise(rng, rx.size, 0.1)
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=6000)
    # intact after the gap: frames whose preamble starts at or after cut + gap in tx terms
    first_after = math.ceil((cut + gap) / S)
    assert starts(found) == [L, S + L] + [f * S + L - gap for f in range(first_after, F)]
    seqs = [m["seq"] for _, m in found]
    assert seqs[:2] == [0, 1] and np.all(np.diff(seqs) >= 1)
    assert acq.stats["frames_lost"] >= 1 and acq.stats["resyncs"] == 1
    assert found[2][1]["lost_before"] == seqs[2] - 2


def push_with_gap(acq, rx, cut, gap, rng, max_len):
    """Push ``rx`` with samples [cut, cut + gap) left out, as a pass_tags receiver sees a
    gap: ``skip(gap)`` between the messages before and after it; then flush."""
    return (push_pieces_open(acq, rx[:cut], rng, max_len) + acq.skip(gap)
            + push_pieces(acq, rx[cut + gap:], rng, max_len))


def test_a_gap_of_whole_frames_is_counted_when_told():
    """Exactly 3 frames' samples cut from inside frame 2: the next preamble is where frame
    2's would be, so the acquirer alone joins frame 2's head to frame 5's tail into one that
    times right, and misses that 3 frames went. Told of the gap (``skip``, what pass_tags
    offsets give), it counts frames 2 to 5 lost and the frames after it keep their sender
    numbers and stream indices."""
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(25)
    S, L, F = config.samples_per_frame, config.preamble_len, 9
    _, tx = transmit(config, F, rng)
    rx = tx + noise(rng, tx.size, 0.1)
    cut, gap = 2 * S + L + 300, 3 * S
    plain = push_pieces(FrameAcquirer(config), np.concatenate([rx[:cut], rx[cut + gap:]]), rng, 3000)
    assert [m["seq"] for _, m in plain] == list(range(F - 3))          # the joined frame passes as frame 2
    acq = FrameAcquirer(config)
    found = push_with_gap(acq, rx, cut, gap, rng, 3000)
    assert [m["seq"] for _, m in found] == [0, 1, 6, 7, 8]
    assert [m["lost_before"] for _, m in found] == [0, 0, 4, 0, 0]
    assert starts(found) == [f * S + L for f in (0, 1, 6, 7, 8)]       # the sender's stream indices
    check_frames_are_stream_slices(found, rx, config)
    s = acq.stats
    assert (s["gaps"], s["samples_missing"], s["frames_lost"], s["resyncs"], s["frames_bad"]) == (1, gap, 4, 0, 0)


def test_a_gap_over_the_next_preamble_keeps_the_frame_before_it():
    """A gap from the end of frame 2 over frame 3's preamble: frame 2 came whole and is
    emitted unconfirmed (without ``skip`` its successor's preamble is missing and it is
    lost); frame 3 is lost, the rest kept."""
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(26)
    S, L, F = config.samples_per_frame, config.preamble_len, 7
    _, tx = transmit(config, F, rng)
    rx = tx + noise(rng, tx.size, 0.1)
    cut, gap = 3 * S, L + 200
    plain = push_pieces(FrameAcquirer(config), np.concatenate([rx[:cut], rx[cut + gap:]]), rng, 3000)
    assert 2 not in [m["seq"] for _, m in plain]
    acq = FrameAcquirer(config)
    found = push_with_gap(acq, rx, cut, gap, rng, 3000)
    assert [m["seq"] for _, m in found] == [0, 1, 2, 4, 5, 6]
    assert starts(found) == [f * S + L for f in (0, 1, 2, 4, 5, 6)]
    check_frames_are_stream_slices(found, rx, config)
    assert acq.stats["frames_lost"] == 1


@pytest.mark.parametrize("ppm", [-100, 100])
def test_frame_numbers_after_a_gap_follow_the_clock(ppm):
    """Demo grid, a receiver clock 100 ppm off (frames 1.66 samples longer or shorter than
    S), 3.3 frames' samples lost inside frame 4 and told by ``skip``: the frame slots across
    the gap are counted with the clock's measured frame period, so frames 4 to 7 are lost and
    the next is numbered 8 (with S itself, 3 frames of -100 ppm lie 5 samples past 3 S, more
    than the timing tolerance: one frame too many)."""
    from channel_models.sample_clock import SampleClock

    config = zakotfs.preset("demo")
    rng = np.random.default_rng(27)
    S, L, F = config.samples_per_frame, config.preamble_len, 12
    _, tx = transmit(config, F, rng)
    clock = SampleClock(ppm)
    rx = np.concatenate([clock.process(tx), clock.flush()])
    rx = rx + noise(rng, rx.size, 0.01)
    cut, gap = 4 * S + L + 500, int(3.3 * S)
    acq = FrameAcquirer(config)
    found = push_with_gap(acq, rx, cut, gap, rng, 20000)
    seqs = [m["seq"] for _, m in found]
    assert seqs[:4] == [0, 1, 2, 3] and seqs[4:] == list(range(8, 8 + len(seqs) - 4)) and seqs[-1] <= F - 1
    assert acq.stats["frames_lost"] == 4


def test_nan_block_drops_one_frame():
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(31)
    S, L, F = config.samples_per_frame, config.preamble_len, 6
    _, tx = transmit(config, F, rng)
    rx = tx + noise(rng, tx.size, 0.1)
    rx[2 * S + L + 400:2 * S + L + 450] = np.nan              # inside frame 2's payload
    rx[2 * S + L + 460] = np.inf
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=3000)
    assert starts(found) == [f * S + L for f in (0, 1, 3, 4, 5)]
    assert [m["seq"] for _, m in found] == [0, 1, 3, 4, 5]
    assert [m["lost_before"] for _, m in found] == [0, 0, 1, 0, 0]
    s = acq.stats
    assert (s["frames_bad"], s["frames_lost"], s["resyncs"]) == (1, 0, 0)
    assert s["nonfinite_samples"] == 51
    check_frames_are_stream_slices(found, rx, config)


def test_nan_over_preamble_then_recovers():
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(32)
    S, L, F = config.samples_per_frame, config.preamble_len, 8
    _, tx = transmit(config, F, rng)
    rx = tx + noise(rng, tx.size, 0.1)
    rx[4 * S - 10:4 * S + L + 10] = np.nan                    # frame 3's tail, frame 4's preamble
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=3000)
    assert starts(found) == [f * S + L for f in (0, 1, 2, 5, 6, 7)]
    assert [m["seq"] for _, m in found] == [0, 1, 2, 5, 6, 7]
    assert found[3][1]["lost_before"] == 2
    s = acq.stats
    assert (s["frames_lost"], s["frames_bad"], s["resyncs"]) == (1, 1, 1)   # 4 lost, 3 bad
    check_frames_are_stream_slices(found, rx, config)


def test_sender_restart_relocks_without_garbage():
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(41)
    S, L = config.samples_per_frame, config.preamble_len
    wire_a, a = transmit(config, 6, rng)
    wire_b, b = transmit(config, 6, rng)
    cut_a, cut_b = 3 * S + L + 555, S + 1500                  # mid-frame in both streams
    rx = np.concatenate([a[:cut_a], b[cut_b:]])
    rx = rx + noise(rng, rx.size, 0.1)
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=2000)
    shift = cut_a - cut_b
    expected = [f * S + L for f in range(3)] + [f * S + L + shift for f in range(2, 6)]
    assert starts(found) == expected
    sent = [wire_a[f, L:] for f in range(3)] + [wire_b[f, L:] for f in range(2, 6)]
    for (frame, _), ref in zip(found, sent):
        assert np.mean(np.abs(frame - ref) ** 2) < 0.15
    s = acq.stats
    assert s["resyncs"] == 1 and s["frames_lost"] >= 1 and s["frames_out"] == 7
    check_frames_are_stream_slices(found, rx, config)


@pytest.mark.parametrize("after", ["zeros", "noise"])
def test_burst_end_emits_last_frame(after):
    """Two bursts separated by silence (or noise 10 dB down): every frame, no flush needed
    for the first burst's last frame; a burst cut short by the sender loses its cut frame."""
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(26)
    S, L = config.samples_per_frame, config.preamble_len
    _, a = transmit(config, 3, rng)
    _, b = transmit(config, 3, rng)
    gap = 5000
    cut = 2 * S + 1500                                       # the second burst stops mid-frame
    rx = np.concatenate([a, np.zeros(gap, np.complex64), b[:cut], np.zeros(gap, np.complex64)])
    if after == "noise":
        rx = rx + noise(rng, rx.size, 0.1)
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=3000)
    b0 = a.size + gap
    assert starts(found) == [f * S + L for f in range(3)] + [b0 + f * S + L for f in range(2)]
    s = acq.stats
    assert s["bursts_ended"] == 1 and s["resyncs"] == 1 and s["frames_lost"] >= 1
    check_frames_are_stream_slices(found, rx, config)


def test_noiseless_stream_after_silence_paper_preset():
    """Paper grid, no noise: 1275-sample zero guards and a zero prefix (the energy floor and
    first-path rule on |c|^2 keep the ZC partial-overlap sidelobes out); trailing zeros."""
    config = zakotfs.preset("paper")
    rng = np.random.default_rng(27)
    S, L = config.samples_per_frame, config.preamble_len
    _, tx = transmit(config, 2, rng)
    offset = 12_345
    rx = np.concatenate([np.zeros(offset, np.complex64), tx, np.zeros(3000, np.complex64)])
    acq = FrameAcquirer(config)
    found = push_pieces(acq, rx, rng, max_len=300_000)
    assert starts(found) == [offset + L, offset + S + L]
    assert acq.stats["false_locks"] == 0 and acq.stats["frames_lost"] == 0
    check_frames_are_stream_slices(found, rx, config)


# ---- false alarm --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tiny", "demo"])
def test_pure_noise_gives_no_frames(name):
    config = zakotfs.preset(name)
    rng = np.random.default_rng(51)
    acq = FrameAcquirer(config)
    found = push_pieces(acq, noise(rng, 400_000, 1.0), rng, max_len=20_000)
    found += acq.push(np.zeros(50_000, np.complex64)) + acq.flush()   # silence: 0/0 is 0
    assert found == []
    s = acq.stats
    assert s["frames_out"] == 0 and s["false_locks"] == s["acquisitions"] <= 1


def test_false_locks_are_never_emitted():
    """A threshold low enough to lock on noise several times: no lock is confirmed."""
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(54)
    acq = FrameAcquirer(config, false_alarm=1e-5)
    found = push_pieces(acq, noise(rng, 600_000, 1.0), rng, max_len=20_000)
    s = acq.stats
    assert found == [] and s["frames_out"] == 0
    assert s["acquisitions"] >= 3 and s["false_locks"] == s["acquisitions"]
    assert s["frames_lost"] == 0 and s["resyncs"] == 0


def test_false_lock_before_a_frame_loses_nothing():
    """Locked on noise just before the signal: the search resumes on the kept samples."""
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(55)
    S, L = config.samples_per_frame, config.preamble_len
    _, tx = transmit(config, 3, rng)
    rx = np.concatenate([noise(rng, 1000, 0.1), tx + noise(rng, tx.size, 0.1)])
    spike = np.zeros(rx.size, np.complex64)
    spike[600:600 + L] = 3 * zakotfs.zadoff_chu(L)       # a strong fake preamble at 600
    acq = FrameAcquirer(config)
    found = acq.push(rx + spike) + acq.flush()
    assert starts(found) == [1000 + f * S + L for f in range(3)]
    assert acq.stats["false_locks"] == 1 and acq.stats["acquisitions"] == 2


def test_metric_on_noise_follows_beta_law():
    """The threshold rule: on white Gaussian noise P(rho > g) = (1 - g)^(L - 1)."""
    config = zakotfs.preset("tiny")
    L = config.preamble_len
    rng = np.random.default_rng(52)
    rho = preamble_metric(noise(rng, 300_000, 2.0), config)[L:-2 * L]
    for p in (1e-1, 1e-2, 1e-3):
        g = false_alarm_threshold(L, p)
        assert math.isclose((1 - g) ** (L - 1), p, rel_tol=1e-9)
        frac = np.mean(rho > g)
        assert abs(frac - p) < 4 * math.sqrt(p / rho.size * 3) + 0.05 * p, (p, frac)


def test_streaming_metric_matches_reference():
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(53)
    _, tx = transmit(config, 2, rng)
    rx = np.concatenate([noise(rng, 300, 0.1), tx + noise(rng, tx.size, 0.1)])
    ref = preamble_metric(rx, config)
    acq = FrameAcquirer(config)
    acq.push(rx)
    got, _ = acq._range_metric(200, 2600)     # the direct correlator the tracker uses
    np.testing.assert_allclose(got, ref[200:2600], rtol=1e-4, atol=1e-6)
    assert int(np.argmax(ref)) in (300, 300 + config.samples_per_frame)


# ---- message-size invariance ------------------------------------------------------------
def test_one_sample_messages_identical_to_one_message():
    config = zakotfs.preset("tiny")
    rng = np.random.default_rng(61)
    S = config.samples_per_frame
    _, tx = transmit(config, 6, rng)
    rx = np.concatenate([noise(rng, 321, 0.1), tx[:3 * S + 700], tx[3 * S + 1000:]])
    rx[321:] += noise(rng, rx.size - 321, 0.1)
    rx[S + 900:S + 910] = np.nan

    runs = []
    for sizes in ("one", "single", "random"):
        acq = FrameAcquirer(config)
        if sizes == "one":
            found = acq.push(rx) + acq.flush()
        elif sizes == "single":
            found = [fm for x in rx for fm in acq.push(np.array([x], np.complex64))] + acq.flush()
        else:
            found = push_pieces(acq, rx, np.random.default_rng(7), max_len=777)
        runs.append((found, acq.stats))
    (ref, ref_stats) = runs[0]
    assert len(ref) == 4 and ref_stats["frames_bad"] == 1 and ref_stats["frames_lost"] == 1
    for found, stats in runs[1:]:
        assert stats == ref_stats
        assert [m for _, m in found] == [m for _, m in ref]
        for (f1, _), (f2, _) in zip(found, ref):
            np.testing.assert_array_equal(f1, f2)


def test_cfo_estimate_and_timing():
    config = zakotfs.preset("demo")
    rng = np.random.default_rng(71)
    S, L, F, cfo = config.samples_per_frame, config.preamble_len, 4, 20e3
    _, tx = transmit(config, F, rng)
    t = np.arange(tx.size)
    rx = tx * np.exp(2j * np.pi * cfo * t / config.bandwidth) + noise(rng, tx.size, 0.01)
    rx = rx.astype(np.complex64)
    frames, metas = acquire(rx, config)
    assert frames.shape == (F, config.cp_len + config.MN)
    assert [m["start"] for m in metas] == [f * S + L for f in range(F)]
    # 128-sample preamble at 20 dB: the estimate's standard deviation is ~ 400 Hz (the CRB)
    assert all(abs(m["cfo_hz"] - cfo) < 1500 for m in metas)


# ---- configuration, aligned replay, validation ------------------------------------------
def test_no_preamble_is_a_clear_error():
    config = zakotfs.preset("tiny", preamble_len=0)
    with pytest.raises(ValueError, match="configure preamble_len > 0 or use file replay"):
        FrameAcquirer(config)
    assert "needs a preamble" in NO_PREAMBLE_MESSAGE


@pytest.mark.parametrize("preamble_len", [0, 64])
def test_split_aligned(preamble_len):
    config = zakotfs.preset("tiny", preamble_len=preamble_len)
    rng = np.random.default_rng(81)
    wire, tx = transmit(config, 3, rng)
    frames = split_aligned(np.concatenate([tx, tx[:17]]), config)   # tail ignored
    assert frames.shape == (3, config.cp_len + config.MN) and frames.dtype == np.complex64
    np.testing.assert_array_equal(frames, wire[:, preamble_len:])


def test_memory_bound_two_frames():
    for name in ("demo", "paper"):
        config = zakotfs.preset(name)
        acq = FrameAcquirer(config)
        assert acq.capacity <= 2.2 * config.samples_per_frame
    tiny = zakotfs.preset("tiny")
    assert FrameAcquirer(tiny).capacity <= 2.3 * tiny.samples_per_frame


def test_validation():
    config = zakotfs.preset("tiny")
    with pytest.raises(ValueError, match="threshold"):
        FrameAcquirer(config, threshold=1.5)
    with pytest.raises(ValueError, match="search"):
        FrameAcquirer(config, search=-1)
    with pytest.raises(ValueError, match="block"):
        FrameAcquirer(config, block=1000)
    with pytest.raises(TypeError, match="config"):
        FrameAcquirer({"M": 64})
    acq = FrameAcquirer(config)
    with pytest.raises(ValueError, match="1-D"):
        acq.push(np.zeros((2, 3), np.complex64))
    with pytest.raises(TypeError, match="complex64"):
        acq.push(np.zeros(3, np.int32))
    assert acq.push(np.zeros(0, np.complex64)) == []
    with pytest.raises(ValueError, match="false_alarm"):
        false_alarm_threshold(64, 0.0)
