"""``zakotfs tx``: random payload frames to a file or a ZeroMQ endpoint, the payload bits
kept as the truth (/truth/bits)."""
from __future__ import annotations

import sys
import time

import numpy as np

from streaming.files import IQWriter
from streaming.io import open_sink
from streaming.zmq_io import is_endpoint

from ..frame import FrameBuilder, random_bits
from .options import count, frame_options, output_path, positive_int, resolve_config, sample_format_options
from .summary import encoding_note


def add_parser(sub) -> None:
    p = sub.add_parser("tx", help="generate frames to a file or a ZeroMQ endpoint")
    frame_options(p)
    p.add_argument("--out", required=True, type=output_path,
                   help="by suffix: FILE.h5, FILE.sigmf-meta, a raw FILE.cfile (complex64) / FILE.sc16 (int16 pairs), "
                        "or tcp://HOST:PORT")
    p.add_argument("--frames", type=positive_int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth", type=output_path, help="with a non-HDF5 --out: write /truth/bits to this FILE.h5")
    p.add_argument("--pattern", default="pub", choices=["pub", "push"])
    p.add_argument("--pass-tags", action="store_true", help="gr-zeromq pass_tags headers (stream offset)")
    p.add_argument("--message-size", type=positive_int, default=8191)
    p.add_argument("--random-sizes", action="store_true", help="message sizes uniform in [1, 2 x message-size)")
    p.add_argument("--realtime", action="store_true", help="pace at the sample rate")
    p.add_argument("--rate-limit", type=float, default=0.0,
                   help="ZeroMQ: sleep this fraction of each message's air time (0: as fast as possible)")
    p.add_argument("--connect-wait", type=float, default=0.5, help="seconds to wait for ZeroMQ peers")
    p.add_argument("--lead-samples", type=count, default=0, help="low-level noise samples before the first frame")
    sample_format_options(p, read=False, write=True)
    p.set_defaults(func=run)


def run(args) -> int:
    config = resolve_config(args)
    bits = random_bits(config, args.frames, np.random.default_rng(args.seed))
    stream = FrameBuilder(config).stream(bits)
    if args.lead_samples:                   # the receiver then starts at an arbitrary sample
        lead_rng = np.random.default_rng(args.seed + 2)
        lead = 0.03 * (lead_rng.standard_normal(args.lead_samples) + 1j * lead_rng.standard_normal(args.lead_samples))
        stream = np.concatenate([lead.astype(np.complex64), stream])
    sink = open_sink(args.out, config, pattern=args.pattern, sample_format=args.out_format,
                     full_scale=args.full_scale, pass_tags=args.pass_tags)
    if hasattr(sink, "write_truth_bits"):
        sink.write_truth_bits(bits)
    elif args.truth:
        with IQWriter(args.truth, config) as truth:
            truth.write_truth_bits(bits)
    if is_endpoint(args.out):
        time.sleep(args.connect_wait)                          # let subscribers connect (PUB)
        if args.pattern == "pub" and not sink.receivers():
            print(f"zakotfs tx: warning: no subscriber connected to {args.out} within --connect-wait "
                  f"{args.connect_wait:g} s: PUB drops what it sends while none is (start rx first, or "
                  "use --pattern push with rx --pattern pull)", file=sys.stderr)
    rng = np.random.default_rng(args.seed + 1)
    period = args.message_size / config.bandwidth
    t_next = time.perf_counter()
    try:
        start = 0
        while start < stream.size:
            n = int(rng.integers(1, 2 * args.message_size)) if args.random_sizes else args.message_size
            sink.write(stream[start:start + n])
            start += n
            if args.realtime:
                t_next += n / config.bandwidth
                time.sleep(max(0.0, t_next - time.perf_counter()))
            elif is_endpoint(args.out) and args.rate_limit:
                time.sleep(period * args.rate_limit)
    except KeyboardInterrupt:
        print("interrupted: closing the output", file=sys.stderr)
    finally:
        sink.close()
    print(f"zakotfs tx: {args.frames} frames ({stream.size} samples, {config.summary()}) -> {args.out}"
          f"{encoding_note(sink)}", file=sys.stderr)
    return 0
