"""What lower precision would cost: 16-bit operator coefficients and int8 LLRs, measured on
the same frames as the float32 receiver.

- **16-bit coefficients**: the windowed operator's G'_{k,w} (the coefficients CG reads
  every iteration) rounded to float16 real and imaginary parts, as a 16-bit storage of them
  would. Reported: BER against float32 coefficients.
- **int8 LLRs**: q = clip(round(LLR / step), -127, 127), step = ``--llr-clip`` / 127.
  Hard decisions keep their sign (q = 0 is an erasure), so the reported cost is in the
  LLRs' information: the BICM mutual information per bit,
  I = 1 - mean log2(1 + exp(-(1 - 2 b) LLR)), with the true bits b, before and after.

Frames: the sample-level Veh-A emulator, a new realisation each frame, ``accurate``
estimator. Needs the windowed operator (a grid where ``default_window`` is not 0, or
``--window``).

    python -m bench.precision_check --preset paper --snr 20 --frames 3 \\
        --json bench/results/precision_paper_20db.json
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from channel_models.emulator import ChannelEmulator
from channel_models.profiles import load_profile
from channel_models.paths import draw_paths
from dsp_kernels import get_backend
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.benchmark import run_metadata, write_json
from zakotfs.receiver import Receiver


class HalfCoefficientReceiver(Receiver):
    """The receiver with its windowed operator's coefficients rounded to float16."""

    def equalizer_operator(self, op):
        windowed = super().equalizer_operator(op)
        g = windowed.response
        windowed.response = (g.real.astype(np.float16).astype(g.real.dtype)
                             + 1j * g.imag.astype(np.float16).astype(g.real.dtype)).astype(g.dtype)
        return windowed


def int8_llr(llr: np.ndarray, clip: float) -> np.ndarray:
    """float32 LLRs -> the float32 values an int8 code with step clip / 127 stands for."""
    step = clip / 127
    return np.clip(np.round(llr / step), -127, 127).astype(np.int8).astype(np.float32) * step


def mutual_information(llr: np.ndarray, bits: np.ndarray) -> float:
    """I = 1 - mean log2(1 + exp(-(1 - 2 b) LLR)) (LLR > 0 favours bit 0)."""
    signed = (1 - 2 * bits.astype(np.float64)) * llr
    return float(1 - np.mean(np.logaddexp(0, -signed)) / np.log(2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--snr", type=float, default=20.0)
    ap.add_argument("--doppler-hz", type=float, default=815.0)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--llr-clip", default="8,16,32", help="int8 LLR ranges to try, comma separated")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    config = preset(args.preset)
    options = dict(backend="cpu", max_doppler_hz=1.15 * args.doppler_hz, operator_window=args.window, quiet=True)
    full, half = Receiver(config, **options), HalfCoefficientReceiver(config, **options)
    if not full.operator_window:
        ap.error(f"the {args.preset} grid has no default window: give --window")
    clips = [float(c) for c in args.llr_clip.split(",")]
    rng = np.random.default_rng(args.seed)
    builder = FrameBuilder(config)
    errors = {"float32": 0, "float16 coefficients": 0}
    llrs, truth = [], []
    for f in range(args.frames):
        bits = random_bits(config, 1, rng)
        tx = builder.stream(bits)
        emulator = ChannelEmulator(draw_paths(load_profile("veh-a"), args.doppler_hz, rng), config.bandwidth,
                                   snr_db=args.snr, seed=int(rng.integers(2**31)))
        rx = np.concatenate([emulator.process(tx), emulator.flush()])[:tx.size][None, config.preamble_len:]
        want = full.process(rx)
        errors["float32"] += int(np.count_nonzero(want.bits != bits))
        errors["float16 coefficients"] += int(np.count_nonzero(half.process(rx).bits != bits))
        llrs.append(want.llr)
        truth.append(bits)
        print(f"  frame {f + 1}/{args.frames}", file=sys.stderr, flush=True)
    llr, bits = np.concatenate(llrs), np.concatenate(truth)
    n_bits = bits.size
    result = {
        "preset": args.preset, "snr_db": args.snr, "doppler_hz": args.doppler_hz, "frames": args.frames,
        "operator_window": full.operator_window, "bits": n_bits,
        "ber": {name: e / n_bits for name, e in errors.items()},
        "bit_errors": errors,
        "llr_mutual_information": {"float32": mutual_information(llr, bits),
                                   **{f"int8, clip {c:g}": mutual_information(int8_llr(llr, c), bits)
                                      for c in clips}},
        "llr_erased_by_int8": {f"clip {c:g}": float(np.mean(int8_llr(llr, c) == 0)) for c in clips},
        "llr_abs_percentiles": {str(q): float(np.percentile(np.abs(llr), q)) for q in (50, 90, 99)},
    }
    for name, ber in result["ber"].items():
        print(f"BER with {name}: {ber:.4e} ({errors[name]} errors of {n_bits})")
    for name, mi in result["llr_mutual_information"].items():
        print(f"LLR mutual information, {name}: {mi:.5f} bit")
    if args.json:
        write_json(args.json, {**result, **run_metadata(sys.argv, get_backend("cpu", quiet=True))})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
