"""What the receiver's approximations of the channel operator cost, on the same frames as
the receiver without them. Frames: the sample-level Veh-A emulator, a new channel
realisation each frame. Two measurements:

``window``: BER and seconds per frame with the exact operator (``operator_window`` 0) and
    the windowed one (the default window, or ``--window``), for perfect CSI and the
    ``accurate`` estimator.
``precision``: lower precision on the windowed path (``accurate`` estimator):
    - 16-bit coefficients: the windowed operator's G'_{k,w} (what CG reads every
      iteration) rounded to float16 real and imaginary parts, as a 16-bit storage would;
      reported as the BER against float32 coefficients;
    - int8 LLRs: q = clip(round(LLR / step), -127, 127), step = clip / 127 (``--llr-clip``).
      Hard decisions keep their sign (q = 0 is an erasure), so the cost is in the LLRs'
      information: the BICM mutual information per bit, I = 1 - mean log2(1 + exp(-(1 - 2b)
      LLR)), with the true bits b, before and after. I(a LLR) for a few scales a shows
      whether the LLRs are calibrated (the best a is 1).

    python -m bench.operator_accuracy window --preset paper --snr 20 --doppler-hz 815 --frames 4 \\
        --json bench/results/windowed_ber_paper_20db.json
    python -m bench.operator_accuracy precision --preset paper --snr 20 --frames 3 --seed 3 \\
        --json bench/results/precision_paper_20db.json
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths, draw_paths
from channel_models.profiles import load_profile
from dsp_kernels import get_backend
from dsp_kernels.fused import quantize_llr
from dsp_kernels.resample import TimeScale
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.benchmark import run_metadata, write_json
from zakotfs.exact_channel import exact_operator
from zakotfs.receiver import Receiver


def veh_a_frames(config, snr_db: float, doppler_hz: float, frames: int, seed: int, cfo_hz: float = 0.0,
                 sco_ppm: float = 0.0):
    """Yield (bits uint8 [1, B], received frame [1, cp + MN], true operator, N0) per frame,
    each through a new Veh-A realisation (with a carrier offset of ``cfo_hz``, which the
    true operator holds, and read by a receiver whose sample clock is off by ``sco_ppm``:
    the received stream resampled at (1 + epsilon) t); the same seed gives the same
    realisations, bits and noise."""
    rng = np.random.default_rng(seed)
    builder = FrameBuilder(config)
    noise_var = 10 ** (-snr_db / 10)
    for f in range(frames):
        bits = random_bits(config, 1, rng)
        tx = builder.stream(bits)
        emulator = ChannelEmulator(draw_paths(load_profile("veh-a"), doppler_hz, rng), config.bandwidth,
                                   noise_var=noise_var, seed=int(rng.integers(2**31)), cfo_hz=cfo_hz)
        if sco_ppm:
            tx = np.concatenate([tx, np.zeros(config.samples_per_frame // 8, np.complex64)])
        rx = np.concatenate([emulator.process(tx), emulator.flush()])[:tx.size]
        if sco_ppm:
            rx = TimeScale(rx.size, 1 + sco_ppm * 1e-6)(rx)
        rx = rx[None, config.preamble_len:config.samples_per_frame]
        truth = exact_operator(FramePaths.stack([emulator.frame_paths(config.preamble_len + config.cp_len)]), config.MN)
        yield bits, rx, truth, noise_var
        print(f"  frame {f + 1}/{frames}", file=sys.stderr, flush=True)


def window_cost(args, config) -> dict:
    """BER and seconds per frame, exact against windowed operator (module doc)."""
    receivers = {(estimator, w): Receiver(config, backend=args.backend, estimator=estimator, operator_window=w,
                                          max_doppler_hz=1.15 * args.doppler_hz, quiet=True)
                 for estimator in ("perfect", "accurate") for w in (0, args.window)}
    errors = dict.fromkeys(receivers, 0)
    seconds = dict.fromkeys(receivers, 0.0)
    for bits, rx, truth, noise_var in veh_a_frames(config, args.snr, args.doppler_hz, args.frames, args.seed):
        for key, receiver in receivers.items():
            perfect = dict(operator=truth, noise_var=noise_var) if key[0] == "perfect" else {}
            start = time.perf_counter()
            errors[key] += int(np.count_nonzero(receiver.process(rx, **perfect).bits != bits))
            seconds[key] += time.perf_counter() - start
    n_bits = args.frames * config.bits_per_frame
    rows = [{"estimator": key[0], "operator_window": receiver.operator_window,
             "operator_overlap": receiver.operator_overlap, "bit_errors": errors[key],
             "ber": errors[key] / n_bits, "seconds_per_frame": seconds[key] / args.frames}
            for key, receiver in receivers.items()]
    for row in rows:
        print(f"{row['estimator']:9s} window {row['operator_window']:5d} + {row['operator_overlap']:5d}: "
              f"BER {row['ber']:.3e} "
              f"({row['bit_errors']} errors), {row['seconds_per_frame']:.2f} s/frame")
    return {"results": rows}


class HalfCoefficientReceiver(Receiver):
    """The receiver with its windowed operator's coefficients rounded to float16."""

    def equalizer_operator(self, channel):
        windowed = super().equalizer_operator(channel)
        scale = windowed.block                 # response holds G' / B; float16 rounds G'
        g = windowed.response * scale
        windowed.response = (g.real.astype(np.float16).astype(g.real.dtype)
                             + 1j * g.imag.astype(np.float16).astype(g.real.dtype)).astype(g.dtype) / scale
        return windowed


