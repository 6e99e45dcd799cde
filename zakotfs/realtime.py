"""The real-time path: a fixed batch of frames, buffers allocated once, and on the GPU the
whole device chain (estimate -> CG-LMMSE -> demap) replayed as one CUDA graph.

Per call, on the GPU:

    frames (host) --H2D--> device input --graph replay--> LLRs, bits, stats --D2H--> pinned host

all enqueued on one stream with a single synchronisation at the end. The graph is
captured once, after a warm-up run has created the cuFFT plans, compiled the kernels and
filled a memory pool that only the graph uses: a replay launches no Python, allocates
nothing and frees nothing. Host input already in pinned memory (``pinned_frames``) is
copied at full PCIe rate; pageable input still works, at the driver's staged rate.

On the CPU backend the same object runs ``Receiver.run`` directly, so every caller (the
benchmark, the tests) exercises one code path on both backends.
"""
from __future__ import annotations

import numpy as np

from .frame_stats import pack, take_frames, unpack
from .receiver import Receiver, RxResult

__all__ = ["RealtimeReceiver", "first_frames"]


class RealtimeReceiver:
    """``Receiver`` for batches of up to ``batch`` frames, with pre-allocated buffers.

    Parameters
    ----------
    receiver : Receiver
        Its estimator must not be ``perfect`` (the real-time path estimates the channel).
    batch : int
        Frames per call.
    graph : bool
        On the GPU, replay the chain as a CUDA graph (False: the same chain launched op by
        op on the same stream, for comparison). Ignored on the CPU.

    ``process`` returns host arrays that the next call overwrites, unless ``copy=True``:
    the LLRs, bits and statistics live in pinned buffers that the device writes directly.
    """

    def __init__(self, receiver: Receiver, batch: int = 1, *, graph: bool = True):
        if receiver.estimator is None:
            raise ValueError("the real-time path estimates the channel: estimator 'perfect' is not supported")
        if not (isinstance(batch, int) and batch >= 1):
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        self.receiver = receiver
        self.batch = batch
        self.config = c = receiver.config
        self.backend = be = receiver.backend
        self.shape = (batch, c.cp_len + c.MN)
        self.graph = None
        self.capture_error: str | None = None
        if be.name != "gpu":
            return
        import cupy as cp

        self.stream = cp.cuda.Stream(non_blocking=True)
        self.pool = cp.cuda.MemoryPool()           # the chain's intermediates, never shared
        self.frames_dev = cp.empty(self.shape, dtype=np.complex64)
        self.frames_dev.fill(0)
        with self.stream, cp.cuda.using_allocator(self.pool.malloc):
            self._chain()                          # plans, kernels, pool blocks
            self.stream.synchronize()
            if graph:
                self._capture(cp)
        self.stream.synchronize()
        self.host = {name: self.pinned(arr.shape, arr.dtype) for name, arr in self._outputs().items()}
        self.staging = self.pinned(self.shape, np.complex64)        # short batches, padded
        self.events = [cp.cuda.Event() for _ in range(6)]            # start and end of each stage

    def retune(self, **offsets) -> None:
        """``Receiver.retune(**offsets)`` for the batches run from now on: on the GPU after
        the work in flight on this path is done (its results stay in the pinned buffers),
        the chain captured again with the new constants."""
        self.receiver.retune(**offsets)
        self.recapture()

    def recapture(self) -> None:
        """Capture the receiver's chain again (after ``Receiver.retune``); nothing on the
        CPU, which runs it op by op."""
        if self.backend.name != "gpu":
            return
        import cupy as cp

        self.stream.synchronize()
        graph, self.graph = self.graph, None
        with self.stream, cp.cuda.using_allocator(self.pool.malloc):
            self._chain()
            self.stream.synchronize()
            if graph is not None:
                self._capture(cp)
        self.stream.synchronize()

    # ---- the device chain ------------------------------------------------------------
    def _chain(self):
        """Receiver.run on the device input; the per-frame statistics packed in one float32
        [F, K] (``zakotfs.frame_stats.pack``) so that they come back in one copy."""
        start = self.receiver.frame_start
        out = self.receiver.run(self.frames_dev[:, start:start + self.config.MN])
        self.out = (out, pack(out, self.backend.xp))
        return self.out

    def _capture(self, cp) -> None:
        """Capture ``_chain`` into a CUDA graph; on failure keep op-by-op launches and say why."""
        mode = getattr(cp.cuda.runtime, "streamCaptureModeRelaxed", None)
        try:
            self.stream.begin_capture(mode) if mode is not None else self.stream.begin_capture()
            try:
                out = self._chain()
            finally:
                graph = self.stream.end_capture()
            self.graph, self.out = graph, out
        except Exception as exc:          # CuPy raises its own CUDA error types
            self.capture_error = f"{type(exc).__name__}: {exc}"
            self.graph = None

    def _outputs(self) -> dict:
        """The device arrays copied back per call (C-contiguous, so one memcpy each)."""
        out, stats = self.out
        arrays = {"llr": out.llr, "bits": out.bits, "stats": stats}
        assert all(a.flags.c_contiguous for a in arrays.values())
        return arrays

    # ---- host side -------------------------------------------------------------------
    def pinned(self, shape, dtype) -> np.ndarray:
        """An empty host array in page-locked memory (plain numpy on the CPU backend): where
        the ingest should write frames so that the host-to-device copy runs at full rate."""
        if self.backend.name != "gpu":
            return np.empty(shape, dtype=dtype)
        import cupyx

        return cupyx.empty_pinned(shape, dtype=dtype)

    def pinned_frames(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` copied into pinned memory, same shape (for benchmarks and ring buffers)."""
        out = self.pinned(frames.shape, np.complex64)
        out[...] = frames
        return out

    def process(self, frames: np.ndarray, *, copy: bool = False) -> RxResult:
        """complex64 [F, cp_len + MN] host samples, 1 <= F <= batch -> RxResult.

        The arrays are views of pinned buffers that the next call overwrites, unless
        ``copy``. A short batch (the end of a stream) is padded with zero frames, whose
        results are dropped. ``stage_s`` holds the seconds of transfer_in, chain and
        transfer_out, measured with CUDA events on the GPU.
        """
        frames = np.asarray(frames)
        F = self.check(frames)
        if self.backend.name != "gpu":
            return self.receiver.process(frames)
        return first_frames(self._replay(self.full_batch(frames)), F, copy)

    def check(self, frames: np.ndarray) -> int:
        """F, the number of frames in ``frames``; ValueError unless complex [F, cp_len + MN],
        1 <= F <= batch."""
        shape = np.shape(frames)
        if len(shape) != 2 or shape[1] != self.shape[1] or not 1 <= shape[0] <= self.batch:
            raise ValueError(f"frames: expected shape [F, {self.shape[1]}] (cp_len + MN) with 1 <= F <= "
                             f"{self.batch}, got {shape}")
        return shape[0]

    def full_batch(self, frames: np.ndarray) -> np.ndarray:
        """complex64 C-contiguous [batch, cp_len + MN]: ``frames`` itself where it already is
        one, else a copy in the pinned staging buffer, padded with zero frames."""
        if frames.shape[0] == self.batch and frames.dtype == np.complex64 and frames.flags.c_contiguous:
            return frames
        F = frames.shape[0]
        self.staging[:F] = frames
        self.staging[F:] = 0
        return self.staging

    def _replay(self, frames: np.ndarray) -> RxResult:
        """One full batch through the graph (or op by op) on this object's stream, results
        in the pinned buffers."""
        self.enqueue(frames, self.stream, self.stream, self.stream)
        return self.result()

    def enqueue(self, frames: np.ndarray, upload, compute, download) -> None:
        """Enqueue one full batch without waiting: its host-to-device copy on ``upload``,
        the chain on ``compute``, the copies back on ``download`` (CuPy streams, the same or
        not), each stream waiting on the previous step's event. ``frames`` (complex64
        [batch, cp_len + MN], C-contiguous, best pinned) must stay unchanged, and the pinned
        outputs unread, until ``result`` returns. Replays of graphs that share a
        ``Receiver`` (and with it CuPy's cuFFT plans and their work areas) must all go to one
        ``compute`` stream."""
        import cupy as cp

        copy = cp.cuda.runtime.memcpyAsync
        up0, up1, c0, c1, down0, down1 = self.events
        up0.record(upload)
        copy(self.frames_dev.data.ptr, frames.ctypes.data, frames.nbytes, cp.cuda.runtime.memcpyHostToDevice,
             upload.ptr)
        up1.record(upload)
        compute.wait_event(up1)
        c0.record(compute)
        with compute:
            if self.graph is not None:
                self.graph.launch(compute)
            else:
                self._chain()
        c1.record(compute)
        download.wait_event(c1)
        down0.record(download)
        for name, arr in self._outputs().items():
            copy(self.host[name].ctypes.data, arr.data.ptr, arr.nbytes, cp.cuda.runtime.memcpyDeviceToHost,
                 download.ptr)
        down1.record(download)

    def result(self) -> RxResult:
        """Wait for the batch last enqueued; its results (views of the pinned buffers) with
        the device seconds of transfer_in, chain and transfer_out from CUDA events."""
        import cupy as cp

        up0, up1, c0, c1, down0, down1 = self.events
        down1.synchronize()
        stage_ms = [cp.cuda.get_elapsed_time(a, b) for a, b in ((up0, up1), (c0, c1), (down0, down1))]
        return RxResult(
            bits=self.host["bits"], llr=self.host["llr"], symbols=None,
            stage_s={name: ms * 1e-3 for name, ms in zip(("transfer_in", "chain", "transfer_out"), stage_ms)},
            llr_step=self.receiver.llr_step, **unpack(self.host["stats"]),
        )

    def describe(self) -> dict:
        """How the chain runs here (for benchmark reports)."""
        return {"batch": self.batch, "backend": self.backend.name,
                "cuda_graph": self.graph is not None, "capture_error": self.capture_error}


def first_frames(result: RxResult, n: int, copy: bool) -> RxResult:
    """The first ``n`` frames of ``result`` (bits and LLRs copied when ``copy``)."""
    take = (lambda a: a[:n].copy()) if copy else (lambda a: a[:n])
    return RxResult(bits=take(result.bits), llr=take(result.llr), symbols=None, stage_s=result.stage_s,
                    llr_step=result.llr_step, **take_frames(result, n))
