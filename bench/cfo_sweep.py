"""BER against the carrier-frequency offset, with the receiver's pilot CFO correction
(``zakotfs.cfo``) on and off, on the same frames, beside perfect CSI (whose operator holds
the offset). Frames: the sample-level Veh-A emulator, a new realisation each frame, the
same realisations, bits and noise at every offset, so the offset is the only difference.

    python -m bench.cfo_sweep --preset demo --snr 25 --frames 8 \\
        --json bench/results/cfo_sweep_demo.json          # and cfo_sweep_demo.png beside it

The correction's range is +-nu_p / 2 (7.5 kHz at nu_p = 15 kHz), the offset plus the
channel's Doppler centroid: the sweep's default offsets run to 7.4 kHz.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.operator_accuracy import veh_a_frames
from zakotfs import preset
from zakotfs.benchmark import run_metadata, write_json
from zakotfs.receiver import Receiver

RECEIVERS = {           # name: (estimator, cfo_correction)
    "accurate, CFO removed": ("accurate", True),
    "accurate, CFO ignored": ("accurate", False),
    "paper, CFO removed": ("paper", True),
    "paper, CFO ignored": ("paper", False),
    "perfect CSI": ("perfect", False),
}


def sweep(args, config) -> dict:
    """{receiver name: {"ber": [...], "bit_errors": [...]}} over ``args.offsets`` (Hz)."""
    receivers = {name: Receiver(config, backend=args.backend, estimator=est, cfo_correction=on, quiet=True)
                 for name, (est, on) in RECEIVERS.items()}
    rows = {name: {"ber": [], "bit_errors": [], "cfo_removed_hz_p50": []} for name in receivers}
    n_bits = args.frames * config.bits_per_frame
    for k, cfo in enumerate(args.offsets):
        errors = dict.fromkeys(receivers, 0)
        removed = {name: [] for name in receivers}
        for bits, rx, truth, noise_var in veh_a_frames(config, args.snr, args.doppler_hz, args.frames,
                                                       args.seed, cfo_hz=cfo):
            for name, receiver in receivers.items():
                perfect = dict(operator=truth, noise_var=noise_var) if receiver.estimator is None else {}
                result = receiver.process(rx, **perfect)
                errors[name] += int(np.count_nonzero(result.bits != bits))
                removed[name] += result.cfo_hz.tolist()
        for name in receivers:
            rows[name]["bit_errors"].append(errors[name])
            rows[name]["ber"].append(errors[name] / n_bits)
            rows[name]["cfo_removed_hz_p50"].append(float(np.median(removed[name])))
        print(f"[{k + 1}/{len(args.offsets)}] CFO {cfo:+8.0f} Hz: "
              + ", ".join(f"{name} {errors[name] / n_bits:.2e}" for name in receivers), file=sys.stderr, flush=True)
    return {"cfo_hz": list(args.offsets), "bits_per_point": n_bits, "receivers": rows,
            "correction_range_hz": config.nu_p / 2}


def plot(result: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    floor = 0.5 / result["bits_per_point"]             # where a point has no errors
    for name, row in result["receivers"].items():
        style = "--" if "ignored" in name else ("k:" if name == "perfect CSI" else "-")
        ax.semilogy(np.asarray(result["cfo_hz"]) / 1e3, np.maximum(row["ber"], floor), style, marker="o",
                    markersize=3, label=name)
    for edge in (-1, 1):
        ax.axvline(edge * result["correction_range_hz"] / 1e3, color="grey", lw=0.8)
    ax.set_xlabel("carrier-frequency offset (kHz)")
    ax.set_ylabel("BER")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo")
    p.add_argument("--mod")
    p.add_argument("--snr", type=float, default=25.0)
    p.add_argument("--doppler-hz", type=float, default=815.0)
    p.add_argument("--offsets", default="-7400,-6000,-4000,-2000,-1000,-500,0,500,1000,2000,4000,6000,7400",
                   help="carrier offsets in Hz, comma-separated")
    p.add_argument("--frames", type=int, default=8, help="frames (realisations) per offset")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--backend", default="cpu", choices=["auto", "cpu", "gpu"])
    p.add_argument("--json", required=True, help="output JSON (the PNG goes beside it)")
    args = p.parse_args(argv)
    args.offsets = [float(x) for x in args.offsets.split(",")]
    config = preset(args.preset, **({"modulation": args.mod} if args.mod else {}))
    result = sweep(args, config)
    out = {**run_metadata(sys.argv, Receiver(config, backend=args.backend, quiet=True).backend),
           "preset": args.preset, "config": config.to_dict(), "snr_db": args.snr, "nu_max_hz": args.doppler_hz,
           "frames_per_offset": args.frames, "seed": args.seed, **result}
    write_json(args.json, out)
    title = (f"{args.preset} {config.M}x{config.N}, {config.modulation}, Veh-A {args.doppler_hz:g} Hz, "
             f"{args.snr:g} dB, {args.frames} realisations per offset")
    plot(out, Path(args.json).with_suffix(".png"), title)
    print(f"wrote {args.json} and {Path(args.json).with_suffix('.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
