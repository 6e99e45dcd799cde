"""The physical limit of the headline grid on a GPU: bytes, flops and roofline times per stage
of the receiver's chain, as written and as fused, against an H100's datasheet figures (and,
where a profile is at hand, its measured rates); ``python -m bench.latency_sweep
--physical-limit`` writes ``bench/results/latency_physical_limit_h100.json``.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from zakotfs.benchmark import run_metadata, write_json


H100_SXM = {"name": "H100 SXM (datasheet figures, nothing measured)", "hbm_Bps": 3.35e12,
            "fp32_flops": 67e12, "pcie_Bps": (50e9, 64e9), "l2_bytes": 50e6}


def _default_iterations(modulation: str = "16qam") -> int:
    from zakotfs import receiver

    return getattr(receiver, "CG_ITERATIONS", {}).get(modulation, 12)


def physical_limit(config=None, *, iterations: int | None = None, max_doppler_hz: float = 1000.0,
                   hw: dict = H100_SXM, P: int | None = None, bytes_per_coeff: int = 8,
                   llr_bytes: float = 4.0, basis_shared_by: int = 1, window: int | None = None) -> dict:
    """Bytes moved and flops per stage of one frame, and their roofline times on ``hw``.

    Two accountings per stage:

    * ``as_written``: the code as it stands, op by op (every CuPy/NumPy expression reads its
      inputs from and writes its output to device memory; an FFT is one read and one write
      of its data; per-frame uploads of constants counted on the host link);
    * ``fused``: a lower bound for the same algorithm: every array read or written once per
      use in HBM, elementwise work fused into the FFT loads and stores, FFT intermediates
      and vectors reused within an iteration held in the 50 MB L2, constants resident.

    Time of a stage = max(bytes / HBM bandwidth, flops / FP32 peak) + link bytes / PCIe.
    Units: ``U`` = one frame of complex64, 8 L bytes. ``bytes_per_coeff`` = storage of the
    operator's C_p and b_p (8: complex64; 4: complex bf16/fp16), ``basis_shared_by`` = frames
    of a batch reading one copy of the (frame-independent) DPSS basis. ``window`` = Lw of the
    windowed operator (``zakotfs.windowed_operator``, K = 2 filters a window, the fused
    kernels of ``dsp_kernels/windowed.cu``); None: the receiver's default; 0: the exact
    frame-long operator (2 + 2P FFTs of L per normal product).
    """
    from zakotfs import preset
    from zakotfs.equalizer import default_segments
    from zakotfs.estimation import AccurateEstimator
    from zakotfs.windowed_operator import ORDER, default_window, window_overlap

    c = config or preset("paper")
    iterations = _default_iterations(c.modulation) if iterations is None else iterations
    est = AccurateEstimator(c, max_doppler_hz)
    P = est.P if P is None else P
    L, W, J, K, N, M = c.MN, len(est.taus), est.n_atoms, len(est.offsets), c.N, c.M
    S = default_segments(L, sum(c.tap_window) + 1, max_doppler_hz * c.frame_time)
    h = L // S
    n_data, q = c.n_data, c.bits_per_symbol
    U = 8.0 * L
    cw = bytes_per_coeff / 8.0                  # C_p and b_p reads, in U per function
    bw = cw / basis_shared_by
    log2 = np.log2
    fft_f = lambda n, count=1: 5.0 * n * log2(n) * count      # noqa: E731  (complex FFT flops)

    taps, doppler_bins = sum(c.tap_window) + 1, max_doppler_hz * c.frame_time
    Lw = default_window(L, taps, doppler_bins) if window is None else window
    V = window_overlap(L, Lw, taps, doppler_bins) if Lw else 0
    B, rb = Lw + V, (Lw + V) / Lw if Lw else 0.0      # the overlap-save block, and B / Lw
    Kw = ORDER
    precond_flops = 2 * fft_f(2 * h, S) + 2 * L * 16
    vector_flops = 10 * L * 8
    precond_w = 19               # overlapped_windows 3, fft 4, * inverse 5, ifft 4, overlap_add 3
    vector_w = 13                # real_dot x2 4, cg_step 6, xpby 3 (dsp_kernels.fused)
    precond_f = 3                                 # r res, r 1/(|G|^2+N0) (2L float32), w z
    vector_f = 7                                  # r x, p, res, z; w x, res, p (dots fused)
    # the operator, as written, in U (reads + writes) per operation of the code; and the
    # fused lower bound
    if Lw:
        # blocks [S', B] are rb = B / Lw U; the filters G'_k [K, S', B] K rb U each of G', conj(G')
        apply_flops = fft_f(B, (1 + Kw) * (L // Lw)) + Kw * rb * L * 6 + Kw * L * 4
        # gather 1+rb, fft 2rb, G'X rb(1+2K), ifft 2K rb, window_sum K+1
        apply_w = 2 + 4 * rb + 4 * Kw * rb + Kw
        # weight 1+K rb, fft 2K rb, reduce rb(2K+1), ifft 2rb, scatter rb+1
        adjoint_w = 2 + 4 * rb + 5 * Kw * rb
        normal_extra_w = 1           # scatter_add reads p for n0 p
        normal_f = 1 + 2 * Kw * rb * cw + 1           # r p, G' and conj(G'), w A p
        build_written = 3 * Kw * rb + 1 + (P * B * 8 * 3) / U   # G' (and its conj), taps' FFT
        build_f = Kw * rb * cw
        build_what = (f"G'_k,w = FFT_B(sum_p beta_pkw c_p[d0 ... d0 + V]), {L // Lw} windows of "
                      f"Lw = {Lw}, blocks of B = Lw + V = {B}, K = {Kw}, from J = {J} atoms")
        build_flops = J * P * (V + 1) * 20 + fft_f(B, P) + 8 * P * rb * Kw * L
        build_link = 0
        build_note = ("taps on V + 1 delays straight from the atoms (no frame-long transform), "
                      "their FFT of B, G' = beta^T x spectrum, conj(G') once per frame")
        operator_what = (f"windowed operator ({L // Lw} windows of {Lw}, overlap {V}, K = {Kw}): 1 + K FFTs "
                         f"and K + 1 IFFTs of {B} per window")
    else:
        apply_flops = fft_f(L, P + 1) + P * L * 14             # C.S (6), b.u (6), sum (2)
        apply_w = 8 * P + 4          # fft 2, C*X 2P+1, ifft 2P, b*u 3P, sum P+1
        adjoint_w = 12 * P + 4       # conj(b) 2P, *r 2P+1, fft 2P, conj(C) 2P, *v 3P, sum P+1, ifft 2
        normal_extra_w = 5           # n0 v, + ...
        normal_f = 1 + 2 * P * cw + 2 * P * bw + 1    # r p, C twice, b twice, w Ap^H A p (+ n0 p)
        build_written = P
        build_f = P * cw
        build_what = f"C_p(f) = sum_j a_jp exp(-j2pi f delta_j / L), J = {J} atoms, P = {P}"
        build_flops = J * L * 20 + J * P * L * 8
        build_link = 0
        build_note = "one fused kernel (atom_taps_fft, sparse_fit.cu) writes C_p"
        operator_what = f"exact operator: 1 FFT + {P} IFFTs, {P} FFTs + 1 IFFT of {L}"
    iter_flops = 2 * apply_flops + precond_flops + vector_flops + 4 * L

    stages = []

    def stage(name, what, flops, as_written_U, fused_U, link_written=0.0, link_fused=0.0,
              launches=None, note=None):
        stages.append({"stage": name, "what": what, "flops": float(flops),
                       "as_written": {"hbm_bytes": float(as_written_U * U), "link_bytes": float(link_written)},
                       "fused": {"hbm_bytes": float(fused_U * U), "link_bytes": float(link_fused)},
                       "kernel_launches_as_written": launches, "note": note})

    stage("host_validation", "np.isfinite(frames).all + np.where(valid, frames, 0) on the host "
          "(CPU, before the transfer; not a GPU cost)", 0, 0, 0,
          note="host memory: reads the frame twice and writes it once, 3 x (cp + MN) x 8 B")
    stage("transfer_in", "received frame, CP removed, host -> device", 0, 1, 1,
          link_written=U, link_fused=U, note="pinned host memory assumed for the link rate")
    stage("estimate: snapshots + DPSS LS fit", f"gather W x N = {W} x {N} pilot samples, "
          f"coefficients pinv [W, P, N] x z (P = {P}), fit residual",
          2 * 8 * W * P * N, (W * N * 8 * 4 + 2 * W * P * N * 16) / U, (W * N * 8 + W * P * N * 8) / U,
          note="pinv, the DPSS samples and the snapshot index are resident on the device")
    omp_flops = J * (K * W * (30 + 8 * P) + W * J * (30 + 8 * J + 16 * P) + 8 * J ** 3)
    stage("estimate: OMP delay fit", f"{J} atoms x ({K} fine candidates x {W} taps periodic-sinc "
          f"scores, LS refit of <= {J} atoms)", omp_flops,
          J * (K * W * 16 * 6 + W * J * 16 * 8 + W * P * 8 * 8) / U, J * (W * P * 8 * 2) / U,
          launches=1,
          note="one fused kernel (sparse_fit.cu), one thread block per frame, stopping at the first "
               "inactive atom: latency-bound on one SM, not bandwidth-bound (0.43 ms at batch 1 "
               "on the H100, gpu_h100_profile.json)")
    stage("estimate: operator build", build_what, build_flops, build_written, build_f,
          link_written=build_link, link_fused=0,
          note=build_note)
    stage("local power + bias / SINR", f"|G(q_m, f)|^2 = |sum_p b_p[q_m] C_p(f)|^2 at S = {S} instants on "
          f"2h = {2 * h} bins (shared with the preconditioner), mu = mean |G|^2 / (|G|^2 + N0)",
          2 * L * P * 8 + 2 * L * 6, 4 * P + 6, 1,
          note="as written: P rank-one updates of the [S, 2h] response (capturable_matmul), |.|^2, the mean")
    stage("pilot cancellation", "r - H s_p (one operator apply)", apply_flops, apply_w + 3,
          normal_f / 2 + 1, note="fused: FFT(s_p) is constant, precomputable")
    # b = H^H r; preconditioner build (local responses [S, 2h], 1/(|G|^2 + N0)): 13 U as
    # written, 1 U fused (the float32 inverse); x0 = M b; r0 = b - A x0; z0 = M r0; <r0, z0>
    setup_written = 2 * adjoint_w + apply_w + normal_extra_w + 2 * precond_w + 13 + 9
    setup_fused = (normal_f / 2 + 1) + normal_f + 2 * precond_f + 1 + vector_f
    stage("CG setup", "b = H^H r, preconditioner (local responses, 1/(|G|^2+N0)), x0 = M b, "
          "r0 = b - A x0, z0 = M r0", apply_flops + iter_flops + precond_flops, setup_written, setup_fused)
    stage(f"CG iterations x {iterations}",
          f"per iteration: A p = H^H H p + N0 p ({operator_what}), "
          f"preconditioner ({S} windows of {2 * h}: FFT + IFFT), 2 dots, 3 axpys",
          iterations * iter_flops,
          iterations * (apply_w + adjoint_w + normal_extra_w + precond_w + vector_w),
          iterations * (normal_f + precond_f + vector_f))
    stage("forward Zak + data extraction", f"{M} FFTs of {N} points, gather {n_data} data symbols, / mu",
          fft_f(N, M), 2 + 2 + 1 + (n_data * 8 * 2 + n_data * 8 * 3) / U, 1 + n_data * 8 / U,
          note="as written: strided-axis copy, FFT, ortho scaling, gather at the resident data index")
    stage("demap", f"max-log LLRs, {q} bits per symbol", n_data * q * 16,
          (n_data * 8 + n_data * 4 * 2 + n_data * q * 4) / U, (n_data * 8 + n_data * q * llr_bytes) / U)
    stage("transfer_out", "LLRs and hard bits (uint8), device -> host",
          0, 0, 0, link_written=n_data * q * 5, link_fused=n_data * q * llr_bytes,
          note=f"float32 LLRs {n_data * q * 4 / 1e6:.2f} MB; int8 LLRs {n_data * q / 1e6:.2f} MB; "
               f"packed hard bits {n_data * q / 8e6:.2f} MB")

    hbm, peak, (pcie_lo, pcie_hi) = hw["hbm_Bps"], hw["fp32_flops"], hw["pcie_Bps"]
    totals = {}
    for kind in ("as_written", "fused"):
        t_dev = t_lo = t_hi = 0.0
        for st in stages:
            a = st[kind]
            dev = max(a["hbm_bytes"] / hbm, st["flops"] / peak)
            a["device_us"] = dev * 1e6
            a["link_us"] = [a["link_bytes"] / pcie_hi * 1e6, a["link_bytes"] / pcie_lo * 1e6]
            a["memory_bound"] = a["hbm_bytes"] / hbm >= st["flops"] / peak
            t_dev += dev
            t_lo += a["link_bytes"] / pcie_hi
            t_hi += a["link_bytes"] / pcie_lo
        totals[kind] = {"device_us": t_dev * 1e6, "link_us": [t_lo * 1e6, t_hi * 1e6],
                        "total_us": [(t_dev + t_lo) * 1e6, (t_dev + t_hi) * 1e6]}
    per_iter = {
        "as_written_hbm_bytes": (apply_w + adjoint_w + normal_extra_w + precond_w + vector_w) * U,
        "fused_hbm_bytes": (normal_f + precond_f + vector_f) * U,
        "flops": iter_flops,
    }
    per_iter["as_written_us"] = max(per_iter["as_written_hbm_bytes"] / hbm, iter_flops / peak) * 1e6
    per_iter["fused_us"] = max(per_iter["fused_hbm_bytes"] / hbm, iter_flops / peak) * 1e6
    per_iter["flops_us"] = iter_flops / peak * 1e6
    return {"grid": f"{M}x{N}", "L": L, "P": P, "segments": S, "window": 2 * h, "operator_window": Lw,
            "operator_overlap": V,
            "operator_U_as_written": {"apply": apply_w, "adjoint": adjoint_w, "normal_extra": normal_extra_w},
            "W": W, "J": J,
            "iterations": iterations, "bytes_per_coeff": bytes_per_coeff, "llr_bytes": llr_bytes,
            "basis_shared_by": basis_shared_by, "U_bytes": U, "deadline_us": c.wire_time * 1e6,
            "hardware": hw, "stages": stages, "totals": totals, "per_iteration": per_iter}


def calibrate_spec(hw: dict = H100_SXM) -> dict:
    """The spec's measurement (0.42 ms per CG iteration, 3-term basis, circulant
    preconditioner, plain CuPy, CUDA graph) against this model's as-written bytes."""
    P = 3
    apply_w, adjoint_w, normal_extra_w, vector_w = 8 * P + 4, 12 * P + 4, 5, 27
    circulant_w = 2 + 3 + 2                         # fft, * diag (float), ifft
    U = 8.0 * 16384 * 32
    bytes_ = (apply_w + adjoint_w + normal_extra_w + circulant_w + vector_w) * U
    bound = bytes_ / hw["hbm_Bps"]
    return {"P": P, "as_written_bytes": bytes_, "bound_us": bound * 1e6, "measured_us": 420.0,
            "efficiency": bound / 420e-6}


