"""BER and time with the exact and the windowed channel operator, on the same frames.

Each frame draws a new Veh-A realisation from the sample-level emulator; four receivers
decode it: perfect CSI and ``accurate``, each with the exact operator (``operator_window``
0) and the windowed one (the default window, or ``--window``). Writes JSON with the run
metadata.

    python -m bench.windowed_ber --preset paper --snr 20 --doppler-hz 815 --frames 3 \\
        --json bench/results/windowed_ber_paper.json
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths, draw_paths
from channel_models.profiles import load_profile
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.benchmark import run_metadata, write_json
from zakotfs.receiver import Receiver


def compare(preset_name: str, snr_db: float, doppler_hz: float, frames: int, window: int | None,
            backend: str, seed: int) -> dict:
    config = preset(preset_name)
    receivers = {(estimator, w): Receiver(config, backend=backend, estimator=estimator, operator_window=w,
                                          max_doppler_hz=1.15 * doppler_hz, quiet=True)
                 for estimator in ("perfect", "accurate") for w in (0, window)}
    noise_var = 10 ** (-snr_db / 10)
    errors = dict.fromkeys(receivers, 0)
    seconds = dict.fromkeys(receivers, 0.0)
    rng = np.random.default_rng(seed)
    builder = FrameBuilder(config)
    for f in range(frames):
        bits = random_bits(config, 1, rng)
        tx = builder.stream(bits)
        emulator = ChannelEmulator(draw_paths(load_profile("veh-a"), doppler_hz, rng), config.bandwidth,
                                   noise_var=noise_var, seed=int(rng.integers(2**31)))
        rx = np.concatenate([emulator.process(tx), emulator.flush()])[:tx.size][None, config.preamble_len:]
        truth = FramePaths.stack([emulator.frame_paths(config.preamble_len + config.cp_len)]).operator(config.MN)
        for key, receiver in receivers.items():
            perfect = dict(operator=truth, noise_var=noise_var) if key[0] == "perfect" else {}
            start = time.perf_counter()
            errors[key] += int(np.count_nonzero(receiver.process(rx, **perfect).bits != bits))
            seconds[key] += time.perf_counter() - start
        print(f"  frame {f + 1}/{frames}", file=sys.stderr, flush=True)
    n_bits = frames * config.bits_per_frame
    rows = [{"estimator": key[0], "operator_window": receiver.operator_window, "bit_errors": errors[key],
             "ber": errors[key] / n_bits, "seconds_per_frame": seconds[key] / frames}
            for key, receiver in receivers.items()]
    return {"preset": preset_name, "snr_db": snr_db, "doppler_hz": doppler_hz,
            "doppler_bins": doppler_hz * config.frame_time, "frames": frames, "bits": n_bits, "results": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--snr", type=float, default=20.0)
    ap.add_argument("--doppler-hz", type=float, default=815.0)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--window", type=int, default=None, help="Lw (default: the receiver's default_window)")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    result = compare(args.preset, args.snr, args.doppler_hz, args.frames, args.window, args.backend, args.seed)
    for row in result["results"]:
        print(f"{row['estimator']:9s} window {row['operator_window']:5d}: BER {row['ber']:.3e} "
              f"({row['bit_errors']} errors), {row['seconds_per_frame']:.2f} s/frame")
    if args.json:
        from dsp_kernels import get_backend

        write_json(args.json, {**result, **run_metadata(sys.argv, get_backend(args.backend, quiet=True))})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
