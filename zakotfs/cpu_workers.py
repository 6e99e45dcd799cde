"""Receiver processes on the CPU: one per core, each batch split between them.

A CPU receiver runs on one core: its compiled kernels are serial and its FFTs run on one
thread. Threads would share one interpreter lock and spin against each other, so each
core gets a process of its own, holding its own ``Receiver`` built from the same
configuration and options:

    submit(batch)  -> its frames split in up to n consecutive parts, one a worker, the
                      workers taken in turn (a one-frame batch goes to the next worker)
    collect()      -> the parts' RxResults joined in frame order (waits for them)

A batch of F frames then takes as long as F / n frames on one core, so both the
throughput and the latency scale with the cores. Where there are at least n cores, worker
i keeps to the i-th (``worker_cpus``). Up to ``depth`` batches are in flight
(each worker computes its parts in order). This is ``PipelinedReceiver``'s interface
(``zakotfs.pipelined``), which uses it on the CPU.

The samples and the bits and LLRs cross in shared memory (:class:`SharedSlots`: a file
under /dev/shm that both processes map, ``depth`` slots a worker), so a batch's hand-over
is one copy in and one copy out; the socket carries the slot numbers and each part's
per-frame statistics. Each worker is ``python -m zakotfs.cpu_workers ADDRESS``, connected
back to this process over a local socket (``multiprocessing.connection``, an
authentication key in its environment): it imports nothing of the caller's main script, so a script needs no
``if __name__ == "__main__"`` guard. Workers run in a session of their own, so a Ctrl-C or
a signal to the terminal's process group reaches the caller alone, which drains and
closes them; a worker whose caller is gone (its connection closed) exits.
"""
from __future__ import annotations

import atexit
import os
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import fields
from multiprocessing.connection import Client, Listener

import numpy as np

from .config import FrameConfig
from .receiver import Receiver, RxResult

__all__ = ["CpuWorkers", "SharedSlots", "WorkerError", "join_results", "worker_cpus"]

SERIAL = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
"""A worker's environment: one thread for every library that would start a pool of its own
(BLAS, OpenMP): one worker a core, so that no two pools spin against each other."""

START_TIMEOUT_S = 120.0
"""Seconds a worker may take to import, build its receiver and warm it up."""


class WorkerError(RuntimeError):
    """A worker process failed: its exception's text, or that it died."""


