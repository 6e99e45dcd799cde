"""The receiver against the exact LMMSE on the same received frames, per grid.

Each realisation draws a Veh-A channel (Rayleigh gains, one Doppler per path of at most
``--doppler-hz``), sends ``--batch`` frames through the physical emulator
(``channel_models``) after ``--batch`` frame-lengths of noise, and decodes them with

``rx``       the stream acquirer (``streaming.acquisition``) and the ``accurate`` receiver
             with ``zakotfs rx``'s options: what the command line does;
``known``    the same receiver on the frames at their true timing (CP start);
``perfect``  the project's receiver with the emulator's exact channel and N0;
``cg_unit``  converged PCG on the receiver's formulation (unit prior on every time sample);
``cg_data``  converged PCG with the data-only prior (zero variance on guard and pilot);
``exact``    the reference: the dense LMMSE with the data-only prior, per-symbol bias,
             x_hat = (H_d^H H_d + N0 I)^{-1} H_d^H (r - H s_p), H_d the exact circular
             channel's columns at the data positions; on grids over ``--dense-limit``
             unknowns, ``cg_data`` stands in for it.

Both converged solutions are unbiased by the frame's mu = mean |x_hat|^2 over the data
(E|x_hat|^2 = mu for any LMMSE estimate of unit-power symbols). Hard decisions are the
nearest constellation point. Every SNR runs the same channel realisations and bits (only
the noise scales), so that the curves are monotone. A gap is the SNR loss of a receiver read on the reference's
own BER curve: gap = SNR - SNR_ref(BER), SNR_ref the reference curve's SNR at that BER
(log-linear interpolation, ``reference_snr``). The reference runs at ``--ref-snr`` too,
so that its curve covers the receivers' BER. A missed frame counts half its bits in error.

    python -m bench.reference_gap --grids 64x32,tiny,128x16 --realisations 12 --batch 4
    python -m bench.reference_gap --grids demo --realisations 4 --batch 2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths, draw_paths
from channel_models.profiles import load_profile
from streaming.acquisition import acquire
from zakotfs import FrameBuilder, design, preset, random_bits
from zakotfs.benchmark import run_metadata, write_json
from zakotfs.channel_operator import ChannelOperator
from zakotfs.equalizer import cg_lmmse, default_segments, local_fourier_preconditioner
from zakotfs.exact_channel import exact_operator
from zakotfs.frame import pilot_grid
from zakotfs.modulation import constellation
from zakotfs.receiver import Receiver
from zakotfs.zak_transform import inverse_zak, zak

GRIDS = {
    "64x32": lambda: design(64, 32, 0.96e6, name="64x32"),
    "tiny": lambda: preset("tiny"),
    "128x16": lambda: design(128, 16, 1.92e6, name="128x16"),
    "demo": lambda: preset("demo"),
}
"""The grids compared: 64x32 at 0.96 MHz, ``tiny`` (64x32 at 3.84 MHz), 128x16 at 1.92
MHz (the CPU real-time target) and the demo grid (1024x16 at 15.36 MHz)."""

RECEIVERS = ("rx", "known", "perfect", "cg_unit", "cg_data", "exact")


def hard_bits(config, x):
    """complex [..., n] symbols -> uint8 [..., n q]: the bits of the nearest constellation point."""
    con = constellation(config.modulation)
    index = np.argmin(np.abs(x[..., None] - con.points), axis=-1)
    shifts = np.arange(con.q - 1, -1, -1)
    return ((index[..., None] >> shifts) & 1).astype(np.uint8).reshape(*x.shape[:-1], -1)


def dense_time_matrix(op: ChannelOperator) -> np.ndarray:
    """complex [L, L]: H[q, q'] = sum_p b_p[q] c_p[(q - q') mod L] of a one-frame operator."""
    L = op.L
    taps = np.fft.ifft(np.asarray(op.taps_fft[0], complex), axis=-1)               # [P, L]
    basis = np.asarray(op.basis[0], complex)
    lag = (np.arange(L)[:, None] - np.arange(L)[None, :]) % L
    H = np.zeros((L, L), complex)
    for b, c in zip(basis, taps):
        H += b[:, None] * c[lag]
    return H


def dd_columns(config, H: np.ndarray) -> np.ndarray:
    """complex [L, MN]: H Z^{-1}, column k N + l the response to the DD impulse at (k, l)
    (``inverse_zak``: s[k + nM] = e^{j2pi nl/N} / sqrt(N))."""
    M, N = config.M, config.N
    cols = np.fft.ifft(H.reshape(-1, N, M), axis=1, norm="ortho")                  # [L, l, k]
    return cols.transpose(0, 2, 1).reshape(-1, M * N)


def exact_lmmse(config, op: ChannelOperator, r: np.ndarray, noise_var: float) -> np.ndarray:
    """complex [n_data]: the dense data-only-prior LMMSE of one frame, each symbol divided by
    its bias mu_i = 1 - N0 [(H_d^H H_d + N0 I)^{-1}]_ii."""
    import scipy.linalg

    H_d = dd_columns(config, dense_time_matrix(op))[:, config.data_index]
    y = r - op.apply(inverse_zak(pilot_grid(config))[None])[0]
    A = H_d.conj().T @ H_d + noise_var * np.eye(H_d.shape[1])
    factor = scipy.linalg.cho_factor(A)
    x = scipy.linalg.cho_solve(factor, H_d.conj().T @ y)
    inv_factor = scipy.linalg.solve_triangular(factor[0], np.eye(A.shape[0]), lower=factor[1])
    inv_diag = (np.abs(inv_factor) ** 2).sum(axis=1 if not factor[1] else 0)
    return x / (1 - noise_var * inv_diag)


def converged_lmmse(config, op: ChannelOperator, r: np.ndarray, noise_var: float, *, data_only: bool,
                    tolerance: float = 1e-7, max_iterations: int = 3000) -> tuple[np.ndarray, int]:
    """(complex [F, n_data], iterations): the LMMSE solved by PCG to ``tolerance`` relative
    residual, x_hat / mu with mu = mean |x_hat|^2 per frame.

    ``data_only``: (P H^H H P + N0 I) s = P H^H y on the time samples q whose delay bin
    q mod M carries data (P that mask), with the receiver's local Fourier preconditioner
    restricted to them; else the receiver's (H^H H + N0 I) s = H^H y."""
    F, L = r.shape
    n0 = np.full(F, noise_var)
    y = r - op.apply(np.broadcast_to(inverse_zak(pilot_grid(config)), r.shape))
    if not data_only:
        segments = default_segments(L, sum(config.tap_window) + 1, 1.0)
        s = cg_lmmse(op, y, n0, 64, segments).s
        iterations = 64
    else:
        mask = np.tile(config.delay_is_data, config.N)[None]
        precond = local_fourier_preconditioner(op, n0, default_segments(L, sum(config.tap_window) + 1, 1.0))
        normal = lambda v: mask * op.normal(mask * v, np.zeros(F)) + noise_var * v   # noqa: E731
        apply_m = lambda v: mask * precond(mask * v)                                    # noqa: E731
        b = mask * op.adjoint(y)
        s, res = np.zeros_like(b), b.copy()
        z = apply_m(res)
        p, rz = z, np.vdot(res, z).real
        norm_b = np.linalg.norm(b)
        for iterations in range(1, max_iterations + 1):
            Ap = normal(p)
            alpha = rz / np.vdot(p, Ap).real
            s, res = s + alpha * p, res - alpha * Ap
            if np.linalg.norm(res) <= tolerance * norm_b:
                break
            z = apply_m(res)
            rz_next = np.vdot(res, z).real
            p, rz = z + rz_next / rz * p, rz_next
    x = zak(s, config.M, config.N).reshape(F, -1)[:, config.data_index]
    return x / np.mean(np.abs(x) ** 2, axis=-1, keepdims=True), iterations


