"""Batches in flight: host-device transfers overlapped with compute.

``RealtimeReceiver`` runs one batch at a time (copy in, chain, copy out, wait), so the
GPU idles while samples and results cross PCIe. Here ``depth`` of them, the slots, each
with its own device input, CUDA graph, outputs and pinned host buffers, take turns on three
CUDA streams:

    upload    H2D(k)  H2D(k+1)                 H2D(k+2)
    compute           chain(k)     chain(k+1)            chain(k+2)
    download                       D2H(k)                D2H(k+1)

Batch k+1's samples and batch k's results cross PCIe while the next chain computes; the two
copy directions have a stream each, PCIe being full duplex. Every slot's chain runs on the
one compute stream: the slots share the ``Receiver``'s cuFFT plans and their work areas,
which two chains running at once would corrupt. A slot is reused only after its results
were collected, which orders its next upload after its previous chain and download.

On the CPU each batch is split between ``workers`` processes, one a core
(``zakotfs.cpu_workers``), up to ``depth`` batches in flight; with one worker, ``submit``
runs the receiver in this process and ``collect`` hands its results back. Callers run one
code path on both backends.
"""
from __future__ import annotations

import os
from collections import deque
from typing import Callable

import numpy as np

from .cpu_workers import CpuWorkers
from .realtime import RealtimeReceiver, first_frames
from .receiver import Receiver, RxResult

__all__ = ["PipelinedReceiver", "SerialPipeline", "stream_process", "DEPTH"]

DEPTH = 2
"""Batches in flight by default: one computing while the next one's samples and the last
one's results cross PCIe (on the CPU, while the next one's samples reach the workers)."""


class PipelinedReceiver:
    """Up to ``depth`` batches of up to ``batch`` frames in flight (module doc).

    ``submit(frames)`` starts a batch and returns at once on the GPU; ``collect()`` waits for
    the oldest batch and returns its results. Both raise RuntimeError when misused (a
    submit with ``depth`` batches in flight, a collect with none) rather than block.
    ``copy``: collect returns copies that the caller keeps, instead of views of the slots'
    pinned buffers (on the GPU, valid until the next ``submit``). ``workers``: on the CPU,
    the processes each batch is split between (default: one a core, at most ``batch``);
    ``close()`` ends them.
    """

    def __init__(self, receiver: Receiver, batch: int = 1, depth: int = DEPTH, *, graph: bool = True,
                 copy: bool = False, workers: int | None = None):
        if not (isinstance(depth, int) and depth >= 1):
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        gpu = receiver.backend.name == "gpu"
        workers = min(os.cpu_count() or 1, batch) if workers is None else workers
        self.workers = CpuWorkers(receiver, batch, workers, depth) if not gpu and workers > 1 else None
        if not gpu and self.workers is None:
            depth = 1
        self.slots = [RealtimeReceiver(receiver, batch, graph=graph) for _ in range(depth if gpu else 1)]
        self.receiver, self.batch, self.depth, self.copy = receiver, batch, depth, copy
        self.config, self.backend = receiver.config, receiver.backend
        self._next = 0                      # the slot the next batch goes to (round robin)
        self._in_flight: deque = deque()    # (slot, F, input or CPU result), oldest first
        self.streams = None
        if self.backend.name == "gpu":
            import cupy as cp

            self.streams = tuple(cp.cuda.Stream(non_blocking=True) for _ in ("upload", "compute", "download"))

    @property
    def in_flight(self) -> int:
        """Batches submitted and not yet collected."""
        return self.workers.in_flight if self.workers is not None else len(self._in_flight)

    def pinned(self, shape, dtype) -> np.ndarray:
        """An empty host array in page-locked memory (``RealtimeReceiver.pinned``)."""
        return self.slots[0].pinned(shape, dtype)

    def pinned_frames(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` copied into pinned memory, where the upload runs at full rate."""
        return self.slots[0].pinned_frames(frames)

    def submit(self, frames: np.ndarray) -> None:
        """Start one batch: complex64 [F, cp_len + MN] host samples, 1 <= F <= batch.

        A full complex64 batch is read by the device in place (at full rate when pinned),
        so it must stay unchanged until its results are collected; a short or converted
        batch is copied into the slot's pinned staging buffer first.
        """
        if self.workers is not None:
            self.workers.submit(frames)         # checks the shape as the slots do
            return
        if len(self._in_flight) == self.depth:
            raise RuntimeError(f"{self.depth} batches already in flight: collect one first")
        slot = self.slots[self._next]
        frames = np.asarray(frames)
        F = slot.check(frames)
        if self.streams is None:
            self._in_flight.append((slot, F, slot.process(frames)))
        else:
            full = slot.full_batch(frames)
            slot.enqueue(full, *self.streams)
            self._in_flight.append((slot, F, full))
        self._next = (self._next + 1) % self.depth

    def collect(self) -> RxResult:
        """The oldest batch's RxResult (``RealtimeReceiver.process``'s fields), waiting for
        it (class doc: ``copy``)."""
        if self.workers is not None:
            return self.workers.collect()
        if not self._in_flight:
            raise RuntimeError("no batch in flight: submit one first")
        slot, F, pending = self._in_flight.popleft()
        if self.streams is None:
            return pending
        return first_frames(slot.result(), F, self.copy)

    def retune(self, **offsets) -> None:
        """``Receiver.retune(**offsets)`` for the batches submitted from now on; those in
        flight finish with the old offsets (their results are collected as before)."""
        if self.streams is not None:
            for stream in self.streams:
                stream.synchronize()
        self.receiver.retune(**offsets)
        if self.workers is not None:
            self.workers.retune(**offsets)
        for slot in self.slots:
            slot.recapture()

    def close(self) -> None:
        """End the CPU worker processes, if any."""
        if self.workers is not None:
            self.workers.close()

    def describe(self) -> dict:
        """How the pipeline runs here (for benchmark reports)."""
        return {**self.slots[0].describe(), "depth": self.depth, "streams": 0 if self.streams is None else 3,
                "cpu_workers": 0 if self.workers is None else self.workers.n}


class SerialPipeline:
    """A ``process(frames) -> result`` callable behind the ``submit``/``collect`` interface of
    :class:`PipelinedReceiver`, one batch deep: ``submit`` computes, ``collect`` returns the
    result."""

    depth = 1

    def __init__(self, process: Callable):
        self.process, self.result = process, None

    def submit(self, frames) -> None:
        self.result = self.process(frames)

    def collect(self):
        return self.result


def stream_process(receiver: Receiver, batch: int) -> tuple[Callable, Callable]:
    """(process, allocate) for a streaming loop (``streaming.runner.PipelineRunner``) that
    reads the results on another thread: on the GPU a :class:`PipelinedReceiver` (CUDA
    graphs, batches in flight, results copied out of its pinned buffers) and its pinned
    allocator for the batch buffers; on a CPU of several cores, with batches of several
    frames, a :class:`PipelinedReceiver` splitting each batch between worker processes;
    elsewhere ``receiver.process`` and ``np.empty``."""
    if receiver.estimator is None:
        return receiver.process, np.empty
    if receiver.backend.name == "gpu":
        pipeline = PipelinedReceiver(receiver, batch, copy=True)
        return pipeline, pipeline.pinned
    if min(os.cpu_count() or 1, batch) < 2:
        return receiver.process, np.empty
    return PipelinedReceiver(receiver, batch, copy=True), np.empty