def calibrate_measured(profile: Path = Path("bench/results/gpu_h100_profile.json"), hw: dict = H100_SXM) -> dict | None:
    """The exact operator's apply and adjoint from a GPU profile (``gpu_profile``'s JSON, CUDA
    graph timing) against this model's as-written bytes: the fraction of HBM peak the array
    code reaches, and at that fraction the windowed operator's normal product (a prediction,
    until ``gpu_profile`` times it)."""
    if not profile.exists():
        return None
    measured = json.loads(profile.read_text())
    t = measured["time_us"]
    exact = physical_limit(window=0, P=measured["P"])
    windowed = physical_limit()
    ops, U = exact["operator_U_as_written"], exact["U_bytes"]
    apply_bound = ops["apply"] * U / hw["hbm_Bps"] * 1e6
    adjoint_bound = ops["adjoint"] * U / hw["hbm_Bps"] * 1e6
    efficiency = (apply_bound + adjoint_bound) / (t["operator apply H s"] + t["operator adjoint H^H r"])
    w = windowed["operator_U_as_written"]
    normal_bound = (w["apply"] + w["adjoint"] + w["normal_extra"]) * U / hw["hbm_Bps"] * 1e6
    return {"profile": str(profile), "commit": measured.get("commit"), "device": measured.get("device"),
            "exact_apply_us": {"measured": t["operator apply H s"], "bound": apply_bound},
            "exact_adjoint_us": {"measured": t["operator adjoint H^H r"], "bound": adjoint_bound},
            "efficiency": efficiency, "operator_window": windowed["operator_window"],
            "windowed_normal_us": {"bound": normal_bound, "predicted": normal_bound / efficiency},
            "exact_normal_us_measured": t["operator apply H s"] + t["operator adjoint H^H r"]}