@dataclass
class Emulated:
    """One channel realisation's frames through the physical emulator."""

    bits: np.ndarray        # uint8 [F, bits_per_frame] sent
    stream: np.ndarray      # complex64 [n] received: F frame-lengths of noise, then the F frames
    starts: np.ndarray      # int [F]: the stream index of each frame's first CP sample
    paths: FramePaths       # the exact channel of each frame (q = 0 after the CP), [F] stacked

    def frames(self, config, shift: int = 0) -> np.ndarray:
        """complex64 [F, cp_len + MN]: the frames placed ``shift`` samples late."""
        return np.stack([self.stream[s + shift:s + shift + config.cp_len + config.MN] for s in self.starts])


def emulate(config, snr_db: float, rng, *, batch: int, doppler_hz: float = 815.0) -> Emulated:
    """``batch`` frames of random bits through a Veh-A realisation (``draw_paths``: Rayleigh
    gains, one Doppler per path up to ``doppler_hz``) at Es/N0 ``snr_db``."""
    paths = draw_paths(load_profile("veh-a"), doppler_hz, rng)
    bits = random_bits(config, batch, rng)
    spf, lead = config.samples_per_frame, batch * config.samples_per_frame
    tx = np.concatenate([np.zeros(lead, np.complex64), FrameBuilder(config).stream(bits)])
    em = ChannelEmulator(paths, config.bandwidth, noise_var=10 ** (-snr_db / 10), seed=int(rng.integers(2**31)))
    stream = np.concatenate([em.process(tx), em.flush()])
    starts = lead + np.arange(batch) * spf + config.preamble_len
    return Emulated(bits, stream, starts, FramePaths.stack([em.frame_paths(s + config.cp_len) for s in starts]))