class SharedSlots:
    """One worker's ``depth`` slots in shared memory: samples complex64 [depth, part, S] in,
    bits uint8 [depth, part, B] and LLRs (float32, or int8 codes) [depth, part, B] out, with
    S = cp_len + MN samples and B bits a frame, ``part`` frames a slot. ``create`` makes the
    file (under /dev/shm where there is one) and maps it; ``attach(path, ...)`` maps the same
    file in the worker; ``unlink()`` removes its name once both have mapped it (the mappings
    stay valid), so that no file outlives the processes however they end."""

    def __init__(self, path: str, depth: int, part: int, samples: int, bits: int, llr_dtype):
        self.path, self.layout = path, (depth, part, samples, bits, np.dtype(llr_dtype).str)
        offsets = np.cumsum([0, depth * part * samples * 8, depth * part * bits])
        memory = np.asarray(np.memmap(path, np.uint8, "r+"))     # a plain array over the mapping
        self.frames = memory[offsets[0]:offsets[1]].view(np.complex64).reshape(depth, part, samples)
        self.bits = memory[offsets[1]:offsets[2]].reshape(depth, part, bits)
        self.llr = memory[offsets[2]:].view(llr_dtype).reshape(depth, part, bits)

    @classmethod
    def create(cls, depth: int, part: int, samples: int, bits: int, llr_dtype) -> "SharedSlots":
        size = depth * part * (samples * 8 + bits * (1 + np.dtype(llr_dtype).itemsize))
        folder = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        fd, path = tempfile.mkstemp(prefix="zakotfs-worker-", dir=folder)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return cls(path, depth, part, samples, bits, llr_dtype)

    @classmethod
    def attach(cls, path: str, layout: tuple) -> "SharedSlots":
        return cls(path, *layout)

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _serve(conn) -> None:
    """A worker's loop (after it sent its pid): first (config JSON, options, batch, cpu,
    (slots path, layout)); then ("process", (slot, F)) -> ("result", RxResult without its
    bits and LLRs, which are in the slot), ("retune", offsets), and ("close", None) ends it.
    Failures go back as ("error", text). A thread reads the requests as they come, so that
    the caller's next batch never waits on this worker's sending of a result. ``cpu``: the
    core this worker keeps to (None: any)."""
    from dsp_kernels.arrays import set_fft_workers

    config_json, options, batch, cpu, (path, layout) = conn.recv()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        slots = SharedSlots.attach(path, layout)
        set_fft_workers(1)
        receiver = Receiver(FrameConfig.from_json(config_json), backend="cpu", quiet=True, **options)
        receiver.warm_up(batch)
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    inbox: queue.Queue = queue.Queue()

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):     # the caller is gone
                message = ("close", None)
            inbox.put(message)
            if message[0] == "close":
                return
    threading.Thread(target=read, name="zakotfs-worker-inbox", daemon=True).start()
    while True:
        kind, payload = inbox.get()
        if kind == "close":
            return
        try:
            if kind == "retune":
                receiver.retune(**payload)
                continue
            slot, count = payload
            result = receiver.process(slots.frames[slot, :count])
            slots.bits[slot, :count], slots.llr[slot, :count] = result.bits, result.llr
            result.bits = result.llr = None
            conn.send(("result", result))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def worker_cpus(n: int) -> list:
    """The core each of ``n`` workers keeps to: the i-th of this process's allowed cores
    where there are at least ``n`` (so that no two workers share a core, and none migrates
    in the middle of a frame), else None (the scheduler places them)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return allowed[:n] if len(allowed) >= n else [None] * n


def join_results(parts: list[RxResult]) -> RxResult:
    """RxResults of consecutive frames -> one RxResult: per-frame arrays concatenated, each
    stage's seconds the longest part's (the parts ran side by side)."""
    joined = {}
    for f in fields(RxResult):
        values = [getattr(part, f.name) for part in parts]
        if f.name == "stage_s":
            joined[f.name] = {k: max(v.get(k, 0.0) for v in values) for k in values[0]}
        elif f.name == "llr_step":
            joined[f.name] = values[0]
        else:
            joined[f.name] = None if values[0] is None else np.concatenate(values)
    return RxResult(**joined)


class CpuWorkers:
    """``n`` receiver processes for ``receiver``'s configuration and options (module doc).

    ``submit(frames)`` hands complex64 [F, cp_len + MN] host samples to the workers and
    returns at once; ``collect()`` returns the oldest batch's RxResult. Both raise
    RuntimeError when misused (a submit with ``depth`` batches in flight, a collect with
    none); a worker's failure raises WorkerError, after which the pool is to be closed.
    ``close()`` (or the context manager) ends the workers.
    """

    def __init__(self, receiver: Receiver, batch: int, n: int, depth: int = 1):
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"workers must be a positive integer, got {n!r}")
        if not (isinstance(depth, int) and depth >= 1):
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.config, self.batch, self.depth, self.n = receiver.config, batch, depth, n
        self._conns, self._procs, self._slots = [], [], []
        self._next = 0                      # the worker the next batch's first part goes to
        self._turn = [0] * n                # each worker's parts so far (its next slot: turn % depth)
        self._in_flight: deque = deque()    # each batch's parts (worker, slot, F), in frame order, oldest first
        key = secrets.token_bytes(32)
        env = {**os.environ, "ZAKOTFS_WORKER_KEY": key.hex(), **SERIAL}
        c, part = receiver.config, -(-batch // n)
        try:
            llr_dtype = np.int8 if receiver.llr_step is not None else np.float32
            self._slots = [SharedSlots.create(depth, part, c.cp_len + c.MN, c.bits_per_frame, llr_dtype)
                           for _ in range(n)]
            with Listener(family="AF_UNIX", authkey=key) as listener:
                for _ in range(n):              # all start at once; each says its pid first
                    self._procs.append(subprocess.Popen([sys.executable, "-m", __name__, listener.address], env=env,
                                                        start_new_session=True))
                by_pid = {}
                for _ in range(n):
                    conn = listener.accept()
                    by_pid[conn.recv()] = conn
                self._conns = [by_pid[proc.pid] for proc in self._procs]
            for conn, cpu, slots in zip(self._conns, worker_cpus(n), self._slots):
                conn.send((c.to_json(), receiver.options, part, cpu, (slots.path, slots.layout)))
            for i in range(n):
                self._receive(i, "ready", START_TIMEOUT_S)
            for slots in self._slots:       # mapped on both sides: the name is no longer needed
                slots.unlink()
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    def _receive(self, i: int, expected: str, timeout_s: float | None = None):
        conn, proc = self._conns[i], self._procs[i]
        try:
            while not conn.poll(1.0 if timeout_s is None else min(1.0, timeout_s)):
                if proc.poll() is not None:
                    raise WorkerError(f"CPU worker {i} died (exit status {proc.returncode})")
                if timeout_s is not None:
                    timeout_s -= 1.0
                    if timeout_s <= 0:
                        raise WorkerError(f"CPU worker {i} did not answer in {START_TIMEOUT_S:g} s")
            kind, payload = conn.recv()
        except (EOFError, OSError):
            raise WorkerError(f"CPU worker {i} closed its connection (exit status {proc.poll()})") from None
        if kind == "error":
            raise WorkerError(f"CPU worker {i}: {payload}")
        if kind != expected:
            raise WorkerError(f"CPU worker {i} answered {kind!r}, expected {expected!r}")
        return payload

    @property
    def in_flight(self) -> int:
        """Batches submitted and not yet collected."""
        return len(self._in_flight)

    def submit(self, frames: np.ndarray) -> None:
        """Split one batch between the workers (module doc)."""
        if len(self._in_flight) == self.depth:
            raise RuntimeError(f"{self.depth} batches already in flight: collect one first")
        frames = np.asarray(frames)
        samples = self._slots[0].frames.shape[-1]
        if frames.ndim != 2 or frames.shape[1] != samples or not 1 <= len(frames) <= self.batch:
            raise ValueError(f"frames: expected shape [F, {samples}] (cp_len + MN) with 1 <= F <= {self.batch}, "
                             f"got {frames.shape}")
        parts = [part for part in np.array_split(frames, self.n) if len(part)]
        placed = []
        for k, part in enumerate(parts):
            i = (self._next + k) % self.n
            slot = self._turn[i] % self.depth
            self._slots[i].frames[slot, :len(part)] = part
            try:
                self._conns[i].send(("process", (slot, len(part))))
            except OSError:
                raise WorkerError(f"CPU worker {i} is gone (exit status {self._procs[i].poll()})") from None
            self._turn[i] += 1
            placed.append((i, slot, len(part)))
        self._in_flight.append(placed)
        self._next = (self._next + len(parts)) % self.n

    def collect(self) -> RxResult:
        """The oldest batch's RxResult, waiting for its parts."""
        if not self._in_flight:
            raise RuntimeError("no batch in flight: submit one first")
        parts = []
        for i, slot, count in self._in_flight.popleft():
            part = self._receive(i, "result")
            part.bits, part.llr = self._slots[i].bits[slot, :count], self._slots[i].llr[slot, :count]
            parts.append(part)
        return join_results(parts)        # copies the slots' bits and LLRs: the slots are free again

    def retune(self, **offsets) -> None:
        """``Receiver.retune(**offsets)`` in every worker, for the batches submitted from now on."""
        for conn in self._conns:
            conn.send(("retune", offsets))

    def close(self) -> None:
        """End the workers (batches in flight are abandoned)."""
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except OSError:
                pass
            conn.close()
        for proc in self._procs:
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for slots in self._slots:
            slots.unlink()
        self._conns, self._procs, self._slots = [], [], []
        self._in_flight.clear()

    def __enter__(self) -> "CpuWorkers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    try:
        connection = Client(sys.argv[1], authkey=bytes.fromhex(os.environ["ZAKOTFS_WORKER_KEY"]))
        connection.send(os.getpid())
        _serve(connection)
    except (EOFError, OSError):     # the caller is gone (stopped while this worker started): nothing to serve
        sys.exit(1)