def int8_llr(llr: np.ndarray, clip: float) -> np.ndarray:
    """float32 LLRs -> the float32 values the receiver's int8 code (``quantize_llr``, step
    clip / 127) stands for."""
    step = clip / 127
    return quantize_llr(llr, step).astype(np.float32) * np.float32(step)


def mutual_information(llr: np.ndarray, bits: np.ndarray) -> float:
    """I = 1 - mean log2(1 + exp(-(1 - 2 b) LLR)) (LLR > 0 favours bit 0)."""
    signed = (1 - 2 * bits.astype(np.float64)) * llr
    return float(1 - np.mean(np.logaddexp(0, -signed)) / np.log(2))


def precision_cost(args, config) -> dict:
    """16-bit coefficients and int8 LLRs against float32 (module doc)."""
    options = dict(backend=args.backend, max_doppler_hz=1.15 * args.doppler_hz, operator_window=args.window,
                   quiet=True)
    full, half = Receiver(config, **options), HalfCoefficientReceiver(config, **options)
    if not full.operator_window:
        raise SystemExit(f"the {args.preset} grid has no default window: give --window")
    clips = [float(c) for c in args.llr_clip.split(",")]
    errors = {"float32": 0, "float16 coefficients": 0}
    llrs, truth = [], []
    for bits, rx, _, _ in veh_a_frames(config, args.snr, args.doppler_hz, args.frames, args.seed):
        want = full.process(rx)
        errors["float32"] += int(np.count_nonzero(want.bits != bits))
        errors["float16 coefficients"] += int(np.count_nonzero(half.process(rx).bits != bits))
        llrs.append(want.llr)
        truth.append(bits)
    llr, bits = np.concatenate(llrs), np.concatenate(truth)
    result = {
        "operator_window": full.operator_window,
        "ber": {name: e / bits.size for name, e in errors.items()},
        "bit_errors": errors,
        "llr_mutual_information": {"float32": mutual_information(llr, bits),
                                   **{f"int8, clip {c:g}": mutual_information(int8_llr(llr, c), bits)
                                      for c in clips}},
        "llr_erased_by_int8": {f"clip {c:g}": float(np.mean(int8_llr(llr, c) == 0)) for c in clips},
        # calibration: a scale a != 1 that raises I(a LLR) means the LLRs are mis-scaled
        "llr_mutual_information_by_scale": {f"{a:g}": mutual_information(a * llr, bits)
                                            for a in (0.5, 0.7, 1.0, 1.4, 2.0)},
        "llr_abs_percentiles": {str(q): float(np.percentile(np.abs(llr), q)) for q in (50, 90, 99)},
    }
    for name, ber in result["ber"].items():
        print(f"BER with {name}: {ber:.4e} ({errors[name]} errors of {bits.size})")
    for name, mi in result["llr_mutual_information"].items():
        print(f"LLR mutual information, {name}: {mi:.5f} bit")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["window", "precision"])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--snr", type=float, default=20.0)
    ap.add_argument("--doppler-hz", type=float, default=815.0)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--window", type=int, default=None, help="Lw (default: the receiver's default_window)")
    ap.add_argument("--llr-clip", default="8,16,32", help="precision: int8 LLR ranges, comma separated")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    config = preset(args.preset)
    measure = window_cost if args.what == "window" else precision_cost
    result = {"measurement": args.what, "preset": args.preset, "snr_db": args.snr, "doppler_hz": args.doppler_hz,
              "doppler_bins": args.doppler_hz * config.frame_time, "frames": args.frames,
              "bits": args.frames * config.bits_per_frame, **measure(args, config)}
    if args.json:
        write_json(args.json, {**result, **run_metadata(sys.argv, get_backend(args.backend, quiet=True))})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
