"""BER vs SNR on the physical sample-level channel: estimated CSI (paper and accurate modes),
perfect CSI (the exact channel from the emulator) and AWGN theory.

Every point runs the three receivers on the same received frames; each batch draws a new
channel realisation. A point stops at ``--min-errors`` bit errors of the perfect-CSI
receiver (after at least ``--min-frames``, a new channel every ``--batch`` frames: the
channel is block fading, so a point needs many realisations) or at ``--max-frames``. Writes JSON (with the command, date, commit, device) and a
PNG beside it, and reports the SNR at BER 1e-3 of each receiver and the accurate and paper
modes' gaps to perfect CSI there.

    python bench/ber_curves.py --preset demo --mods qpsk,16qam,64qam --doppler-bins 1.74,3.5
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from zakotfs.benchmark import run_metadata, write_json
from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths, draw_paths
from channel_models.profiles import load_profile
from zakotfs import FrameBuilder, awgn_ber, preset, random_bits
from zakotfs.exact_channel import exact_operator
from zakotfs.receiver import Receiver

ESTIMATORS = ("perfect", "accurate", "paper")


def snr_at_ber(snr_db, ber, target=1e-3):
    """SNR where the BER curve crosses ``target`` (log-linear interpolation), or None."""
    snr_db, ber = np.asarray(snr_db, float), np.asarray(ber, float)
    for i in range(len(ber) - 1):
        if ber[i] >= target > ber[i + 1] and ber[i + 1] > 0:
            t = (np.log10(ber[i]) - np.log10(target)) / (np.log10(ber[i]) - np.log10(ber[i + 1]))
            return float(snr_db[i] + t * (snr_db[i + 1] - snr_db[i]))
        if ber[i] >= target and ber[i + 1] == 0:
            return float(snr_db[i + 1])
    return None


def simulate_point(config, receivers, nu_max, snr_db, *, batch, min_errors, min_frames, max_frames, seed):
    builder = FrameBuilder(config)
    noise_var = 10 ** (-snr_db / 10)
    errors = dict.fromkeys(receivers, 0)
    bits_total = frames = 0
    rng = np.random.default_rng(seed)
    while frames < min_frames or (frames < max_frames and errors["perfect"] < min_errors):
        paths = draw_paths(load_profile("veh-a"), nu_max, rng)
        bits = random_bits(config, batch, rng)
        tx = builder.stream(bits)
        em = ChannelEmulator(paths, config.bandwidth, noise_var=noise_var, seed=int(rng.integers(2**31)))
        rx = np.concatenate([em.process(tx), em.flush()])[:tx.size].reshape(batch, -1)[:, config.preamble_len:]
        fp = FramePaths.stack([em.frame_paths(f * config.samples_per_frame + config.preamble_len + config.cp_len)
                               for f in range(batch)])
        truth = exact_operator(fp, config.MN)
        for name, receiver in receivers.items():
            perfect = dict(operator=truth, noise_var=noise_var) if name == "perfect" else {}
            errors[name] += int(np.count_nonzero(receiver.process(rx, **perfect).bits != bits))
        bits_total += bits.size
        frames += batch
    return {"snr_db": snr_db, "frames": frames, "bits": bits_total, "errors": errors,
            "ber": {k: v / bits_total for k, v in errors.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--mods", default="qpsk,16qam,64qam")
    ap.add_argument("--doppler-bins", default="1.74,3.5", help="nu_max T, comma separated")
    ap.add_argument("--snr", default=None, help="start:stop:step in dB (default per modulation)")
    ap.add_argument("--batch", type=int, default=2, help="frames per channel realisation")
    ap.add_argument("--min-frames", type=int, default=24)
    ap.add_argument("--min-errors", type=int, default=300)
    ap.add_argument("--max-frames", type=int, default=40)
    ap.add_argument("--cg-iterations", type=int, default=None, help="default: the receiver's, by modulation")
    ap.add_argument("--replot", action="store_true", help="only redraw the PNG from --out")
    ap.add_argument("--out", default="bench/results/ber_curves.json")
    args = ap.parse_args(argv)
    if args.replot:
        plot(json.loads(open(args.out).read()), args.out.replace(".json", ".png"))
        return 0
    default_snr = {"qpsk": (4, 22, 2), "16qam": (10, 30, 2), "64qam": (16, 36, 2), "256qam": (22, 42, 2)}
    report = run_metadata(sys.argv)
    report.update(curves=[], preset=args.preset)
    started = time.time()
    for modulation in args.mods.split(","):
        config = preset(args.preset, modulation=modulation)
        report.setdefault("configs", {})[modulation] = config.to_dict()
        lo, hi, step = (map(float, args.snr.split(":")) if args.snr else default_snr[modulation])
        snrs = np.arange(lo, hi + step / 2, step)
        for bins in map(float, args.doppler_bins.split(",")):
            nu_max = bins / config.frame_time
            receivers = {name: Receiver(config, backend="cpu", estimator=name, quiet=True,
                                        max_doppler_hz=1.15 * nu_max, cg_iterations=args.cg_iterations)
                         for name in ESTIMATORS}
            points = []
            for snr in snrs:
                point = simulate_point(config, receivers, nu_max, float(snr), batch=args.batch,
                                       min_errors=args.min_errors, min_frames=args.min_frames,
                                       max_frames=args.max_frames,
                                       seed=int(1000 * bins + snr))
                points.append(point)
                print(f"[{time.time() - started:7.0f} s] {modulation} {bins} bins {snr:5.1f} dB: "
                      + " ".join(f"{k} {v:.2e}" for k, v in point["ber"].items())
                      + f" ({point['bits']} bits)", flush=True)
                if point["errors"]["perfect"] == 0 and point["errors"]["accurate"] == 0:
                    break
            at_1e3 = {k: snr_at_ber([p["snr_db"] for p in points], [p["ber"][k] for p in points])
                      for k in ESTIMATORS}
            gap = {k: (at_1e3[k] - at_1e3["perfect"]) if None not in (at_1e3[k], at_1e3["perfect"]) else None
                   for k in ("accurate", "paper")}
            report["curves"].append({"modulation": modulation, "doppler_bins": bins, "nu_max_hz": nu_max,
                                     "cg_iterations": receivers["accurate"].cg_iterations,
                                     "max_doppler_hz": 1.15 * nu_max,
                                     "points": points, "snr_at_ber_1e-3": at_1e3, "gap_db_at_1e-3": gap,
                                     "awgn": {f"{s:g}": float(awgn_ber(modulation, s)) for s in snrs}})
            print(f"   SNR at BER 1e-3: {at_1e3}; gap to perfect CSI: {gap}", flush=True)
    write_json(args.out, report)
    plot(report, args.out.replace(".json", ".png"))
    print(f"wrote {args.out}")
    return 0


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = list(dict.fromkeys(c["modulation"] for c in report["curves"]))
    fig, axes = plt.subplots(1, len(mods), figsize=(5.5 * len(mods), 4.5), squeeze=False)
    colours = {"perfect": "k", "accurate": "C0", "paper": "C3"}
    for ax, mod in zip(axes[0], mods):
        curves = [c for c in report["curves"] if c["modulation"] == mod]
        for k, curve in enumerate(curves):
            snr = [p["snr_db"] for p in curve["points"]]
            for name in ESTIMATORS:
                ber = [p["ber"][name] if p["ber"][name] > 0 else np.nan for p in curve["points"]]
                ax.semilogy(snr, ber, color=colours[name], linestyle="-" if k == 0 else "--", marker="o", ms=3,
                            label=f"{name}, {curve['doppler_bins']:g} bins")
        theory = next(c for c in report["curves"] if c["modulation"] == mod)["awgn"]
        ax.semilogy([float(s) for s in theory], list(theory.values()), "g:", label="AWGN theory")
        ax.axhline(1e-3, color="grey", lw=0.5)
        ax.set_ylim(1e-6, 0.5)
        ax.set_xlabel("Es/N0 (dB)")
        ax.set_ylabel("BER")
        ax.set_title(f"{mod}, Veh-A, {report['preset']} grid")
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
