"""How many CG iterations, and which preconditioner windows, the equaliser needs.

Two measurements on Veh-A frames from the sample-level emulator:

``residual``: on one preset, the channel estimated by the ``accurate`` estimator, the
    worst relative CG residual over the frames after K iterations for each number of
    preconditioner windows S (the windows are 2L/S samples).
``ber``: on one preset and modulation, the BER with perfect CSI and with the ``accurate``
    estimate, for each (S, K) pair, over several channel realisations (the same frames for
    every pair).

    python -m bench.cg_tuning residual --preset paper --snr 20 --segments 64,128,256,512,1024
    python -m bench.cg_tuning ber --preset demo --mod 16qam --snr 24 --pairs 32/12,128/12,128/8,32/24
    python -m bench.cg_tuning ber --preset paper --mod 16qam --snr 24 --pairs 128/6,128/8,128/12 \
        --realisations 3 --json bench/results/cg_iterations_paper_24db.json
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths, draw_paths
from channel_models.profiles import load_profile
from zakotfs import FrameBuilder, preset, random_bits
from zakotfs.benchmark import make_frames, run_metadata, write_json
from zakotfs.equalizer import cg_lmmse
from zakotfs.exact_channel import exact_operator
from zakotfs.receiver import Receiver


def residuals(preset_name: str, snr_db: float, segments: list[int], iterations: list[int], frames: int,
              doppler_bins: float) -> None:
    config = preset(preset_name)
    nu = doppler_bins / config.frame_time
    receiver = Receiver(config, backend="cpu", max_doppler_hz=1.15 * nu, quiet=True)
    data = make_frames(config, frames, snr_db=snr_db, nu_max_hz=nu)
    r = data.frames[:, config.cp_len:].astype(np.complex64)
    estimate = receiver.estimate(r)
    op = receiver.equalizer_operator(estimate.operator.astype(np.complex64))
    n0 = np.maximum(estimate.noise_var.astype(np.float32), 1e-12)
    data_part = r - op.apply(np.broadcast_to(receiver.pilot_time, r.shape))
    print(f"{preset_name}: L = {config.MN}, tap window {sum(config.tap_window) + 1}, "
          f"default S = {receiver.segments}, operator window {receiver.operator_window}; {snr_db:g} dB, "
          f"{doppler_bins:g} Doppler bins; worst relative residual over {frames} frames")
    for S in segments:
        cells = [f"K={K}: {cg_lmmse(op, data_part, n0, K, S).residual.max():.2e}" for K in iterations]
        print(f"  S={S:5d} (windows of {2 * config.MN // S:6d})  " + "  ".join(cells), flush=True)


def bit_errors(preset_name: str, modulation: str, snr_db: float, pairs: list[tuple[int, int]],
               realisations: int, doppler_bins: float) -> dict:
    config = preset(preset_name, modulation=modulation)
    nu = doppler_bins / config.frame_time
    noise_var = 10 ** (-snr_db / 10)
    errors = {pair: {"perfect": 0, "accurate": 0} for pair in pairs}
    n_bits = 0
    for trial in range(realisations):
        rng = np.random.default_rng(100 + trial)
        paths = draw_paths(load_profile("veh-a"), nu, rng)
        bits = random_bits(config, 3, rng)
        tx = FrameBuilder(config).stream(bits)
        em = ChannelEmulator(paths, config.bandwidth, noise_var=noise_var, seed=trial)
        rx = np.concatenate([em.process(tx), em.flush()])[:tx.size].reshape(3, -1)[:, config.preamble_len:]
        truth = exact_operator(FramePaths.stack([em.frame_paths(f * config.samples_per_frame + config.preamble_len + config.cp_len)
                                  for f in range(3)]), config.MN)
        n_bits += bits.size
        for S, K in pairs:
            for name in ("perfect", "accurate"):
                receiver = Receiver(config, backend="cpu", estimator=name, max_doppler_hz=1.15 * nu,
                                    cg_iterations=K, segments=S, quiet=True)
                csi = dict(operator=truth, noise_var=noise_var) if name == "perfect" else {}
                errors[(S, K)][name] += int(np.count_nonzero(receiver.process(rx, **csi).bits != bits))
    print(f"{preset_name} {modulation} {snr_db:g} dB, Veh-A {doppler_bins:g} Doppler bins, "
          f"{realisations} realisations, {n_bits} bits per pair")
    rows = []
    for (S, K), e in errors.items():
        print(f"  S={S:5d} K={K:3d}: BER perfect CSI {e['perfect'] / n_bits:.3e}, accurate {e['accurate'] / n_bits:.3e}")
        rows.append({"segments": S, "iterations": K, "bit_errors": e,
                     "ber": {name: count / n_bits for name, count in e.items()}})
    return {"what": "BER against CG iterations and preconditioner windows", "preset": preset_name,
            "modulation": modulation, "snr_db": snr_db, "doppler_bins": doppler_bins,
            "realisations": realisations, "bits_per_pair": n_bits, "pairs": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("residual")
    p.add_argument("--preset", default="paper")
    p.add_argument("--snr", type=float, default=20.0)
    p.add_argument("--segments", default="64,128,256,512,1024")
    p.add_argument("--iterations", default="6,8,12")
    p.add_argument("--frames", type=int, default=2)
    p.add_argument("--doppler-bins", type=float, default=1.74)
    p = sub.add_parser("ber")
    p.add_argument("--preset", default="demo")
    p.add_argument("--mod", default="16qam")
    p.add_argument("--snr", type=float, default=24.0)
    p.add_argument("--pairs", default="32/12,128/12,128/8", help="S/K pairs, comma separated")
    p.add_argument("--realisations", type=int, default=6)
    p.add_argument("--doppler-bins", type=float, default=1.74)
    p.add_argument("--json", help="also write the result here (with the run's metadata)")
    args = ap.parse_args(argv)
    ints = lambda text: [int(x) for x in text.split(",")]          # noqa: E731
    if args.what == "residual":
        residuals(args.preset, args.snr, ints(args.segments), ints(args.iterations), args.frames,
                  args.doppler_bins)
    else:
        pairs = [tuple(int(v) for v in pair.split("/")) for pair in args.pairs.split(",")]
        result = bit_errors(args.preset, args.mod, args.snr, pairs, args.realisations, args.doppler_bins)
        if args.json:
            write_json(args.json, {**result, **run_metadata(sys.argv)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
