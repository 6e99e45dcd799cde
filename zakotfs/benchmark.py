"""Latency-deadline benchmark: does a grid fit in real time on this machine?

For one configuration and backend it prepares distinct received frames (Veh-A through the
sample-level emulator), then times the receiver frame by frame (samples in host memory ->
bits and LLRs in host memory): end-to-end and per-stage latency percentiles, misses of the
deadline (one frame's air time, (preamble + CP + MN) / B), and the batched throughput.

Baselines, run in the same process on the same frames:

* ``scipy-sparse-cg``: the paper's explicit sparse DD channel matrix (CSR, from the
  ``paper`` estimator's thresholded h_eff) solved by ``scipy.sparse.linalg.cg`` on the
  LMMSE normal equations with its own convergence test; the straightforward CPU reference.
* on a GPU, the same with ``cupyx.scipy.sparse`` (cuSPARSE), the paper-style GPU baseline.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import FrameConfig
from .estimation import PaperEstimator
from .frame import FrameBuilder, random_bits
from .pipelined import SerialPipeline

__all__ = ["BenchFrames", "make_frames", "time_receiver", "time_sparse_baseline", "percentiles",
           "dd_sparse_matrix", "run_metadata", "write_json", "timed_path", "work_per_frame", "real_time_verdict"]


def percentiles(samples_s) -> dict:
    """Latency percentiles in microseconds: p50, p99, p999, max, mean."""
    us = np.asarray(samples_s, dtype=float) * 1e6
    if us.size == 0:
        return {"p50": None, "p99": None, "p999": None, "max": None, "mean": None}
    p50, p99, p999 = np.percentile(us, [50, 99, 99.9])
    return {"p50": float(p50), "p99": float(p99), "p999": float(p999), "max": float(us.max()),
            "mean": float(us.mean())}


@dataclass
class BenchFrames:
    frames: np.ndarray        # complex64 [K, cp_len + MN]
    bits: np.ndarray          # uint8 [K, bits_per_frame]
    noise_var: float


def make_frames(config: FrameConfig, n_distinct: int, *, snr_db: float = 20.0,
                nu_max_hz: float = 815.0, seed: int = 0) -> BenchFrames:
    """``n_distinct`` received frames: Veh-A (single Doppler per path) at ``nu_max_hz``."""
    from channel_models.emulator import ChannelEmulator
    from channel_models.paths import draw_paths
    from channel_models.profiles import load_profile

    rng = np.random.default_rng(seed)
    bits = random_bits(config, n_distinct, rng)
    tx = FrameBuilder(config).stream(bits)
    em = ChannelEmulator(draw_paths(load_profile("veh-a"), nu_max_hz, rng), config.bandwidth,
                         snr_db=snr_db, seed=seed)
    rx = np.concatenate([em.process(tx), em.flush()])[:tx.size].reshape(n_distinct, -1)
    return BenchFrames(np.ascontiguousarray(rx[:, config.preamble_len:]), bits, 10 ** (-snr_db / 10))


def time_receiver(receiver, data: BenchFrames, n_frames: int, *, warmup: int = 3,
                  batch: int = 1, progress=None, samples: bool = False) -> dict:
    """Process ``n_frames`` frames (cycling through the distinct ones) in batches of ``batch``.

    ``receiver`` is a ``Receiver`` or a ``RealtimeReceiver`` (``process(frames) -> RxResult``,
    one batch at a time), or a ``PipelinedReceiver`` (``submit`` / ``collect``, kept
    ``depth`` batches deep: the latency of a batch then includes its wait behind the ones
    ahead of it, as in a stream at full load). Input batches are staged in pinned memory
    where the receiver offers it, as the ingest would deliver them. Returns latency
    percentiles per batch (submit to results, end to end and per stage, microseconds), the
    deadline misses, throughput and the BER of the timed frames; with ``samples`` also each
    batch's latency (``latency_samples_us``, for CDFs). ``progress(i, n, latency_s)`` is
    called after each of the n timed batches.
    """
    run = receiver if hasattr(receiver, "submit") else SerialPipeline(receiver.process)
    stage_in = getattr(receiver, "pinned_frames", np.ascontiguousarray)
    config = receiver.config
    deadline_s = config.wire_time * batch
    K = data.frames.shape[0]
    index = [[(i * batch + j) % K for j in range(batch)] for i in range(K)]
    inputs = [stage_in(data.frames[idx]) for idx in index]
    for i in range(warmup):
        run.submit(inputs[i % K])
        run.collect()
    total, stages, errors, bits = [], {}, 0, 0
    n_batches = max(1, n_frames // batch)
    submitted: deque = deque()                # (batch number, submit time), oldest first

    def collect_one() -> None:
        nonlocal errors, bits
        i, t0 = submitted.popleft()
        result = run.collect()
        total.append(time.perf_counter() - t0)
        for name, seconds in result.stage_s.items():
            stages.setdefault(name, []).append(seconds)
        errors += int(np.count_nonzero(result.bits != data.bits[index[i % K]]))
        bits += result.bits.size
        if progress:
            progress(len(total), n_batches, total[-1])

    started = time.perf_counter()
    for i in range(n_batches):
        if len(submitted) == run.depth:
            collect_one()
        submitted.append((i, time.perf_counter()))
        run.submit(inputs[i % K])
    while submitted:
        collect_one()
    wall = time.perf_counter() - started
    result = {
        "frames": n_batches * batch, "batch": batch, "depth": run.depth,
        "latency_us": percentiles(total),
        "stages": {name: percentiles(v) for name, v in stages.items()},
        "deadline_us": deadline_s * 1e6,
        "deadline_misses": int(np.count_nonzero(np.asarray(total) > deadline_s)),
        "throughput_mbps": bits / wall / 1e6,
        "bits": bits, "bit_errors": errors, "ber": errors / bits if bits else None,
    }
    if samples:
        result["latency_samples_us"] = [t * 1e6 for t in total]
    return result


def timed_path(receiver, batch: int, workers: int | None = None):
    """The real-time path a benchmark times: on the GPU the CUDA-graph receiver
    (``RealtimeReceiver``, one batch at a time); on the CPU each batch split between
    ``workers`` processes (default: one a core; ``PipelinedReceiver`` with one batch in
    flight, so a batch's latency is its own compute). ``close()`` it when done, if it has
    one."""
    from .pipelined import PipelinedReceiver
    from .realtime import RealtimeReceiver

    workers = min(os.cpu_count() or 1, batch) if workers is None else min(workers, batch)
    if receiver.backend.name == "gpu" or workers < 2:
        return RealtimeReceiver(receiver, batch)
    return PipelinedReceiver(receiver, batch, depth=1, workers=workers)


def work_per_frame(receiver) -> dict:
    """What one frame costs the equaliser, counted rather than timed: CG iterations, products
    with the normal matrix (one an iteration), and the FFT points they and the
    preconditioner transform. A product: 2 + 2P transforms of L points with the frame-long
    operator, (2 + 2 x 2) blocks of B points a window of Lw with the windowed one; H^H r and
    H s of the pilot: 1 + P each; the preconditioner: 2 transforms of its S windows of
    2h = 2L / S points an application, K + 1 of them (the data prior's masks add no
    transform). Where the compiled CPU equaliser runs, a frame's products are one pass of
    compiled code (no Python between its transforms)."""
    c, K = receiver.config, receiver.cg_iterations
    L, S = c.MN, receiver.segments
    P = getattr(receiver.estimator, "P", None) or len(getattr(receiver.estimator, "dopplers", [])) or 1
    products = K
    if receiver.operator_window:
        Lw, B = receiver.operator_window, receiver.operator_window + receiver.operator_overlap
        per_product = (2 + 2 * 2) * B * (L // Lw)
    else:
        per_product = (2 + 2 * P) * L
    precondition = (K + 1) * 2 * 2 * L
    return {"prior": receiver.prior, "cg_iterations": K, "normal_products": products, "basis_functions": P,
            "preconditioner_windows": S,
            "fft_points": int(products * per_product + 2 * (1 + P) * L + precondition),
            "fft_points_equaliser_products": int(products * per_product),
            "fft_points_preconditioner": int(precondition)}


def real_time_verdict(result: dict, config: FrameConfig) -> dict:
    """Whether a ``time_receiver`` result is real time: p99.9 latency within the batch's
    deadline (batch x wire time) and the throughput at least the link's decoded rate."""
    link = config.throughput_wire_bps / 1e6
    p999 = result["latency_us"]["p999"]
    ok = p999 is not None and p999 <= result["deadline_us"] and result["throughput_mbps"] >= link
    return {"real_time": bool(ok), "link_mbps": link, "throughput_over_link": result["throughput_mbps"] / link,
            "p999_over_deadline": None if p999 is None else p999 / result["deadline_us"]}


def dd_sparse_matrix(config: FrameConfig, h, delays, dopplers, sparse, xp=np):
    """The paper's explicit DD channel matrix (CSR) for one frame's thresholded h_eff:

        y[k, l] = sum_{d,m} h[d,m] e^{j2pi m (k-d)/MN} x_qp[k-d, l-m],
        x_qp[k + nM, l] = e^{j2pi n l/N} x[k, l]   (n = -1 where k - d < 0, +1 past M - 1),

    rows and columns indexed k N + l; h: complex [D, P] on the host. ``sparse`` is
    ``scipy.sparse`` (xp = numpy) or ``cupyx.scipy.sparse`` (xp = cupy: built on the device).
    Every row holds one entry per nonzero tap, so the CSR arrays are written directly
    ([M, N, T] broadcasts, complex64 values), then the column indices sorted.
    """
    M, N, MN = config.M, config.N, config.MN
    d_idx, m_idx = np.nonzero(h)
    T = d_idx.size
    d = xp.asarray(np.asarray(delays)[d_idx])
    m = xp.asarray(np.asarray(dopplers)[m_idx])
    taps = xp.asarray(np.asarray(h)[d_idx, m_idx], dtype=np.complex64)
    k = xp.arange(M)[:, None, None]
    l = xp.arange(N)[None, :, None]
    src_k = k - d                                              # [M, 1, T]
    wrap = xp.floor_divide(src_k, M)                           # -1 where k - d < 0
    src_l = (l - m) % N                                        # [1, N, T]
    turns = (m * src_k / MN).astype(np.float32) + (wrap * src_l / N).astype(np.float32)
    values = (taps * xp.exp((2j * np.pi) * turns.astype(np.float32))).astype(np.complex64)
    index = np.int32 if MN * max(T, 1) < 2 ** 31 else np.int64
    columns = ((src_k % M) * N + src_l).astype(index)
    matrix = sparse.csr_matrix((values.reshape(-1), columns.reshape(-1), xp.arange(0, MN * T + 1, T, dtype=index)),
                               shape=(MN, MN))
    matrix.sort_indices()
    return matrix


def time_sparse_baseline(config: FrameConfig, data: BenchFrames, n_frames: int, *, gpu: bool = False,
                         rtol: float = 1e-3, maxiter: int = 200) -> dict:
    """The paper-style baseline on the same frames: DD read-off -> CSR matrix H (and H^H) ->
    CG with a convergence check on (H^H H + N0 I) x = H^H y, two sparse matrix-vector
    products per iteration (H^H H itself is far denser than H). Timed from host samples to
    host symbols."""
    if gpu:
        import cupy as xp
        import cupyx.scipy.sparse as sparse
        import cupyx.scipy.sparse.linalg as splinalg
    else:
        import scipy.sparse as sparse
        import scipy.sparse.linalg as splinalg
        xp = np
    from .zak_transform import zak

    import inspect

    tol_name = "rtol" if "rtol" in inspect.signature(splinalg.cg).parameters else "tol"   # CuPy < 14: tol
    estimator = PaperEstimator(config)
    pilot = np.zeros((config.M, config.N), np.complex64)
    pilot[config.pilot_k, config.pilot_l] = config.pilot_amplitude
    times, iterations = [], []
    for i in range(n_frames):
        frame = data.frames[i % data.frames.shape[0]]
        t0 = time.perf_counter()
        r = frame[None, config.cp_len:].astype(np.complex64)
        y = zak(r, config.M, config.N)[0]
        est_h = np.asarray(estimator.read_off(r)[0][0])
        H = dd_sparse_matrix(config, est_h, estimator.delays, estimator.dopplers, sparse, xp)
        H_adj = H.conj().T.tocsr()
        y_dev = xp.asarray(y.ravel()) - H @ xp.asarray(pilot.ravel())
        n0 = np.float32(data.noise_var)
        gram = splinalg.LinearOperator((config.MN, config.MN), matvec=lambda v: H_adj @ (H @ v) + n0 * v,
                                       dtype=np.complex64)
        count = [0]
        x, _ = splinalg.cg(gram, H_adj @ y_dev, maxiter=maxiter, **{tol_name: rtol},
                           callback=lambda _: count.__setitem__(0, count[0] + 1))
        if gpu:
            xp.asarray(x).get()
        times.append(time.perf_counter() - t0)
        iterations.append(count[0])
    return {"latency_us": percentiles(times), "frames": n_frames,
            "cg_iterations": {"mean": float(np.mean(iterations)), "max": int(np.max(iterations))}}


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def command_line(argv=None) -> str:
    """The command as typed, shell-quoted: ``argv`` itself where it is a string; this
    process's own command line (``python -m bench.x ...``, ``sys.orig_argv`` with the
    interpreter named ``python``) for None or ``sys.argv``; else ``argv`` joined."""
    if isinstance(argv, str):
        return argv
    if argv is None or argv is sys.argv:
        return shlex.join(["python", *sys.orig_argv[1:]])
    return shlex.join(argv)


def run_metadata(argv=None, backend=None) -> dict:
    """The command (``command_line(argv)``), date (UTC), git commit (+dirty flag), host, CPU
    count, library versions, device."""
    import numba
    import scipy

    from dsp_kernels.arrays import fft_library

    meta = {
        "command": command_line(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        # ZAKOTFS_COMMIT: where the checkout's git metadata is not the code's (a copied tree)
        "commit": os.environ.get("ZAKOTFS_COMMIT") or _git("rev-parse", "HEAD"),
        "dirty": False if os.environ.get("ZAKOTFS_COMMIT") else bool(_git("status", "--porcelain", "--untracked-files=no")),
        "host": platform.node(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__},
        "cpu_fft": fft_library(),
    }
    if fft_library() == "fftw":
        import pyfftw

        meta["versions"]["pyfftw"] = pyfftw.__version__
    if backend is not None:
        meta["backend"] = backend.name
        meta["device"] = backend.device
        if backend.name == "gpu":
            import cupy

            meta["versions"]["cupy"] = cupy.__version__
            meta["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
            meta["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
    return meta


def write_json(path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
