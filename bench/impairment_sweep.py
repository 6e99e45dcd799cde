"""BER against a front-end impairment, with the receiver's correction on and off, on the
same frames, beside perfect CSI. Frames: the sample-level Veh-A emulator, a new
realisation each frame, the same realisations, bits and noise at every point, so the
impairment is the only difference.

``cfo``: a carrier-frequency offset (Hz), removed by the pilot's estimate (``zakotfs.cfo``,
    range +-nu_p / 2 for the offset plus the channel's Doppler centroid); perfect CSI's
    operator holds the offset.
``sco``: a sample-clock offset (ppm; the stream is read at (1 + epsilon) t), undone by
    resampling each frame when the receiver is given it (``zakotfs.sco``); perfect CSI is
    given it too.
``adc``: the received frame read through a fixed-point ADC (``streaming.sample_format``:
    ci8, an 8-bit SDR such as a HackRF, and ci16_le, a USRP's sc16) whose full scale stands
    this many dB over the frame's largest I or Q (negative: the peaks clip), against the
    float samples.

    python -m bench.impairment_sweep cfo --preset demo --snr 25 --frames 8 \\
        --json bench/results/cfo_sweep_demo.json          # and cfo_sweep_demo.png beside it
    python -m bench.impairment_sweep sco --preset paper --snr 20 --frames 3 \\
        --json bench/results/sco_sweep_paper.json
    python -m bench.impairment_sweep adc --preset demo --snr 25 --frames 8 \\
        --json bench/results/adc_sweep_demo.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.operator_accuracy import veh_a_frames
from streaming.sample_format import sample_format
from zakotfs import preset
from zakotfs.benchmark import run_metadata, write_json
from zakotfs.receiver import Receiver

IMPAIRMENTS = {
    # name: (unit, default points, frame keyword or None,
    #        {receiver name: (estimator, options at point v, ADC sample format or None)})
    "cfo": ("Hz", "-7400,-6000,-4000,-2000,-1000,-500,0,500,1000,2000,4000,6000,7400", "cfo_hz", {
        "accurate, CFO removed": ("accurate", lambda v: {}, None),
        "accurate, CFO ignored": ("accurate", lambda v: {"cfo_correction": False}, None),
        "paper, CFO removed": ("paper", lambda v: {}, None),
        "paper, CFO ignored": ("paper", lambda v: {"cfo_correction": False}, None),
        "perfect CSI": ("perfect", lambda v: {}, None),
    }),
    "sco": ("ppm", "0,0.5,1,2,5,10,20,50", "sco_ppm", {
        "accurate, clock undone": ("accurate", lambda v: {"sample_clock_ppm": v}, None),
        "accurate, clock ignored": ("accurate", lambda v: {}, None),
        "perfect CSI, clock undone": ("perfect", lambda v: {"sample_clock_ppm": v}, None),
    }),
    "adc": ("dB", "-9,-6,-3,0,3,6,9,12,18", None, {
        "accurate, ci8": ("accurate", lambda v: {}, "ci8"),
        "accurate, ci16_le": ("accurate", lambda v: {}, "ci16_le"),
        "accurate, float": ("accurate", lambda v: {}, None),
        "perfect CSI, ci8": ("perfect", lambda v: {}, "ci8"),
        "perfect CSI, float": ("perfect", lambda v: {}, None),
    }),
}


def adc(rx: np.ndarray, fmt: str, headroom_db: float) -> np.ndarray:
    """complex64 [F, n] frames read through an ADC of sample format ``fmt`` whose full scale
    is ``headroom_db`` over their largest I or Q, the codes read back in the input's units
    (so that perfect CSI's operator still holds)."""
    sample = sample_format(fmt)
    samples = np.ascontiguousarray(rx, dtype=np.complex64)
    full_scale = float(np.abs(samples.view(np.float32)).max()) * 10 ** (headroom_db / 20)
    codes, _ = sample.encode(samples.reshape(-1), full_scale)
    volts_per_unit = full_scale * 2 ** (sample.bits - 1) / (2 ** (sample.bits - 1) - 1)
    return (sample.decode(codes.tobytes()) * np.float32(volts_per_unit)).reshape(samples.shape)


def sweep(args, config) -> dict:
    """{receiver name: {"ber": [...], "bit_errors": [...], "cfo_removed_hz_p50": [...]}} over
    ``args.points``."""
    unit, _, keyword, receivers = IMPAIRMENTS[args.impairment]
    rows = {name: {"ber": [], "bit_errors": [], "cfo_removed_hz_p50": []} for name in receivers}
    n_bits = args.frames * config.bits_per_frame
    for k, value in enumerate(args.points):
        built = {name: Receiver(config, backend=args.backend, estimator=est, quiet=True, **options(value))
                 for name, (est, options, _) in receivers.items()}
        errors = dict.fromkeys(built, 0)
        removed = {name: [] for name in built}
        for bits, rx, truth, noise_var in veh_a_frames(config, args.snr, args.doppler_hz, args.frames,
                                                       args.seed, **({keyword: value} if keyword else {})):
            for name, receiver in built.items():
                perfect = dict(operator=truth, noise_var=noise_var) if receiver.estimator is None else {}
                fmt = receivers[name][2]
                result = receiver.process(rx if fmt is None else adc(rx, fmt, value), **perfect)
                errors[name] += int(np.count_nonzero(result.bits != bits))
                removed[name] += result.cfo_hz.tolist()
        for name in built:
            rows[name]["bit_errors"].append(errors[name])
            rows[name]["ber"].append(errors[name] / n_bits)
            rows[name]["cfo_removed_hz_p50"].append(float(np.median(removed[name])))
        print(f"[{k + 1}/{len(args.points)}] {args.impairment} {value:+g} {unit}: "
              + ", ".join(f"{name} {errors[name] / n_bits:.2e}" for name in built), file=sys.stderr, flush=True)
    return {"impairment": args.impairment, "unit": unit, "points": list(args.points), "bits_per_point": n_bits,
            "receivers": rows, "cfo_correction_range_hz": config.nu_p / 2}


def plot(result: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    floor = 0.5 / result["bits_per_point"]             # where a point has no errors
    points = np.asarray(result["points"], float)
    scale = 1e-3 if result["unit"] == "Hz" else 1.0
    for name, row in result["receivers"].items():
        style = "--" if "ignored" in name or "ci8" in name else (":" if name.startswith("perfect") else "-")
        ax.plot(points * scale, np.maximum(row["ber"], floor), style, marker="o", markersize=3, label=name)
    ax.set_yscale("log")
    if result["impairment"] == "cfo":
        for edge in (-1, 1):
            ax.axvline(edge * result["cfo_correction_range_hz"] * scale, color="grey", lw=0.8)
        ax.set_xlabel("carrier-frequency offset (kHz)")
    elif result["impairment"] == "adc":
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_xlabel("ADC full scale over the frame's largest I or Q (dB; below 0 the peaks clip)")
    else:
        ax.set_xscale("symlog", linthresh=0.5)
        ax.set_xlim(min(0.0, points.min()), points.max() * 1.2)
        ax.set_xlabel("sample-clock offset (ppm)")
    ax.set_ylabel("BER")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("impairment", choices=sorted(IMPAIRMENTS))
    p.add_argument("--preset", default="demo")
    p.add_argument("--mod")
    p.add_argument("--snr", type=float, default=25.0)
    p.add_argument("--doppler-hz", type=float, default=815.0)
    p.add_argument("--points", help="impairment values, comma-separated (default: the impairment's sweep)")
    p.add_argument("--frames", type=int, default=8, help="frames (realisations) per point")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--backend", default="cpu", choices=["auto", "cpu", "gpu"])
    p.add_argument("--json", help="output JSON, the PNG beside it (default: bench/results/<impairment>_sweep_<preset>.json "
                               "in the current directory)")
    args = p.parse_args(argv)
    args.json = args.json or f"bench/results/{args.impairment}_sweep_{args.preset}.json"
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    args.points = [float(x) for x in (args.points or IMPAIRMENTS[args.impairment][1]).split(",")]
    config = preset(args.preset, **({"modulation": args.mod} if args.mod else {}))
    result = sweep(args, config)
    out = {**run_metadata(sys.argv, Receiver(config, backend=args.backend, quiet=True).backend),
           "preset": args.preset, "config": config.to_dict(), "snr_db": args.snr, "nu_max_hz": args.doppler_hz,
           "frames_per_point": args.frames, "seed": args.seed, **result}
    write_json(args.json, out)
    title = (f"{args.preset} {config.M}x{config.N}, {config.modulation}, Veh-A {args.doppler_hz:g} Hz, "
             f"{args.snr:g} dB, {args.frames} realisations per point")
    plot(out, Path(args.json).with_suffix(".png"), title)
    print(f"wrote {args.json} and {Path(args.json).with_suffix('.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
