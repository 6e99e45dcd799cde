"""The CPU's real-time path against the reference receiver, on the same frames.

The fast path is: the delay fit and the taps' spectra compiled (``dsp_kernels.cpu_fit``),
the CG-LMMSE compiled a frame at a time with FFTW (``dsp_kernels.cpu_cg``), the fused
elementwise steps (``dsp_kernels.cpu_fused``), and each batch split between worker
processes (``zakotfs.cpu_workers``). The reference is the array code every one of them
replaces, run in this process.
"""
import os

import numpy as np
import pytest

from dsp_kernels import cpu_cg, fused
from dsp_kernels.cpu import CpuBackend
from zakotfs import design
from zakotfs.benchmark import make_frames
from zakotfs.channel_operator import ChannelOperator
from zakotfs.cpu_workers import CpuWorkers, WorkerError, worker_cpus
from zakotfs.receiver import Receiver


@pytest.fixture(scope="module")
def frames():
    """16 frames of the CPU real-time grid (128 x 16 at 1.92 MHz, 16QAM) through the
    sample-level Veh-A emulator at 815 Hz and 20 dB."""
    config = design(128, 16, 1.92e6)
    return config, make_frames(config, 16, snr_db=20.0, seed=3)


def _reference(monkeypatch):
    """Switch every compiled CPU step off: the array code runs instead."""
    monkeypatch.setattr(ChannelOperator, "compiled", lambda *_: False)
    monkeypatch.setattr(CpuBackend, "sparse_delay_fit", lambda *_, **__: None)
    monkeypatch.setattr(CpuBackend, "sparse_path_fit", lambda *_, **__: None)
    monkeypatch.setattr(CpuBackend, "atom_taps_fft", lambda *_, **__: None)
    monkeypatch.setattr(fused, "_compiled", lambda *_: False)


@pytest.mark.skipif(not cpu_cg.available(), reason="FFTW (pyFFTW) is not installed")
def test_fast_path_decodes_the_reference_receivers_bits(frames, monkeypatch):
    """The same frames through the fast path (two worker processes) and the reference
    receiver: the BER within 2 %, and all but a few bits in 10^4 identical (float32
    rounding differs between compiled and array code and the CG's steps amplify it)."""
    config, data = frames
    fast = Receiver(config, backend="cpu", quiet=True)
    with CpuWorkers(fast, batch=8, n=2) as workers:
        got = []
        for start in range(0, 16, 8):
            workers.submit(data.frames[start:start + 8])
            got.append(workers.collect())
    fast_bits = np.concatenate([g.bits for g in got])
    with monkeypatch.context() as m:
        _reference(m)
        reference = Receiver(config, backend="cpu", quiet=True).process(data.frames)
    errors = lambda bits: np.count_nonzero(bits != data.bits)   # noqa: E731
    print(f"bit errors: fast path {errors(fast_bits)}, reference {errors(reference.bits)} of {data.bits.size}")
    assert errors(reference.bits) > 100                      # a link with errors to compare
    assert abs(errors(fast_bits) - errors(reference.bits)) <= 0.02 * errors(reference.bits)
    assert np.mean(fast_bits != reference.bits) < 5e-4
    np.testing.assert_allclose(np.concatenate([g.noise_var for g in got]), reference.noise_var, rtol=1e-3)


def test_workers_keep_frame_order_across_split_and_rotated_batches(frames):
    """Batches of 1, 3 and 4 frames, two in flight, split between two workers taken in
    turn: every collect gives its own batch's frames in order, the results of the receiver
    run in this process."""
    config, data = frames
    receiver = Receiver(config, backend="cpu", quiet=True)
    batches = [data.frames[[0]], data.frames[1:4], data.frames[[7]], data.frames[4:8], data.frames[[3]]]
    want = [receiver.process(b) for b in batches]
    with CpuWorkers(receiver, batch=4, n=2, depth=2) as workers:
        workers.submit(batches[0])
        got = []
        for b in batches[1:]:
            workers.submit(b)
            got.append(workers.collect())
        got.append(workers.collect())
        assert workers.in_flight == 0
        with pytest.raises(RuntimeError, match="no batch in flight"):
            workers.collect()
    for g, w in zip(got, want):
        assert g.bits.shape == w.bits.shape
        assert np.mean(g.bits != w.bits) < 5e-4
        np.testing.assert_allclose(g.cfo_hz, w.cfo_hz, atol=1.0)


def test_a_failing_or_dead_worker_is_an_error_not_a_hang(frames):
    """A batch of the wrong shape is refused at once; a request the worker fails on comes
    back as its error; a worker that died is reported as dead, within seconds."""
    config, data = frames
    receiver = Receiver(config, backend="cpu", quiet=True)
    with CpuWorkers(receiver, batch=2, n=2) as workers:
        with pytest.raises(ValueError, match="expected shape"):
            workers.submit(data.frames[:2, :-1])
        with pytest.raises(ValueError, match="expected shape"):
            workers.submit(data.frames[:3])
        workers._conns[0].send(("process", (99, 1)))          # a slot it does not have
        workers._in_flight.append([(0, 0, 1)])
        with pytest.raises(WorkerError, match="worker 0: IndexError"):
            workers.collect()
    with CpuWorkers(receiver, batch=2, n=2) as workers:
        workers._procs[1].kill()
        workers.submit(data.frames[:2])
        with pytest.raises(WorkerError, match="worker 1"):
            workers.collect()


def test_each_worker_keeps_to_a_core_of_its_own(frames, monkeypatch):
    """Where there are as many cores as workers, worker i runs on the i-th allowed core and
    on no other (read back from the kernel); with fewer cores the scheduler places them."""
    config, _ = frames
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs two cores")
    with CpuWorkers(Receiver(config, backend="cpu", quiet=True), batch=2, n=2) as workers:
        assert [os.sched_getaffinity(proc.pid) for proc in workers._procs] == [{cores[0]}, {cores[1]}]
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0})
    assert worker_cpus(2) == [None, None]


def test_the_shared_slots_leave_no_file_behind(frames):
    """The workers' shared memory is unlinked once mapped: nothing named zakotfs-worker-*
    remains in its folder while they run or after they end."""
    import glob

    config, data = frames
    receiver = Receiver(config, backend="cpu", quiet=True)
    folder = "/dev/shm" if os.access("/dev/shm", os.W_OK) else __import__("tempfile").gettempdir()
    before = set(glob.glob(os.path.join(folder, "zakotfs-worker-*")))
    with CpuWorkers(receiver, batch=4, n=2) as workers:
        assert set(glob.glob(os.path.join(folder, "zakotfs-worker-*"))) == before
        workers.submit(data.frames[:4])
        assert workers.collect().bits.shape == (4, config.bits_per_frame)
    assert set(glob.glob(os.path.join(folder, "zakotfs-worker-*"))) == before
