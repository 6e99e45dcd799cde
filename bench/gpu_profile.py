"""Where the device time of one frame goes: each piece of the receiver chain captured in
a CUDA graph and its replays timed with CUDA events (mean of repeats), so launch overhead
is out of the numbers as it is in the real-time path; a piece that cannot be captured is
timed op by op (``cupyx.profiler.benchmark``, median), and says so.

    python -m bench.gpu_profile --preset paper --json out/profile.json

On a machine without a GPU it runs the same pieces on the CPU (wall time), so it can be
tried anywhere; the numbers that matter come from the GPU.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from dsp_kernels import fft, get_backend
from zakotfs.benchmark import make_frames, run_metadata, write_json
from zakotfs.config import preset
from zakotfs.equalizer import cg_lmmse, lmmse_bias, local_fourier_preconditioner, local_power
from zakotfs.receiver import Receiver
from zakotfs.zak_transform import zak


def _graph_us(fn, repeats: int) -> float:
    """Mean GPU time (us) of one replay of ``fn`` captured in a CUDA graph."""
    import cupy as cp

    pool, stream = cp.cuda.MemoryPool(), cp.cuda.Stream(non_blocking=True)
    with stream, cp.cuda.using_allocator(pool.malloc):
        fn()
        stream.begin_capture()
        try:
            fn()
        finally:
            graph = stream.end_capture()
        for _ in range(3):
            graph.launch(stream)
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record(stream)
        for _ in range(repeats):
            graph.launch(stream)
        stop.record(stream)
        stop.synchronize()
    return cp.cuda.get_elapsed_time(start, stop) * 1e3 / repeats


def _timer(backend, repeats: int):
    """fn -> (microseconds, how): graph replay on the GPU (op by op where capture fails),
    wall time on the CPU."""
    if backend.name == "gpu":
        from cupyx.profiler import benchmark

        def median_us(fn):
            try:
                return _graph_us(fn, repeats), "graph"
            except Exception as exc:          # e.g. cuBLAS, which CuPy refuses to capture
                us = float(np.median(benchmark(fn, n_repeat=repeats, n_warmup=3).gpu_times[0]) * 1e6)
                return us, f"op by op ({type(exc).__name__})"
        return median_us
    import time

    def median_us(fn):
        fn()
        times = []
        for _ in range(max(3, repeats // 10)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1e6), "wall"
    return median_us


def profile(preset_name: str, backend_name: str, repeats: int) -> dict:
    be = get_backend(backend_name)
    xp = be.xp
    config = preset(preset_name)
    receiver = Receiver(config, backend=be, quiet=True)
    clocked = Receiver(config, backend=be, quiet=True, sample_clock_ppm=2.0)
    data = make_frames(config, 1)
    r = xp.asarray(data.frames[:, config.cp_len:], dtype=np.complex64)
    est = receiver.estimate(r)
    op = est.operator.astype(np.complex64)
    n0 = xp.maximum(xp.asarray(est.noise_var, dtype=np.float32), 1e-12)
    P, L = op.taps_fft.shape[-2:]
    s = r.copy()
    wide = xp.broadcast_to(s[:, None, :], (1, P, L)).copy()
    precond = local_fourier_preconditioner(op, n0, receiver.segments)
    power = local_power(op, receiver.segments)
    time_us = _timer(be, repeats)
    probe = xp.empty(8 << 20, np.complex64)
    estimator = receiver.estimator
    coeffs = (estimator._pinv[None] * estimator.snapshots(r)[:, :, None, :]).sum(axis=-1)
    pieces = {
        "fill 64 MB (write-bandwidth probe)": lambda: probe.fill(0),
        "fft [1, L]": lambda: fft(s, axis=-1),
        f"fft [{P}, L]": lambda: fft(wide, axis=-1),
        "front end: DC + CFO (Receiver.front_end)": lambda: receiver.front_end(r),
        "front end with a 2 ppm sample clock": lambda: clocked.front_end(r),
        "estimate (whole)": lambda: receiver.estimate(r),
        "operator apply H s": lambda: op.apply(s),
        "operator adjoint H^H r": lambda: op.adjoint(s),
        "preconditioner build": lambda: local_fourier_preconditioner(op, n0, receiver.segments),
        "preconditioner apply": lambda: precond(s),
        "local power (S instants x 2h bins)": lambda: local_power(op, receiver.segments),
        "lmmse bias": lambda: lmmse_bias(power, n0),
        f"cg_lmmse, {receiver.cg_iterations} iterations": lambda: cg_lmmse(op, s, n0, receiver.cg_iterations,
                                                                           receiver.segments),
        "zak + data gather": lambda: zak(s, config.M, config.N).reshape(1, -1)[:, receiver.data_index],
        "run (whole chain)": lambda: receiver.run(r),
    }
    if receiver.operator_window:             # the windowed operator beside the exact one
        atoms = estimator.fit(r).operator.astype(np.complex64)
        windowed = receiver.equalizer_operator(atoms)
        tag = f"windowed Lw={receiver.operator_window}, V={receiver.operator_overlap}"
        pieces.update({
            "operator normal (H^H H + N0) s": lambda: op.normal(s, n0),
            "estimate up to the delay atoms (AccurateEstimator.fit)": lambda: estimator.fit(r),
            f"{tag}: build from the atoms": lambda: receiver.equalizer_operator(atoms),
            f"{tag}: apply H s": lambda: windowed.apply(s),
            f"{tag}: adjoint H^H r": lambda: windowed.adjoint(s),
            f"{tag}: normal (H^H H + N0) s": lambda: windowed.normal(s, n0),
            f"{tag}: cg_lmmse, {receiver.cg_iterations} iterations": lambda: cg_lmmse(
                windowed, s, n0, receiver.cg_iterations, receiver.segments),
        })
    if hasattr(be, "sparse_delay_fit"):
        lo, hi = estimator.taus[0] + estimator.edge, estimator.taus[-1] - estimator.edge
        floor = xp.full(1, 1e-3)
        fit_args = (coeffs, floor, estimator.taus[0], estimator.delay_resolution, estimator.coarse_stride,
                    estimator.n_atoms, lo, hi, L)
        pieces["sparse_delay_fit kernel"] = lambda: be.sparse_delay_fit(*fit_args)
        amplitudes, delays, _ = be.sparse_delay_fit(*fit_args)
        pieces["atom_taps_fft kernel"] = lambda: be.atom_taps_fft(amplitudes, delays, L)
    times, how = {}, {}
    for name, fn in pieces.items():
        times[name], how[name] = time_us(fn)
        print(f"  {name:45s} {times[name]:10.1f} us  ({how[name]})", file=sys.stderr)
    fill_rate = probe.nbytes / (times["fill 64 MB (write-bandwidth probe)"] * 1e-6)
    return {"preset": preset_name, "P": P, "L": L, "segments": receiver.segments,
            "operator_window": receiver.operator_window, "operator_overlap": receiver.operator_overlap,
            "cg_iterations": receiver.cg_iterations, "time_us": times, "timed_as": how,
            "fill_rate_bytes_per_s": fill_rate, **run_metadata(sys.argv, be)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    result = profile(args.preset, args.backend, args.repeats)
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
