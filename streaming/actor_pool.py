"""Scale-out on Ray: receiver actors, one a GPU or one a CPU core, on this machine or on a
Ray cluster, taking batches of acquired frames and giving their results back in the order
the batches were submitted.

::

    PipelineRunner (ingest, acquisition,   submit(batch) ──► ActorPool ──► actor 1: Receiver ─┐
    --policy, queue, sinks)                                     (object   ──► actor 2: Receiver ─┤
                                           ◄── collect() ────   store)  ◄──────────────────────────┘
                                               the oldest batch's result

* :class:`ActorPool` has the ``submit``/``collect``/``depth`` interface of
  ``zakotfs.pipelined.PipelinedReceiver``, so ``streaming.runner.PipelineRunner`` drives it
  as it drives an in-process receiver: its queue, ``--policy`` drops (counted), batching,
  latency and sinks are unchanged.
* ``submit(frames complex64 [F, L])`` hands a copy of the batch to the actor with the fewest
  batches in flight (Ray sends a small batch inside the call, a large one through its object
  store); at most ``in_flight`` batches are in flight per actor (``depth = actors x
  in_flight``: the runner never submits more, so the frames wait in its bounded queue, where
  the policy applies); while an actor restarts, the others hold its share.
* ``collect()`` waits for the oldest batch and returns its ``RxResult`` (host arrays). A batch
  whose actor died is submitted again to another actor (up to ``retries`` times; Ray restarts
  the dead one, up to ``max_restarts`` times); one that cannot be re-run is counted lost and
  ``collect()`` returns None for it. :meth:`stats` says which batches were re-run and which
  were lost, and each actor's frames, failures, restarts and latency percentiles.
* Several streams (several inputs of one ``rx``: cells, antennas) share the actors:
  :meth:`ActorPool.stream` gives each its own ``submit``/``collect`` order, depth and counts,
  each driven by its own runner thread; the pool itself is its first stream. The least
  loaded actor takes each batch, so no actor holds more than ``in_flight`` batches for each
  stream (while none of them is restarting).
* Ray is imported here only, and this module only where scale-out is asked for
  (``zakotfs rx --workers/--cluster``), so the other commands do not pay Ray's import.
  ``start_ray`` starts a local Ray instance or joins a cluster, failing at once with one line
  where its address does not answer; a pool whose actors Ray cannot place fails at once
  where the cluster lacks the resources, else after ``start_timeout_s``, never waiting
  silently.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import ray
from ray.exceptions import RayActorError

from zakotfs.config import FrameConfig
from zakotfs.cpu_workers import SERIAL
from zakotfs.realtime import RealtimeReceiver
from zakotfs.receiver import Receiver

__all__ = ["ActorPool", "ReceiverActor", "receiver_process", "start_ray", "IN_FLIGHT", "RETRIES", "MAX_RESTARTS"]

logger = logging.getLogger(__name__)

IN_FLIGHT = 2
"""Batches in flight per actor by default: one computing, the next one waiting in its queue."""
RETRIES = 1
"""How many times a batch whose actor died is submitted again, by default, before it is lost."""
MAX_RESTARTS = 1
"""How many times Ray restarts a dead actor by default."""
CONNECT_TIMEOUT_S = 5.0
"""How long a cluster address is given to answer before ``start_ray`` gives up."""
_RESTARTING = getattr(ray.exceptions, "ActorUnavailableError", ())
"""A call to an actor that Ray is restarting (Ray >= 2.30; before, such calls waited)."""
_ACTOR_GONE = (RayActorError,) + ((_RESTARTING,) if _RESTARTING else ())


def start_ray(address: str | None = None, *, num_cpus: int | None = None,
              object_store_bytes: int | None = None, include_dashboard: bool | None = None) -> bool:
    """Make Ray ready in this process: already initialised (kept as is), joined at ``address``
    (``HOST:PORT`` of a cluster's head, or ``auto``), or a local instance with ``num_cpus``
    logical CPUs, ``object_store_bytes`` of object store (None: Ray's default) and its
    dashboard where ``include_dashboard`` (None: where Ray's dashboard is installed). Returns
    True when this call started or joined it (the caller then shuts it down with
    ``ray.shutdown()``). An ``address`` is checked first, even with Ray running:
    ConnectionError, one line, when it does not answer within ``CONNECT_TIMEOUT_S``."""
    if address not in (None, "auto"):
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"--cluster {address!r}: expected HOST:PORT of a Ray head (or auto)")
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise ConnectionError(f"--cluster {address}: no Ray cluster answers there ({exc})") from None
    if ray.is_initialized():
        return False
    options = dict(logging_level=logging.ERROR, log_to_driver=True)
    if address is None:
        options.update(num_cpus=num_cpus, object_store_memory=object_store_bytes,
                       include_dashboard=include_dashboard)
    try:
        ray.init(address=address, **options)
    except ConnectionError as exc:
        raise ConnectionError(f"--cluster {address}: {str(exc).splitlines()[0]}") from None
    return True


def receiver_process(config: FrameConfig, options: dict, batch: int) -> Callable:
    """The ``process(frames complex64 [F, L]) -> RxResult`` of a receiver actor:
    ``Receiver(config, **options)`` on the backend it finds (the GPU that Ray gave the actor,
    else the CPU), warmed up, behind a ``RealtimeReceiver`` of ``batch`` frames (on the GPU
    its CUDA graph); the results are copies the actor may send."""
    realtime = RealtimeReceiver(Receiver(config, quiet=True, **options), batch)
    realtime.receiver.warm_up(batch)
    return lambda frames: realtime.process(frames, copy=True)


class ReceiverActor:
    """One receiver in a Ray worker process: ``make_process(config, options, batch)`` built
    once (again when Ray restarts the actor); its results without their LLRs unless ``llr``
    (a result with float32 LLRs is five bytes a bit to send, without them one). An error
    while building it is kept and told by :meth:`ready`, so that the pool reports it as one
    line."""

    def __init__(self, make_process: Callable, config: FrameConfig, options: dict, batch: int, llr: bool = True):
        self._process, self._error, self._llr = None, None, llr
        try:
            self._process = make_process(config, options, batch)
        except Exception as exc:        # noqa: BLE001 - told by ready()
            self._error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> dict:
        """{node: Ray node id, host, pid, error: None or why the receiver could not be built}."""
        return {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "pid": os.getpid(), "error": self._error}

    def process(self, frames: np.ndarray) -> tuple[object, float]:
        """(the result of ``frames``, the seconds the actor computed it)."""
        start = time.perf_counter()
        result = self._process(frames)
        if not self._llr:
            result.llr = None
        return result, time.perf_counter() - start


@dataclass
class ActorStats:
    """One actor's share: where it runs (its latest process, after ``restarts``) and what it
    did: ``failures``, batches in flight when it died; ``compute_s``, in the actor;
    ``round_trip_s``, submitted to collected (queueing in the actor and, the results being
    collected in order, waiting behind older batches included)."""

    name: str
    node: str
    host: str
    pid: int
    frames: int = 0
    batches: int = 0
    failures: int = 0
    restarts: int = 0
    compute_s: list = field(default_factory=list)
    round_trip_s: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "node": self.node, "host": self.host, "pid": self.pid, "frames": self.frames,
                "batches": self.batches, "failures": self.failures, "restarts": self.restarts,
                "compute_ms": _percentiles_ms(self.compute_s), "round_trip_ms": _percentiles_ms(self.round_trip_s)}


def _percentiles_ms(seconds: list) -> dict | None:
    if not seconds:
        return None
    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}


@dataclass
class _Batch:
    frames: np.ndarray          # complex64 [F, L], a copy of the submitted batch
    n: int                      # F
    actor: int                  # index of the actor it is on
    result: object              # ObjectRef of (result, compute seconds)
    submitted: float            # time.perf_counter() seconds
    tries: int = 0              # submissions again after an actor died


class ActorPool:
    """``actors`` receiver actors (:class:`ReceiverActor`) behind ``submit``/``collect`` (module doc).

    Parameters
    ----------
    config : FrameConfig
    options : dict
        The receiver's keyword options (``zakotfs.cli.options.receiver_options``); their
        ``backend`` decides the actors' resources: ``gpu`` one GPU each, ``cpu`` one CPU
        each, ``auto`` one GPU each where the cluster has GPUs, else one CPU each. A CPU
        actor runs every library on one thread (``zakotfs.cpu_workers.SERIAL``), as the
        in-process CPU workers do, so that it decodes their bits.
    actors : int or None
        How many; None: one a GPU of the cluster (one a CPU where it has none).
    batch : int
        Most frames per batch.
    in_flight : int
        Most batches in flight per actor.
    retries : int
        Submissions again of a batch whose actor died, before it is counted lost.
    max_restarts : int
        Restarts of a dead actor by Ray.
    resources : dict or None
        Custom Ray resources each actor needs, e.g. ``{"rx_node": 1}`` to place actors on the
        nodes that advertise ``rx_node``.
    start_timeout_s : float
        Longest wait for the actors to build their receivers (at the start, and for a
        restart where no other actor is up).
    llr : bool
        Whether the results carry their LLRs (False: ``llr`` None, where only the bits and
        the statistics are used).
    make_process : callable
        ``make_process(config, options, batch) -> process``, run in each actor
        (:func:`receiver_process`; tests pass stand-ins).
    """

    def __init__(self, config: FrameConfig, options: dict, *, actors: int | None = None, batch: int = 1,
                 in_flight: int = IN_FLIGHT, retries: int = RETRIES, max_restarts: int = MAX_RESTARTS,
                 resources: dict | None = None, start_timeout_s: float = 120.0,
                 llr: bool = True, make_process: Callable = receiver_process):
        for name, value, low in (("batch", batch, 1), ("in_flight", in_flight, 1), ("retries", retries, 0),
                                 ("max_restarts", max_restarts, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not ray.is_initialized():
            raise RuntimeError("Ray is not initialised: call start_ray() first")
        have = ray.cluster_resources()
        backend = options.get("backend", "auto")
        unit = "GPU" if backend == "gpu" or (backend == "auto" and have.get("GPU", 0) >= 1) else "CPU"
        actors = int(have.get(unit, 0)) if actors is None else actors
        if not isinstance(actors, int) or actors < 1:
            raise ValueError(f"--workers must be >= 1 receiver actors, got {actors!r} "
                             f"(the Ray cluster has {have.get(unit, 0):g} {unit})")
        need = {unit: float(actors), **{k: float(v) * actors for k, v in (resources or {}).items()}}
        short = [f"{k}: {v:g} needed, {have.get(k, 0):g} in the cluster" for k, v in need.items()
                 if have.get(k, 0) < v]
        if short:
            raise ValueError(f"--workers {actors}: Ray cannot place the receiver actors ({'; '.join(short)})")
        self.config, self.batch, self.in_flight, self.retries = config, batch, in_flight, retries
        self.start_timeout_s = float(start_timeout_s)
        self.depth = actors * in_flight
        self.unit, self.n_actors = unit, actors
        remote = ray.remote(ReceiverActor).options(
            num_cpus=1 if unit == "CPU" else 0, num_gpus=1 if unit == "GPU" else 0, resources=resources or {},
            max_restarts=max_restarts, max_task_retries=0, scheduling_strategy="SPREAD",
            runtime_env={"env_vars": SERIAL} if unit == "CPU" else None)
        self._actors = [remote.remote(make_process, config, options, batch, llr) for _ in range(actors)]
        self._load = [0] * actors                   # batches in flight per actor
        self._restarting: dict = {}                 # actor index: ObjectRef of its ready() after a failure
        self._dead: set[int] = set()                # actors Ray will not restart again
        self._lock = threading.Lock()               # the above, shared by the streams' threads
        self.streams: list[PoolStream] = []
        self.owns_ray = False                       # close() shuts Ray down (start() started it)
        self.actor_stats = self._started(start_timeout_s)
        self.stream("stream-0")

    @classmethod
    def start(cls, config: FrameConfig, options: dict, *, address: str | None = None, actors: int | None = None,
              **kwargs) -> "ActorPool":
        """The pool on Ray as :func:`start_ray` finds or makes it (a local instance: as many
        logical CPUs as the machine has, or as ``actors``, where more); :meth:`close` shuts
        down the Ray that this call started or joined."""
        started = start_ray(address, num_cpus=max(os.cpu_count() or 1, actors or 0))
        try:
            pool = cls(config, options, actors=actors, **kwargs)
        except BaseException:
            if started:
                ray.shutdown()
            raise
        pool.owns_ray = started
        return pool

    def _started(self, timeout_s: float) -> list[ActorStats]:
        """Wait for every actor to build its receiver; one-line errors otherwise (the actors
        are ended first)."""
        refs = [actor.ready.remote() for actor in self._actors]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        try:
            if len(done) < len(refs):
                raise TimeoutError(f"--workers {len(refs)}: only {len(done)} of {len(refs)} receiver actors started "
                                   f"within {timeout_s:g} s (Ray could not place or start the others)")
            try:
                info = ray.get(refs)
            except _ACTOR_GONE as exc:
                raise RuntimeError(f"--workers: a receiver actor died while starting: "
                                   f"{str(exc).strip().splitlines()[0]}") from None
            errors = [i["error"] for i in info if i["error"]]
            if errors:
                raise ValueError(f"--workers: the receiver actors could not build their receiver: {errors[0]}")
        except Exception:
            self.close()
            raise
        return [ActorStats(f"actor-{k}", i["node"], i["host"], i["pid"]) for k, i in enumerate(info)]

    @property
    def actors(self) -> list:
        """The actors' handles (``ray.kill`` one to see the pool carry on)."""
        return list(self._actors)

    def stream(self, name: str | None = None) -> "PoolStream":
        """Another stream on these actors, with its own order, depth and counts (module doc)."""
        return PoolStream(self, name or f"stream-{len(self.streams)}")

    def submit(self, frames: np.ndarray) -> None:
        """:meth:`PoolStream.submit` of the pool's first stream."""
        self.streams[0].submit(frames)

    def collect(self):
        """:meth:`PoolStream.collect` of the pool's first stream."""
        return self.streams[0].collect()

    def _dispatch(self, frames: np.ndarray, avoid: int | None = None) -> tuple[int, object]:
        """(actor, ObjectRef of its (result, compute seconds)) of ``frames`` on
        :meth:`_least_loaded`'s actor."""
        with self._lock:
            actor = self._least_loaded(avoid)
            self._load[actor] += 1
        return actor, self._actors[actor].process.remote(frames)

    def _least_loaded(self, avoid: int | None = None) -> int:
        """The actor for the next batch: of those up (not restarting after a failure, not
        dead), other than ``avoid`` where there is another, one with room (fewer than
        ``in_flight`` batches) and the least loaded first. While an actor restarts the others
        hold its share too; where none is up, this waits for a restart (up to
        ``start_timeout_s``). RuntimeError where none comes back."""
        self._check_restarts()
        up = [k for k in range(len(self._actors)) if k not in self._dead and k not in self._restarting]
        deadline = time.monotonic() + self.start_timeout_s
        while not up and self._restarting and time.monotonic() < deadline:
            ray.wait(list(self._restarting.values()), num_returns=1, timeout=0.1)
            self._check_restarts()
            up = [k for k in range(len(self._actors)) if k not in self._dead and k not in self._restarting]
        if not up:
            raise RuntimeError(f"no receiver actor is up: {len(self._dead)} of {len(self._actors)} died for good, "
                               f"{len(self._restarting)} did not restart within {self.start_timeout_s:g} s")
        return min([k for k in up if k != avoid] or up, key=lambda k: (self._load[k] >= self.in_flight, self._load[k]))

    def _check_restarts(self) -> None:
        """Actors that came back after a failure are up again (their new process noted);
        those still restarting are asked again; those Ray will not restart are dead."""
        for k, ref in list(self._restarting.items()):
            done, _ = ray.wait([ref], timeout=0)
            if not done:
                continue
            try:
                info = ray.get(ref)
            except _RESTARTING:
                self._restarting[k] = self._actors[k].ready.remote()
                continue
            except RayActorError:
                info = {"error": "Ray did not restart it"}
            del self._restarting[k]
            if info["error"]:
                logger.warning("receiver actor %d is gone for good: %s", k, info["error"])
                self._dead.add(k)
                continue
            stats = self.actor_stats[k]
            if (info["node"], info["pid"]) != (stats.node, stats.pid):     # not a late failure of a call
                stats.restarts += 1                                         # to its previous process
                stats.node, stats.host, stats.pid = info["node"], info["host"], info["pid"]

    def _done(self, batch: "_Batch", compute_s: float) -> None:
        with self._lock:
            self._load[batch.actor] -= 1
            stats = self.actor_stats[batch.actor]
            stats.frames += batch.n
            stats.batches += 1
            stats.compute_s.append(compute_s)
            stats.round_trip_s.append(time.perf_counter() - batch.submitted)

    def _failed(self, batch: "_Batch", exc: Exception) -> bool:
        """``batch``'s actor died: note it (Ray restarts it), and True where the batch may
        go to another actor (it was tried fewer than ``retries + 1`` times and an actor is
        left), False where it is lost."""
        with self._lock:
            self._load[batch.actor] -= 1
            self.actor_stats[batch.actor].failures += 1
            if batch.actor not in self._restarting and batch.actor not in self._dead:
                self._restarting[batch.actor] = self._actors[batch.actor].ready.remote()
            self._check_restarts()
            left = len(self._dead) < len(self._actors)
        logger.warning("receiver actor %d died with a batch of %d frames in flight: %s", batch.actor, batch.n,
                       str(exc).strip().splitlines()[0])
        return batch.tries < self.retries and left

    def stats(self) -> dict:
        """The report's ``scaleout``: the actors (each one's node, frames, batches, failures,
        restarts and latency percentiles), and per stream the batches and frames submitted
        again after an actor died (decoded) and those lost; one stream's counts at the top
        level, where there is one."""
        streams = [s.stats() for s in self.streams]
        out = {"engine": "ray", "actors": self.n_actors, "unit": self.unit, "batch": self.batch,
               "in_flight_per_actor": self.in_flight, "retries": self.retries,
               "nodes": len({s.node for s in self.actor_stats}),
               "per_actor": [s.to_dict() for s in self.actor_stats],
               "ray_address": ray.get_runtime_context().gcs_address}
        if len(streams) == 1:
            out.update({k: v for k, v in streams[0].items() if k != "name"})
        else:
            out["streams"] = streams
        return out

    def close(self) -> None:
        """End the actors (the batches still in flight are abandoned), and Ray where
        :meth:`start` started it."""
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []
        for stream in self.streams:
            stream.pending.clear()
        if self.owns_ray:
            ray.shutdown()
            self.owns_ray = False


class PoolStream:
    """One stream's batches on an :class:`ActorPool`'s actors: ``submit``/``collect`` in
    its own order, at most ``depth`` (the pool's) in flight, its own counts of batches
    submitted again and lost. Each stream is used from one thread; several streams may run
    on their own threads at once (one ``rx`` serving several inputs)."""

    def __init__(self, pool: ActorPool, name: str):
        self.pool, self.name, self.depth = pool, name, pool.depth
        self.pending: deque[_Batch] = deque()       # oldest first
        self.batches_resubmitted = self.frames_resubmitted = 0
        self.batches_lost = self.frames_lost = 0
        pool.streams.append(self)

    def submit(self, frames: np.ndarray) -> None:
        """Start one batch: complex64 [F, L], 1 <= F <= batch (copied: the caller may reuse
        ``frames``). RuntimeError with ``depth`` batches in flight (collect one first)."""
        if len(self.pending) >= self.depth:
            raise RuntimeError(f"{self.depth} batches already in flight: collect one first")
        frames = np.array(frames, dtype=np.complex64)          # kept to submit again
        if frames.ndim != 2 or not 1 <= len(frames) <= self.pool.batch:
            raise ValueError(f"frames: expected complex64 [F, L] with 1 <= F <= {self.pool.batch}, "
                             f"got {frames.shape}")
        actor, result = self.pool._dispatch(frames)
        self.pending.append(_Batch(frames, len(frames), actor, result, time.perf_counter()))

    def collect(self):
        """The oldest batch's result (``RxResult``), waiting for it; None when its frames
        were lost (its actor died ``retries + 1`` times). RuntimeError with none in flight."""
        if not self.pending:
            raise RuntimeError("no batch in flight: submit one first")
        batch = self.pending[0]
        while True:
            try:
                result, compute_s = ray.get(batch.result)
            except _ACTOR_GONE as exc:
                if self.pool._failed(batch, exc):
                    batch.actor, batch.result = self.pool._dispatch(batch.frames, avoid=batch.actor)
                    batch.submitted, batch.tries = time.perf_counter(), batch.tries + 1
                    self.batches_resubmitted += 1
                    self.frames_resubmitted += batch.n
                    continue
                self.pending.popleft()
                self.batches_lost += 1
                self.frames_lost += batch.n
                logger.warning("%s: %d frames lost (submitted %d times)", self.name, batch.n, batch.tries + 1)
                return None
            self.pending.popleft()
            self.pool._done(batch, compute_s)
            return result

    def stats(self) -> dict:
        return {"name": self.name, "batches_resubmitted": self.batches_resubmitted,
                "frames_resubmitted": self.frames_resubmitted, "batches_lost": self.batches_lost,
                "frames_lost": self.frames_lost}
