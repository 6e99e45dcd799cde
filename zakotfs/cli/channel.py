"""``zakotfs channel``: the channel emulator as a stage between two files or endpoints; a
file output also keeps the transmitted bits and the channel's truth per frame."""
from __future__ import annotations

import sys

from streaming.io import open_sink
from streaming.read_loop import InputWatch, read_samples

from .options import (channel_options, frame_options, make_channel, open_input, output_path, resolve_config,
                      sample_format_options, start_timeout_option)
from .summary import encoding_note


def add_parser(sub) -> None:
    p = sub.add_parser("channel", help="the channel emulator as a stage")
    frame_options(p, default_preset=None)
    channel_options(p)
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--out", required=True, type=output_path)
    p.add_argument("--in-pattern", default="sub", choices=["sub", "pull"], help="ZeroMQ input pattern")
    p.add_argument("--out-pattern", default="pub", choices=["pub", "push"], help="ZeroMQ output pattern")
    p.add_argument("--pass-tags", action="store_true", help="gr-zeromq pass_tags headers on the output")
    p.add_argument("--idle-timeout", type=float, default=2.0,
                   help="seconds without input, once it has started, before flushing the held samples and "
                        "stopping (default 2, under rx's 5, so that a receiver downstream still gets the last "
                        "frames)")
    start_timeout_option(p)
    sample_format_options(p, read=True, write=True)
    p.set_defaults(func=run)


def run(args) -> int:
    source = open_input(args.input, args, args.in_pattern)
    config = source.config if source.config is not None else resolve_config(args)
    channel, nu_max = make_channel(args, config)
    sink = open_sink(args.out, config, pattern=args.out_pattern, sample_format=args.out_format,
                     full_scale=args.full_scale, pass_tags=args.pass_tags)
    n_in = 0
    try:
        for samples in read_samples(source, InputWatch(args.start_timeout, args.idle_timeout)):
            if samples is None:
                continue
            n_in += samples.size
            out = channel.process(samples)
            if out.size:
                sink.write(out)
        sink.write(channel.flush())
    except KeyboardInterrupt:
        print("interrupted: flushing the output", file=sys.stderr)
    finally:
        truth = getattr(source, "truth_bits", None)
        if truth is not None and hasattr(sink, "write_truth_bits"):
            sink.write_truth_bits(truth)
        if hasattr(sink, "write_channel_truth"):         # perfect CSI per frame (stream from frame 0)
            spf = config.samples_per_frame
            sink.write_channel_truth([channel.emulator.frame_paths(f * spf + config.preamble_len + config.cp_len)
                                      .to_dict() for f in range(n_in // spf)])
        sink.close()
        source.close()
    print(f"zakotfs channel: {args.profile}, nu_max {nu_max:.0f} Hz, Es/N0 {args.snr:g} dB -> {args.out}"
          f"{encoding_note(sink)}", file=sys.stderr)
    return 0
