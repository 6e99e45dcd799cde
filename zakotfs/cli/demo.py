"""``zakotfs demo``: transmitter -> sample-level channel -> acquisition -> receiver, in one
process, with the BER against the transmitted bits and the perfect-CSI bound."""
from __future__ import annotations

import sys

import numpy as np

from streaming.acquisition import FrameAcquirer
from streaming.link_stats import LinkStats

from ..frame import FrameBuilder, random_bits
from ..exact_channel import perfect_csi_ber
from .options import (backend_option, channel_options, frame_options, make_channel, make_receiver, output_path,
                      positive_int, receiver_option_group, receiver_options, resolve_config)
from .summary import emit, frame_progress

CHUNK = 8191
"""Samples a message from the channel to the acquirer: gr-zeromq's typical message size."""


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="tx -> Vehicular-A channel -> rx in one process, on the embedded default")
    frame_options(p)
    backend_option(p)
    receiver_option_group(p)
    channel_options(p)
    p.add_argument("--frames", type=positive_int, default=20)
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    p.add_argument("--report", type=output_path, help="also write the JSON report to this file")
    p.set_defaults(func=run)


def run(args) -> int:
    config = resolve_config(args)
    channel, nu_max = make_channel(args, config)
    args.batch = args.batch or 1
    receiver = make_receiver(config, receiver_options(args), args.batch)
    rng = np.random.default_rng(args.seed)
    bits = random_bits(config, args.frames, rng)
    stream = FrameBuilder(config).stream(bits)
    lead = rng.integers(0, config.samples_per_frame)            # the receiver starts mid-stream
    stream = np.concatenate([np.zeros(lead, np.complex64), stream])
    acquirer = FrameAcquirer(config)
    session = LinkStats(config, receiver.backend, receiver.estimator_name, truth_bits=bits, command=args.command_line,
                        cfo_offset_hz=receiver.cfo_offset_hz, sample_clock_ppm=receiver.sample_clock_ppm)
    pending: list = []
    received = []
    progress = None if args.json else frame_progress(args.frames, "zakotfs demo")
    try:
        for start in range(0, stream.size + CHUNK, CHUNK):
            rx = channel.process(stream[start:start + CHUNK]) if start < stream.size else channel.flush()
            received.append(rx)
            pending += acquirer.push(rx)
            if start >= stream.size:
                pending += acquirer.flush()
            while len(pending) >= args.batch or (pending and start >= stream.size):
                session.run_receiver(receiver, pending[:args.batch])
                pending = pending[args.batch:]
                if progress is not None:
                    progress(session)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting what was decoded", file=sys.stderr)
    if progress is not None:
        progress.close()
    # with an emulated clock offset the frames no longer sit where the emulator's truth is: no bound
    bound = None if args.sco_ppm else perfect_csi_ber(receiver, channel.emulator, np.concatenate(received),
                                                      int(lead), bits, args.snr)
    report = session.report({
        "perfect_csi_ber": bound,
        "channel": {"profile": args.profile, "nu_max_hz": nu_max, "doppler_bins": nu_max * config.frame_time,
                    "snr_db": args.snr, "doppler_model": args.doppler_model, "seed": args.seed},
        "acquisition": acquirer.stats,
        "link_mbps": config.throughput_wire_bps / 1e6,
    })
    report["frames_lost"] = args.frames - report["frames"]            # sent but not decoded
    emit(report, args)
    return 0