def host_side_costs(repeats: int = 20) -> dict:
    """Host (CPU) work the receiver does per headline frame outside the device stages, timed
    here (median): the NaN/Inf validation and zeroing, the hard decisions from the LLRs, and
    the data-position index rebuilt by ``extract_data``."""
    from zakotfs import preset

    c = preset("paper")
    rng = np.random.default_rng(0)
    frame = (rng.standard_normal((1, c.cp_len + c.MN)) + 1j * rng.standard_normal((1, c.cp_len + c.MN))
             ).astype(np.complex64)
    llr = rng.standard_normal((1, c.bits_per_frame)).astype(np.float32)

    def validate():
        valid = np.isfinite(frame).all(axis=-1)
        return np.where(valid[:, None], frame, 0)

    def median_us(fn):
        fn()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts) * 1e6)
    return {"cpu": run_metadata().get("machine"), "cpu_count": os.cpu_count(),
            "loadavg": list(os.getloadavg()),
            "validation_us": median_us(validate), "hard_bits_us": median_us(lambda: (llr < 0).astype(np.uint8)),
            "data_index_us": median_us(lambda: c.data_index)}


def physical_limit_report(out: Path) -> dict:
    base = physical_limit()
    cal = calibrate_spec()
    scenarios = {}
    for name, kw in {
        "as in the code (P=8, the default 12 iterations for 16QAM, windowed operator)": {},
        "8 iterations (no measurable BER cost at this grid, cg_iterations_paper_*.json)": {"iterations": 8},
        "exact operator (as in the H100 run), 12 iterations": {"window": 0},
        "exact operator, 8 iterations": {"window": 0, "iterations": 8},
        "6 iterations": {"iterations": 6},
        "4 iterations": {"iterations": 4},
        "P=8, 6 iterations, C_p and b_p in 16-bit": {"iterations": 6, "bytes_per_coeff": 4},
        "P=8, 4 iterations, 16-bit, int8 LLRs": {"iterations": 4, "bytes_per_coeff": 4, "llr_bytes": 1},
        "design Doppler 469 Hz (1 bin, P=5), 6 iterations": {"max_doppler_hz": 468.75, "iterations": 6},
        "P=3 (the spec's 3-term basis), 8 iterations": {"P": 3, "iterations": 8},
        "P=3, 6 iterations, 16-bit, int8 LLRs": {"P": 3, "iterations": 6, "bytes_per_coeff": 4, "llr_bytes": 1},
        "P=8, 6 iterations, 16-bit, int8 LLRs, per frame in a batch of 8 sharing b_p "
        "(the batch's latency is 8x)":
            {"iterations": 6, "bytes_per_coeff": 4, "basis_shared_by": 8, "llr_bytes": 1},
    }.items():
        r = physical_limit(**kw)
        scenarios[name] = {"P": r["P"], "iterations": r["iterations"], "fused_total_us": r["totals"]["fused"]["total_us"],
                           "fused_device_us": r["totals"]["fused"]["device_us"],
                           "fused_per_iteration_us": r["per_iteration"]["fused_us"]}
    eff = cal["efficiency"]
    extrapolated = base["per_iteration"]["as_written_us"] / eff
    result = {"headline": base, "spec_calibration": cal, "h100_calibration": calibrate_measured(),
              "host_side_measured": host_side_costs(),
              "as_written_iteration_extrapolated_us": extrapolated, "scenarios": scenarios,
              "target_p999_us": 500.0}
    write_json(out, result)
    return result


