"""Latency-deadline sweep: which delay-Doppler grids does the receiver decode in real time?

For every grid M x N (the guard, CP and preamble sized for Vehicular-A by
``zakotfs.design(M, N, modulation=...)``, bandwidth M x 15 kHz, so the Doppler period is the
reference paper's 15 kHz and a frame lasts about N / 15 kHz), modulation and estimator, the
receiver is timed batch by batch from received samples in host memory to bits and LLRs in
host memory (``zakotfs.benchmark.time_receiver`` on ``timed_path``: the CUDA-graph receiver on
the GPU; on the CPU each batch split between ``--workers`` processes, one a core by
default): end-to-end and per-stage latency
percentiles (p50 / p99 / p99.9 / max), misses of the deadline (one frame's wire time,
(preamble + CP + MN) / B, times the batch), and throughput. With ``--baseline K`` the
paper-style scipy sparse-matrix CG baseline (``time_sparse_baseline``; on a GPU also the
cuSPARSE one) runs in the same process, on the same frames, and the p50 speed ratio is
written beside our numbers.

Each point is first run twice (the first call compiles kernels and makes FFT plans); a point whose projected time (second batch x
(warmup + frames)) exceeds ``--max-seconds-per-point`` is recorded as skipped, with the
reason, instead of run. The baseline is timed frame by frame under the same budget and is
skipped where its time predicted from a smaller grid (scaling as MN^2, what was measured
on the CPU) would not fit.

The answer it reports: the largest grid in real time (p99.9 latency within its deadline and
the throughput at least the link's rate), or, where none is, the closest one (smallest
p99.9 / deadline) and by how much it misses.

Writes ``<out-dir>/latency_<backend>_<tag>.json`` (with the command, date, commit,
device, versions and the load average) and three PNGs next to it: ``..._cdf.png``
(latency CDFs against the deadlines), ``..._stages.png`` (p50 per stage) and
``..._scaling.png`` (p50 and p99.9 against MN, log-log, with the deadlines).

    python -m bench.latency_sweep --grids 1024x16 --frames 5                 # CI-sized
    python -m bench.latency_sweep --grids 1024x16:30,2048x16:20,16384x32:3 --baseline 2 \\
        --baseline-grids 1024x16,2048x16 --backend cpu --tag sweep
    python -m bench.latency_sweep --backend gpu --frames 2000 --tag h100    # all 15 grids

A grid given as ``MxN:FRAMES`` overrides ``--frames`` for that grid.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

from zakotfs import design, parse_grid
from zakotfs.benchmark import (BenchFrames, make_frames, percentiles, run_metadata, time_receiver,
                               time_sparse_baseline, timed_path, work_per_frame, write_json)
from zakotfs.receiver import Receiver

from .physical_limit import physical_limit_report, print_physical_limit

ALL_M = (1024, 2048, 4096, 8192, 16384)
ALL_N = (16, 32, 64)
STAGE_ORDER = ("transfer_in", "front_end", "estimate", "equalize", "demap", "transfer_out")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_grids(text: str | None, default_frames: int) -> list[tuple[int, int, int]]:
    """``"1024x16,2048x16:10"`` -> [(1024, 16, default_frames), (2048, 16, 10)]."""
    if not text or text == "all":
        return [(M, N, default_frames) for N in ALL_N for M in ALL_M]
    grids = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        grid, _, frames = item.partition(":")
        M, N = parse_grid(grid)
        try:
            n = int(frames) if frames else default_frames
        except ValueError:
            raise ValueError(f"grid {item!r}: the frame count after ':' must be an integer") from None
        if n < 1:
            raise ValueError(f"grid {item!r}: needs at least one frame")
        grids.append((M, N, n))
    if not grids:
        raise ValueError("--grids selects no grid")
    return grids


def _free_device_memory(receiver) -> None:
    gc.collect()
    if receiver is not None and receiver.backend.name == "gpu":
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()


def run_baseline(config, data: BenchFrames, k: int, budget_s: float, *, gpu: bool,
                 predicted_s: float | None) -> dict:
    """``time_sparse_baseline`` one frame at a time (raw times kept), within ``budget_s``."""
    name = "cusparse-cg" if gpu else "scipy-sparse-cg"
    if predicted_s is not None and predicted_s > budget_s:
        return {"status": "skipped", "name": name,
                "reason": f"predicted {predicted_s:.0f} s per frame from a smaller grid (MN^2 scaling) "
                          f"exceeds the {budget_s:.0f} s left for this point"}
    times, iterations = [], []
    started = time.perf_counter()
    for i in range(k):
        one = BenchFrames(data.frames[i % data.frames.shape[0]][None], data.bits[:1], data.noise_var)
        r = time_sparse_baseline(config, one, 1, gpu=gpu)
        times.append(r["latency_us"]["p50"] * 1e-6)
        iterations.append(r["cg_iterations"]["mean"])
        elapsed = time.perf_counter() - started
        log(f"    baseline {name}: frame {i + 1}/{k} {times[-1]:.2f} s, {iterations[-1]:.0f} CG iterations")
        if i + 1 < k and elapsed + times[-1] * 1.2 > budget_s:
            break
    out = {"status": "ok", "name": name, "frames": len(times), "frames_requested": k,
           "latency_us": percentiles(times), "samples_us": [t * 1e6 for t in times],
           "cg_iterations": {"mean": float(np.mean(iterations)), "max": float(np.max(iterations))},
           "note": "from host samples to host symbols: DD read-off, CSR matrix, explicit H^H H + N0 I, "
                   "scipy/cupyx CG to rtol 1e-3 (no demapping)"}
    if len(times) < k:
        out["truncated"] = f"stopped after {len(times)} of {k} frames: the point's time budget"
    return out


def run_point(M: int, N: int, frames: int, mod: str, estimator: str, args, backend) -> dict:
    point = {"grid": f"{M}x{N}", "M": M, "N": N, "MN": M * N, "modulation": mod,
             "estimator": estimator, "frames_requested": frames, "batch": args.batch}
    try:
        config = design(M, N, modulation=mod)
    except ValueError as exc:
        point.update(status="skipped", reason=f"no configuration: {exc}")
        return point
    deadline_s = config.wire_time * args.batch
    point.update(config=config.to_dict(), bandwidth_hz=config.bandwidth,
                 frame_time_us=config.frame_time * 1e6, wire_time_us=config.wire_time * 1e6,
                 deadline_us=deadline_s * 1e6, link_mbps=config.throughput_wire_bps / 1e6,
                 loadavg_before=list(os.getloadavg()))
    started = time.perf_counter()
    receiver = realtime = data = None
    try:
        extra = {} if args.cg_iterations is None else {"cg_iterations": args.cg_iterations}
        receiver = Receiver(config, backend=backend, estimator=estimator,
                            max_doppler_hz=args.max_doppler_hz, quiet=True, **extra)
        point.update(cg_iterations=receiver.cg_iterations, preconditioner_segments=receiver.segments,
                     operator_window=receiver.operator_window,
                     operator_overlap=receiver.operator_overlap, basis_functions=getattr(receiver.estimator, "P", None)
                     or len(getattr(receiver.estimator, "dopplers", [])) or None)
        n_distinct = max(args.batch, min(frames, args.distinct))
        data = make_frames(config, n_distinct, snr_db=args.snr, nu_max_hz=args.doppler_hz, seed=args.seed)
        point["prepare_s"] = time.perf_counter() - started
        # one batch first (JIT, kernel compiles, FFT plans, allocations), then a second one,
        # whose time projects the cost of the point
        t0 = time.perf_counter()
        receiver.process(data.frames[:args.batch])
        t1 = time.perf_counter()
        receiver.process(data.frames[:args.batch])
        first, second = t1 - t0, time.perf_counter() - t1
        projected = point["prepare_s"] + first + second * (1 + args.warmup + max(1, frames // args.batch))
        point.update(first_batch_us=first * 1e6, second_batch_us=second * 1e6, projected_s=projected)
        if projected > args.max_seconds_per_point:
            point.update(status="skipped",
                         reason=f"projected {projected:.0f} s (second batch {second:.2f} s x "
                                f"{args.warmup} warmup + {max(1, frames // args.batch)} timed) exceeds "
                                f"--max-seconds-per-point {args.max_seconds_per_point:g}")
            log(f"    skipped: {point['reason']}")
            return point
        log(f"    first batch {first * 1e3:.0f} ms (deadline {deadline_s * 1e3:.3f} ms); "
            f"projected {projected:.0f} s for {frames} frames")
        realtime = timed_path(receiver, args.batch, args.workers)
        point["realtime"] = realtime.describe()
        point["work_per_frame"] = work_per_frame(receiver)
        step = max(1, (frames // args.batch) // 10)

        def progress(i, n, latency_s):
            if i == n or i % step == 0:
                log(f"    {i}/{n} batches, last {latency_s * 1e3:.1f} ms")
        result = time_receiver(realtime, data, frames, warmup=args.warmup, batch=args.batch,
                               progress=progress, samples=True)
        n_samples = len(result["latency_samples_us"])
        lat = result["latency_us"]
        point.update(status="ok", **result)
        point["p999_over_deadline"] = lat["p999"] / point["deadline_us"]
        point["p50_over_deadline"] = lat["p50"] / point["deadline_us"]
        point["throughput_over_link"] = result["throughput_mbps"] / point["link_mbps"]
        point["real_time"] = bool(lat["p999"] <= point["deadline_us"] and point["throughput_over_link"] >= 1)
        # the same M x N at another bandwidth: the same samples a frame, so the receiver's work
        # is nearly unchanged (the Doppler in bins and the tap window move with it)
        point["realtime_bandwidth_hz"] = config.bandwidth / point["p999_over_deadline"]
        point["percentile_note"] = (f"{n_samples} samples: p99 and p99.9 are interpolated between the "
                                    f"largest samples (with fewer than 1000 samples p99.9 is close to the max)")
        if args.baseline and (args.baseline_grids is None or (M, N) in args.baseline_grids):
            left = args.max_seconds_per_point - (time.perf_counter() - started)
            predicted = None
            prior = [b for b in args._baseline_history if b[0] < M * N]
            if prior:
                mn, per_frame = max(prior)
                predicted = per_frame * (M * N / mn) ** 2
            b = run_baseline(config, data, args.baseline, left, gpu=False, predicted_s=predicted)
            baselines = {b["name"]: b}
            if b["status"] == "ok":
                args._baseline_history.append((M * N, b["latency_us"]["p50"] * 1e-6))
            if receiver.backend.name == "gpu":
                left = args.max_seconds_per_point - (time.perf_counter() - started)
                g = run_baseline(config, data, args.baseline, left, gpu=True, predicted_s=None)
                baselines[g["name"]] = g
            point["baselines"] = baselines
            point["speed_ratio_p50"] = {k: v["latency_us"]["p50"] / lat["p50"]
                                        for k, v in baselines.items() if v["status"] == "ok"}
    except MemoryError as exc:
        point.update(status="skipped", reason=f"out of memory: {exc}")
    except Exception as exc:  # one failing point must not lose the rest of the sweep
        if args.strict:
            raise
        point.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    finally:
        point["point_wall_s"] = time.perf_counter() - started
        point["loadavg_after"] = list(os.getloadavg())
        if hasattr(realtime, "close"):
            realtime.close()
        del data, realtime
        _free_device_memory(receiver)
    return point


def finding(points: list[dict]) -> dict:
    """Largest grid (by MN) whose p99.9 meets its deadline; else the closest miss."""
    out = {}
    groups = sorted({(p["modulation"], p["estimator"]) for p in points})
    for mod, est in groups:
        ok = [p for p in points if p["status"] == "ok" and (p["modulation"], p["estimator"]) == (mod, est)]
        key = f"{mod}/{est}"
        if not ok:
            out[key] = {"verdict": "no point was measured"}
            continue
        meets = [p for p in ok if p["latency_us"]["p999"] <= p["deadline_us"]
                 and p["throughput_mbps"] >= p["link_mbps"]]
        if meets:
            best = max(meets, key=lambda p: (p["MN"], p["M"]))
            out[key] = {"verdict": "meets", "grid": best["grid"], "MN": best["MN"],
                        "p999_us": best["latency_us"]["p999"], "deadline_us": best["deadline_us"],
                        "p999_over_deadline": best["p999_over_deadline"],
                        "text": f"largest grid in real time: {best['grid']} at {_rate(best['bandwidth_hz'])} "
                                f"(p99.9 {best['latency_us']['p999'] / 1e3:.3f} ms <= "
                                f"{best['deadline_us'] / 1e3:.3f} ms, {best['throughput_mbps']:.2f} Mbps >= "
                                f"{best['link_mbps']:.2f} on the link)"}
        else:
            best = min(ok, key=lambda p: p["p999_over_deadline"])
            miss = best["latency_us"]["p999"] - best["deadline_us"]
            rate = best["bandwidth_hz"] / best["p999_over_deadline"]
            out[key] = {"verdict": "none meets", "closest_grid": best["grid"], "MN": best["MN"],
                        "p999_us": best["latency_us"]["p999"], "deadline_us": best["deadline_us"],
                        "p999_over_deadline": best["p999_over_deadline"], "miss_us": miss,
                        "realtime_bandwidth_hz": rate,
                        "text": f"no grid meets its deadline at p99.9; closest {best['grid']}: p99.9 "
                                f"{best['latency_us']['p999'] / 1e3:.1f} ms against "
                                f"{best['deadline_us'] / 1e3:.3f} ms, {best['p999_over_deadline']:.0f}x "
                                f"the deadline ({miss / 1e3:.1f} ms over); the same grid keeps up at p99.9 "
                                f"up to {_rate(rate)} of bandwidth instead of {_rate(best['bandwidth_hz'])}"}
    return out


# ---------------------------------------------------------------------------------------
# plots
def _label(p: dict, multi: bool) -> str:
    return f"{p['grid']}" + (f" {p['modulation']}/{p['estimator']}" if multi else "")


def plot(result: dict, stem: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [p for p in result["points"] if p["status"] == "ok"]
    if not ok:
        return []
    multi = len({(p["modulation"], p["estimator"]) for p in ok}) > 1
    title = (f"zakotfs receiver, backend {result['meta'].get('backend')} "
             f"({result['meta'].get('device')}), batch {result['parameters']['batch']}")
    n_colors = {16: "tab:blue", 32: "tab:orange", 64: "tab:green"}
    cmap = plt.get_cmap("viridis")
    order = sorted(ok, key=lambda p: (p["N"], p["M"]))
    colors = {id(p): cmap(i / max(1, len(order) - 1)) for i, p in enumerate(order)}
    files = []

    # 1. CDF against the deadline
    fig, (ax, axn) = plt.subplots(1, 2, figsize=(13, 5))
    for p in order:
        s = np.sort(np.asarray(p["latency_samples_us"])) / 1e3
        cdf = np.arange(1, s.size + 1) / s.size
        ax.step(s, cdf, where="post", color=colors[id(p)], label=_label(p, multi))
        axn.step(s / (p["deadline_us"] / 1e3), cdf, where="post", color=colors[id(p)], label=_label(p, multi))
    for N in sorted({p["N"] for p in ok}):
        d = np.mean([p["deadline_us"] for p in ok if p["N"] == N]) / 1e3
        ax.axvline(d, ls="--", color=n_colors.get(N, "k"), lw=1.2, label=f"deadline N={N}: {d:.2f} ms")
    axn.axvline(1.0, ls="--", color="r", lw=1.2, label="deadline")
    ax.set(xscale="log", xlabel="latency per batch (ms)", ylabel="empirical CDF", title="latency CDF")
    axn.set(xscale="log", xlabel="latency / deadline", ylabel="empirical CDF",
            title="latency relative to each grid's deadline")
    for a in (ax, axn):
        a.grid(True, which="both", alpha=0.3)
        a.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    axn.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    files.append(str(stem) + "_cdf.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)

    # 2. stage breakdown (p50 per stage), absolute and as a share
    stages = [s for s in STAGE_ORDER if any(s in p["stages"] for p in ok)]
    stages += sorted({s for p in ok for s in p["stages"]} - set(stages))
    fig, (ax, axf) = plt.subplots(1, 2, figsize=(13, 5))
    x = np.arange(len(order))
    bottom = np.zeros(len(order))
    bottom_f = np.zeros(len(order))
    stage_colors = dict(zip(stages, plt.get_cmap("tab10").colors))
    for s in stages:
        v = np.array([(p["stages"].get(s, {}).get("p50") or 0.0) / 1e3 for p in order])
        tot = np.array([sum((p["stages"].get(t, {}).get("p50") or 0.0) for t in stages) / 1e3 for p in order])
        ax.bar(x, v, bottom=bottom, color=stage_colors[s], label=s)
        axf.bar(x, 100 * v / np.maximum(tot, 1e-12), bottom=bottom_f, color=stage_colors[s], label=s)
        bottom += v
        bottom_f += 100 * v / np.maximum(tot, 1e-12)
    for xi, p in zip(x, order):          # the deadlines are far below the bars: say by how much
        r = p["latency_us"]["p50"] / p["deadline_us"]
        ax.annotate(f"{r:.0f}x" if r >= 10 else f"{r:.2g}x", (xi, bottom[xi]),
                    ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, bottom.max() * 1.08)
    ax.set(ylabel="p50 per stage, stacked (ms)",
           title="stage breakdown (p50); label: end-to-end p50 / deadline")
    axf.set(ylabel="share of the summed stage p50 (%)", title="stage shares", ylim=(0, 100))
    for a in (ax, axf):
        a.set_xticks(x, [_label(p, multi) for p in order], rotation=45, ha="right", fontsize=8)
        a.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    files.append(str(stem) + "_stages.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)

    # 3. scaling with MN, log-log, with the deadlines
    fig, ax = plt.subplots(figsize=(8, 6))
    for N in sorted({p["N"] for p in ok}):
        pts = sorted((p for p in ok if p["N"] == N), key=lambda p: p["MN"])
        mn = np.array([p["MN"] for p in pts])
        c = n_colors.get(N, "k")
        ax.plot(mn, [p["latency_us"]["p50"] / 1e3 for p in pts], "o-", color=c, label=f"p50, N={N}")
        ax.plot(mn, [p["latency_us"]["p999"] / 1e3 for p in pts], "^:", color=c, mfc="none",
                label=f"p99.9, N={N}")
        d = np.mean([p["deadline_us"] for p in pts]) / 1e3
        ax.axhline(d, ls="--", color=c, lw=1, label=f"deadline N={N} ({d:.2f} ms)")
        base = [(p["MN"], p["baselines"]["scipy-sparse-cg"]["latency_us"]["p50"] / 1e3) for p in pts
                if p.get("baselines", {}).get("scipy-sparse-cg", {}).get("status") == "ok"]
        if base:
            ax.plot(*zip(*base), "s--", color=c, alpha=0.6, label=f"scipy sparse-CG baseline p50, N={N}")
    mn_all = np.array(sorted({p["MN"] for p in ok}), float)
    if mn_all.size > 1:
        ref = order[0]
        y0 = ref["latency_us"]["p50"] / 1e3
        ax.plot(mn_all, y0 * mn_all / ref["MN"], color="gray", lw=0.8, alpha=0.7, label="~ MN (reference slope)")
    ax.set(xscale="log", yscale="log", xlabel="MN (samples per frame)", ylabel="latency per batch (ms)",
           title="scaling of the latency with the grid size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    files.append(str(stem) + "_scaling.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    return files


# ---------------------------------------------------------------------------------------
def _rate(hz: float | None) -> str:
    """A sample rate for the table: '2.4 MHz', '180 kHz'."""
    if hz is None:
        return "-"
    return f"{hz / 1e6:.3g} MHz" if hz >= 1e6 else f"{hz / 1e3:.3g} kHz"


def print_table(result: dict, file=None) -> None:
    file = file or sys.stdout
    rows = [("grid", "mod/est", "frames", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "deadline ms",
             "p99.9/dl", "misses", "Mbps", "real time up to", "baseline p50 s", "ratio")]
    for p in result["points"]:
        if p["status"] != "ok":
            rows.append((p["grid"], f"{p['modulation']}/{p['estimator']}", p["status"],
                         (p.get("reason") or "")[:90], *[""] * 10))
            continue
        lat = p["latency_us"]
        b = p.get("baselines", {})
        b_ok = [v for v in b.values() if v["status"] == "ok"]
        bl = ", ".join(f"{v['latency_us']['p50'] / 1e6:.2f}" for v in b_ok) or \
            ("skipped" if b else "-")
        ratio = ", ".join(f"{r:.1f}x" for r in p.get("speed_ratio_p50", {}).values()) or "-"
        rows.append((p["grid"], f"{p['modulation']}/{p['estimator']}", str(p["frames"]),
                     f"{lat['p50'] / 1e3:.1f}", f"{lat['p99'] / 1e3:.1f}", f"{lat['p999'] / 1e3:.1f}",
                     f"{lat['max'] / 1e3:.1f}", f"{p['deadline_us'] / 1e3:.3f}",
                     f"{p['p999_over_deadline']:.0f}x", f"{p['deadline_misses']}/{p['frames'] // p['batch']}",
                     f"{p['throughput_mbps']:.2f}", _rate(p.get("realtime_bandwidth_hz")), bl, ratio))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip(), file=file)
    for key, f in result["finding"].items():
        print(f"{key}: {f.get('text', f['verdict'])}", file=file)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.latency_sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", default="all",
                    help="comma-separated MxN[:FRAMES] (default all: M in 1024..16384, N in 16, 32, 64)")
    ap.add_argument("--mods", default="16qam", help="comma-separated: qpsk,16qam,64qam,256qam")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "gpu", "auto"])
    ap.add_argument("--estimator", default="accurate", help="accurate, paper, or both comma-separated")
    ap.add_argument("--frames", type=int, default=20, help="timed frames per grid (default 20)")
    ap.add_argument("--batch", type=int, default=1, help="frames per receiver call (deadline x batch)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed batches after the first (default 2)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="CPU: receiver processes each batch is split between (default: one a core)")
    ap.add_argument("--distinct", type=int, default=8, help="distinct received frames cycled (default 8)")
    ap.add_argument("--cg-iterations", type=int, default=None,
                    help="fixed CG iterations (default: the Receiver's default for the modulation)")
    ap.add_argument("--max-doppler-hz", type=float, default=1000.0, help="the estimator's design Doppler")
    ap.add_argument("--snr", type=float, default=20.0, help="Es/N0 (dB) of the prepared frames")
    ap.add_argument("--doppler-hz", type=float, default=815.0, help="Veh-A nu_max of the prepared frames")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", type=int, default=0, metavar="K",
                    help="also time the sparse-matrix CG baseline(s) on K frames per grid")
    ap.add_argument("--baseline-grids", default=None,
                    help="comma-separated MxN: run the baseline only on these (default: every grid)")
    ap.add_argument("--max-seconds-per-point", type=float, default=300.0,
                    help="skip a point projected (from its first frame) to take longer (default 300)")
    ap.add_argument("--tag", default="sweep", help="result name: latency_<backend>_<tag>.json")
    ap.add_argument("--out-dir", default="bench/results")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--strict", action="store_true", help="raise on a failing point instead of recording it")
    ap.add_argument("--physical-limit", action="store_true",
                    help="only the bytes/flops model of the headline grid against H100 datasheet figures: "
                         "writes <out-dir>/latency_physical_limit_h100.json (no timing)")
    ap.add_argument("--replot", metavar="JSON", help="only redraw the plots (and the table) of a result file")
    args = ap.parse_args(argv)
    if args.replot:
        import json

        stem = Path(args.replot)
        result = json.loads(stem.read_text())
        result["plots"] = plot(result, stem.with_suffix(""))
        write_json(stem, result)
        print_table(result)
        return 0
    if args.physical_limit:
        out = Path(args.out_dir) / "latency_physical_limit_h100.json"
        print_physical_limit(physical_limit_report(out))
        log(f"wrote {out}")
        return 0

    try:
        grids = parse_grids(args.grids, args.frames)
        mods = [m.strip() for m in args.mods.split(",") if m.strip()]
        estimators = [e.strip() for e in args.estimator.split(",") if e.strip()]
        for e in estimators:
            if e not in ("accurate", "paper"):
                raise ValueError(f"--estimator must be accurate or paper, got {e!r}")
        for name in ("batch", "frames", "distinct", "workers"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name} must be >= 1")
        if args.warmup < 0 or args.baseline < 0:
            raise ValueError("--warmup and --baseline must be >= 0")
        args.baseline_grids = None if args.baseline_grids is None else \
            {parse_grid(g.strip()) for g in args.baseline_grids.split(",") if g.strip()}
        from dsp_kernels import get_backend

        backend = get_backend(args.backend)
    except Exception as exc:  # bad arguments, or --backend gpu without a GPU: one line, status 2
        print(f"latency_sweep: error: {exc}", file=sys.stderr)
        return 2
    args._baseline_history = []

    started = time.perf_counter()
    meta = run_metadata(sys.argv if argv is None else ["bench.latency_sweep", *argv], backend)
    meta["loadavg_start"] = list(os.getloadavg())
    try:
        meta["cpu_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    points = []
    todo = [(M, N, f, mod, est) for mod in mods for est in estimators for M, N, f in grids]
    for i, (M, N, frames, mod, est) in enumerate(todo):
        log(f"[{i + 1}/{len(todo)}] {M}x{N} {mod} {est} on {backend.name}: {frames} frames, "
            f"load {os.getloadavg()[0]:.2f}")
        p = run_point(M, N, frames, mod, est, args, backend)
        if p["status"] == "ok":
            lat = p["latency_us"]
            log(f"    p50 {lat['p50'] / 1e3:.1f} ms, p99.9 {lat['p999'] / 1e3:.1f} ms, deadline "
                f"{p['deadline_us'] / 1e3:.3f} ms, misses {p['deadline_misses']}/{p['frames'] // p['batch']}"
                + "".join(f"; {k} {r:.1f}x slower" for k, r in p.get("speed_ratio_p50", {}).items()))
        elif p["status"] == "error":
            log(f"    error: {p['reason']}")
        points.append(p)

    result = {
        "what": "zakotfs latency-deadline sweep: host samples in -> host bits/LLRs out, per frame "
                "batch; deadline = batch x (preamble + CP + MN) / B",
        "parameters": {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "baseline_grids"}
        | {"baseline_grids": None if args.baseline_grids is None else sorted(f"{m}x{n}" for m, n in args.baseline_grids),
           "channel": {"profile": "veh-a", "nu_max_hz": args.doppler_hz, "snr_db": args.snr}},
        "meta": meta,
        "points": points,
        "finding": finding(points),
    }
    meta["loadavg_end"] = list(os.getloadavg())
    meta["sweep_wall_s"] = time.perf_counter() - started
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"latency_{backend.name}_{args.tag}"
    result["plots"] = [] if args.no_plots else plot(result, stem)
    write_json(str(stem) + ".json", result)
    print_table(result)
    log(f"wrote {stem}.json" + "".join(f", {Path(f).name}" for f in result["plots"])
        + f" ({meta['sweep_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