def run_realisation(config, receivers, snr_db, rng, *, batch, doppler_hz, reference):
    """Errors of every receiver on one channel realisation's ``batch`` frames at ``snr_db``;
    ``reference`` only: the exact reference alone (its curve's extra SNR points)."""
    noise_var = 10 ** (-snr_db / 10)
    em = emulate(config, snr_db, rng, batch=batch, doppler_hz=doppler_hz)
    bits, stream, spf = em.bits, em.stream, config.samples_per_frame
    lead = em.starts[0] - config.preamble_len
    frames = em.frames(config)
    stacked = exact_operator(em.paths, config.MN)
    r = frames[:, config.cp_len:].astype(complex)
    errors = {}
    if config.MN <= receivers["dense_limit"]:
        x = np.stack([exact_lmmse(config, ChannelOperator(stacked.basis[f:f + 1], stacked.taps_fft[f:f + 1]),
                                  r[f], noise_var) for f in range(batch)])
        errors["exact"] = int(np.count_nonzero(hard_bits(config, x) != bits))
        if reference:
            return errors, 0, {}
    x, iterations = converged_lmmse(config, stacked, r, noise_var, data_only=True)
    errors["cg_data"] = int(np.count_nonzero(hard_bits(config, x) != bits))
    errors.setdefault("exact", errors["cg_data"])
    if reference:
        return {"exact": errors["exact"]}, 0, {"cg_data_iterations": iterations}
    x, _ = converged_lmmse(config, stacked, r, noise_var, data_only=False)
    errors["cg_unit"] = int(np.count_nonzero(hard_bits(config, x) != bits))
    errors["perfect"] = int(np.count_nonzero(
        receivers["perfect"].process(frames, operator=stacked, noise_var=noise_var).bits != bits))
    errors["known"] = int(np.count_nonzero(receivers["estimated"].process(frames).bits != bits))
    acquired, metas = acquire(stream, config)
    slot = [int(round((m["start"] - lead - config.preamble_len) / spf)) for m in metas]
    found = [(f, k) for k, f in enumerate(slot) if 0 <= f < batch]
    missed = batch - len({f for f, _ in found})
    errors["rx"] = missed * bits.shape[1] // 2
    if found:
        rx_bits = receivers["estimated"].process(acquired[[k for _, k in found]]).bits
        errors["rx"] += int(np.count_nonzero(rx_bits != bits[[f for f, _ in found]]))
    timing = [m["start"] - (lead + f * spf + config.preamble_len) for f, m in zip(slot, metas) if 0 <= f < batch]
    return errors, missed, {"timing_offsets": timing, "cg_data_iterations": iterations}


def reference_snr(snr_db, ber, target):
    """The SNR (dB) where the curve (snr_db ascending, ber) reaches ``target``: log-linear
    interpolation between its points, extrapolated along the end segments; None where the
    curve has no errors to read."""
    snr_db, ber = np.asarray(snr_db, float), np.asarray(ber, float)
    keep = ber > 0
    if target <= 0 or keep.sum() < 2:
        return None
    s, log_b = snr_db[keep], np.log10(ber[keep])
    i = int(np.clip(np.searchsorted(-log_b, -np.log10(target)), 1, s.size - 1))
    t = (log_b[i - 1] - np.log10(target)) / (log_b[i - 1] - log_b[i])
    return float(s[i - 1] + t * (s[i] - s[i - 1]))