def print_physical_limit(r: dict, file=None) -> None:
    file = file or sys.stdout
    h = r["headline"]
    print(f"grid {h['grid']}: L = {h['L']}, P = {h['P']}, {h['segments']} windows of {h['window']}, "
          f"{h['iterations']} CG iterations; 1 U = {h['U_bytes'] / 1e6:.2f} MB", file=file)
    print(f"{'stage':44s} {'GFLOP':>7s} {'HBM MB (code)':>14s} {'HBM MB (fused)':>15s} "
          f"{'dev us code':>11s} {'dev us fused':>12s} {'link us code':>13s} {'link us fused':>13s}", file=file)
    for st in h["stages"]:
        a, f = st["as_written"], st["fused"]
        print(f"{st['stage']:44s} {st['flops'] / 1e9:7.3f} {a['hbm_bytes'] / 1e6:14.1f} {f['hbm_bytes'] / 1e6:15.1f} "
              f"{a['device_us']:11.1f} {f['device_us']:12.1f} {a['link_us'][0]:6.0f}-{a['link_us'][1]:<6.0f} "
              f"{f['link_us'][0]:6.0f}-{f['link_us'][1]:<6.0f}", file=file)
    for kind in ("as_written", "fused"):
        t = h["totals"][kind]
        print(f"total {kind}: device {t['device_us']:.0f} us + link {t['link_us'][0]:.0f}-{t['link_us'][1]:.0f} us "
              f"= {t['total_us'][0]:.0f}-{t['total_us'][1]:.0f} us (deadline {h['deadline_us']:.0f} us)", file=file)
    pi = h["per_iteration"]
    print(f"per CG iteration: code {pi['as_written_hbm_bytes'] / 1e6:.0f} MB -> {pi['as_written_us']:.0f} us, "
          f"fused {pi['fused_hbm_bytes'] / 1e6:.0f} MB -> {pi['fused_us']:.0f} us, flops {pi['flops'] / 1e9:.2f} GFLOP "
          f"-> {pi['flops_us']:.0f} us", file=file)
    cal = r["spec_calibration"]
    print(f"spec calibration (P=3, circulant): model bound {cal['bound_us']:.0f} us vs measured 420 us -> "
          f"{cal['efficiency'] * 100:.0f} % of HBM peak; this code's iteration at that efficiency: "
          f"~{r['as_written_iteration_extrapolated_us']:.0f} us (extrapolated, not measured)", file=file)
    m = r.get("h100_calibration")
    if m:
        print(f"H100 calibration ({m['device']}, {m['commit'][:7]}): the exact operator's apply + adjoint "
              f"{m['exact_normal_us_measured']:.0f} us measured, {m['efficiency'] * 100:.0f} % of HBM peak; "
              f"windowed normal product (Lw = {m['operator_window']}): bound {m['windowed_normal_us']['bound']:.0f} us, "
              f"predicted {m['windowed_normal_us']['predicted']:.0f} us at that efficiency", file=file)
    hs = r["host_side_measured"]
    print(f"host side per frame, measured on this CPU (load {hs['loadavg'][0]:.1f}): validation "
          f"{hs['validation_us']:.0f} us, hard bits {hs['hard_bits_us']:.0f} us, data index {hs['data_index_us']:.0f} us",
          file=file)
    for name, s in r["scenarios"].items():
        print(f"  {name[:70]:70s} fused {s['fused_total_us'][0]:.0f}-{s['fused_total_us'][1]:.0f} us "
              f"(iteration {s['fused_per_iteration_us']:.0f} us)", file=file)
