"""Sample-clock offset (``zakotfs.sco``): measured from frame starts, and undone by the
receiver, judged on the physical emulator's frames read by a receiver whose clock is off
(the exact band-limited resampling of the received stream)."""
import numpy as np
import pytest

from channel_models.emulator import ChannelEmulator
from channel_models.paths import draw_paths
from channel_models.profiles import load_profile
from dsp_kernels.resample import TimeScale
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.receiver import Receiver
from zakotfs.sco import clock_offset_ppm


def test_the_offset_is_read_from_the_frame_period():
    """Starts of frames every S / (1 + epsilon) samples (rounded, some frames missing) give
    epsilon back to within the rounding."""
    S, ppm = 16512, 37.0
    seqs = np.array([0, 1, 2, 4, 5, 9, 10, 11, 30])
    starts = np.round(1234 + seqs * S / (1 + ppm * 1e-6))
    assert clock_offset_ppm(seqs, starts, S) == pytest.approx(ppm, abs=0.5 / (30 * S) * 1e6)
    assert clock_offset_ppm([3, 4], [0, S], S) is None and clock_offset_ppm([1, 1, 1], [0, 1, 2], S) is None


def test_a_known_clock_offset_costs_nothing_once_undone():
    """Demo grid, Veh-A 815 Hz, 20 dB, 3 realisations of one frame read by a receiver whose
    clock is 100 ppm slow (1.65 samples of drift across a frame): undone, the errors are
    those without any offset (within 5 % + 30 bits); ignored, they are 1.5x more."""
    c, ppm = preset("demo"), 100.0
    plain, undone = Receiver(c, backend="cpu", quiet=True), Receiver(c, backend="cpu", quiet=True, sample_clock_ppm=ppm)
    errors = {"clean": 0, "undone": 0, "ignored": 0}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        bits = random_bits(c, 1, rng)
        tx = np.concatenate([FrameBuilder(c).stream(bits), np.zeros(c.samples_per_frame // 8, np.complex64)])
        em = ChannelEmulator(draw_paths(load_profile("veh-a"), 815.0, rng), c.bandwidth, snr_db=20.0, seed=seed)
        received = np.concatenate([em.process(tx), em.flush()])[:tx.size]
        slow = TimeScale(received.size, 1 + ppm * 1e-6)(received)

        def frame(stream):
            return np.ascontiguousarray(stream[None, c.preamble_len:c.samples_per_frame])
        errors["clean"] += int(np.count_nonzero(plain.process(frame(received)).bits != bits))
        errors["undone"] += int(np.count_nonzero(undone.process(frame(slow)).bits != bits))
        errors["ignored"] += int(np.count_nonzero(plain.process(frame(slow)).bits != bits))
    print(errors)
    assert errors["undone"] <= 1.05 * errors["clean"] + 30
    assert errors["ignored"] > 1.5 * errors["clean"]
    with pytest.raises(ValueError, match="sample_clock_ppm"):
        Receiver(c, backend="cpu", quiet=True, sample_clock_ppm=float("inf"))


def test_a_retuned_pipeline_gives_the_retuned_receivers_results(backend):
    """``PipelinedReceiver.retune`` (rx --recalibrate): a batch submitted after it gives what
    a receiver built with the new offsets gives (on the GPU: the chain captured again); a
    batch in flight before it keeps the old ones. ``RealtimeReceiver.retune`` alike."""
    from zakotfs.pipelined import PipelinedReceiver
    from zakotfs.realtime import RealtimeReceiver

    c, ppm = preset("demo"), 100.0
    rng = np.random.default_rng(4)
    tx = FrameBuilder(c).stream(random_bits(c, 2, rng))
    em = ChannelEmulator(draw_paths(load_profile("veh-a"), 815.0, rng), c.bandwidth, snr_db=25.0, seed=4)
    received = TimeScale(tx.size, 1 + ppm * 1e-6)(np.concatenate([em.process(tx), em.flush()])[:tx.size])
    frames = np.ascontiguousarray(received.reshape(2, -1)[:, c.preamble_len:], np.complex64)
    want_old = Receiver(c, backend=backend, quiet=True).process(frames)
    want_new = Receiver(c, backend=backend, quiet=True, sample_clock_ppm=ppm, cfo_offset_hz=300.0).process(frames)
    pipeline = PipelinedReceiver(Receiver(c, backend=backend, quiet=True), batch=2, copy=True)
    pipeline.submit(frames)                              # in flight on the GPU while retuned
    pipeline.retune(sample_clock_ppm=ppm, cfo_offset_hz=300.0)
    old = pipeline.collect()
    pipeline.submit(frames)
    new = pipeline.collect()
    # (on the CPU the pipeline's worker processes each take one frame of the batch: other
    # float32 rounding than the batch of two, which the CG's steps amplify)
    tolerance = 1e-4 if backend.name == "gpu" else 5e-4
    for got, want in ((old, want_old), (new, want_new)):
        assert np.mean(got.bits != want.bits) < tolerance
        np.testing.assert_allclose(got.cfo_hz, want.cfo_hz, atol=1.0)
    assert np.count_nonzero(new.bits != old.bits) > 0                # the offsets changed the result
    realtime = RealtimeReceiver(Receiver(c, backend=backend, quiet=True), batch=2)
    realtime.retune(sample_clock_ppm=ppm, cfo_offset_hz=300.0)
    assert np.mean(realtime.process(frames).bits != want_new.bits) < 1e-4
    with pytest.raises(ValueError, match="sample_clock_ppm"):
        pipeline.retune(sample_clock_ppm=float("nan"))