def run_grid(name, args, started):
    config = GRIDS[name]()
    options = {"timing_backoff": args.backoff, "estimate_passes": args.passes}
    estimated = Receiver(config, backend="cpu", estimator="accurate", quiet=True,
                         **{k: v for k, v in options.items() if v is not None})
    receivers = {"estimated": estimated, "dense_limit": args.dense_limit,
                 "perfect": Receiver(config, backend="cpu", estimator="perfect", quiet=True)}
    snrs = sorted(set(args.snr) | set(args.ref_snr))
    points = []
    for snr in snrs:
        reference = snr not in args.snr
        rng = np.random.default_rng(args.seed)          # the same channels and bits at every SNR
        total = dict.fromkeys(RECEIVERS, 0)
        missed, extra = 0, {"timing_offsets": [], "cg_data_iterations": []}
        for _ in range(args.realisations):
            errors, miss, more = run_realisation(config, receivers, snr, rng, batch=args.batch,
                                                 doppler_hz=args.doppler_hz, reference=reference)
            for k, v in errors.items():
                total[k] += v
            missed += miss
            extra["timing_offsets"] += more.get("timing_offsets", [])
            extra["cg_data_iterations"].append(more.get("cg_data_iterations", 0))
        n_bits = args.realisations * args.batch * config.bits_per_frame
        ran = ("exact",) if reference else RECEIVERS
        ber = {k: total[k] / n_bits for k in ran}
        points.append({"snr_db": snr, "frames": args.realisations * args.batch, "bits": n_bits,
                       "errors": {k: total[k] for k in ber}, "ber": ber, "missed_frames": missed,
                       "timing_offsets": extra["timing_offsets"],
                       "cg_data_iterations_max": max(extra["cg_data_iterations"])})
        print(f"[{time.time() - started:6.0f} s] {name} {snr:5.1f} dB: "
              + " ".join(f"{k} {v:.2e}" for k, v in ber.items()) + f" missed {missed}", flush=True)
    curve = ([p["snr_db"] for p in points], [p["ber"]["exact"] for p in points])
    for p in points:
        if p["snr_db"] in args.snr:
            p["gap_db"] = {}
            for k in RECEIVERS:
                at = reference_snr(*curve, p["ber"][k])
                p["gap_db"][k] = None if at is None else p["snr_db"] - at
            g = p["gap_db"]
            p["split_db"] = {"timing": _diff(g["rx"], g["known"]), "estimate": _diff(g["known"], g["perfect"]),
                             "equaliser": g["perfect"], "of_which_prior": _diff(g["cg_unit"], g["cg_data"])}
            print(f"    gap (dB): " + " ".join(f"{k} {v:+.2f}" for k, v in g.items() if v is not None)
                  + "; split: " + " ".join(f"{k} {v:+.2f}" for k, v in p["split_db"].items() if v is not None))
    return {"grid": name, "config": config.to_dict(), "reference": "exact" if config.MN <= args.dense_limit
            else "cg_data", "points": points}


def _diff(a, b):
    return None if a is None or b is None else a - b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", default="64x32,tiny,128x16")
    ap.add_argument("--snr", default="15,20,25", help="receivers' SNRs (dB), comma separated")
    ap.add_argument("--ref-snr", default="7.5,10,12.5,17.5,22.5", help="the reference's extra SNRs (dB)")
    ap.add_argument("--realisations", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4, help="frames per realisation")
    ap.add_argument("--doppler-hz", type=float, default=815.0)
    ap.add_argument("--dense-limit", type=int, default=4096, help="largest MN for the dense reference")
    ap.add_argument("--backoff", type=int, default=None, help="the receiver's timing back-off (default: its own)")
    ap.add_argument("--passes", type=int, default=None, help="the receiver's estimate passes (default: its own)")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--replot", action="store_true", help="only redraw the PNG from --out")
    ap.add_argument("--out", default="bench/results/reference_gap.json")
    args = ap.parse_args(argv)
    if args.replot:
        plot(json.loads(open(args.out).read()), args.out.replace(".json", ".png"))
        return 0
    args.snr = [float(s) for s in args.snr.split(",")]
    args.ref_snr = [float(s) for s in args.ref_snr.split(",")] if args.ref_snr else []
    report = run_metadata(sys.argv)
    report.update(doppler_hz=args.doppler_hz, realisations=args.realisations, batch=args.batch,
                  backoff=args.backoff, passes=args.passes, grids=[])
    started = time.time()
    for name in args.grids.split(","):
        report["grids"].append(run_grid(name, args, started))
        write_json(args.out, report)
    plot(report, args.out.replace(".json", ".png"))
    print(f"wrote {args.out}")
    return 0


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = report["grids"]
    fig, axes = plt.subplots(1, len(grids), figsize=(4.5 * len(grids), 4), squeeze=False)
    styles = {"rx": ("C3", "o"), "known": ("C1", "s"), "perfect": ("C0", "^"), "cg_unit": ("C2", "v"),
              "cg_data": ("C4", "x"), "exact": ("k", ".")}
    for ax, grid in zip(axes[0], grids):
        for name, (colour, marker) in styles.items():
            pts = [p for p in grid["points"] if name in p["ber"]]
            label = name if name != "exact" or grid["reference"] == "exact" else "reference (cg_data)"
            ax.semilogy([p["snr_db"] for p in pts], [p["ber"][name] or np.nan for p in pts], color=colour,
                        marker=marker, ms=4, label=label)
        c = grid["config"]
        ax.set_title(f"{grid['grid']}: {c['M']}x{c['N']}, {c['bandwidth'] / 1e6:g} MHz")
        ax.set_xlabel("Es/N0 (dB)")
        ax.set_ylabel("BER")
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
