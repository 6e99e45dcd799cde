"""ZeroMQ I/O compatible with GNU Radio's gr-zeromq: IQ sources and sinks, result messages.

Wire format
-----------
* IQ: each message is interleaved float32 I/Q, i.e. numpy ``complex64`` little-endian, any
  length; message boundaries say nothing about frames. ``sample_format`` (on both ends)
  takes interleaved int16 or int8 I/Q instead (``ci16_le``, ``ci8``; UHD's sc16 / sc8,
  :mod:`streaming.sample_format`): half or a quarter of the bytes.
* A PUB sink with a non-empty key sends the key as a first frame (SNDMORE), then the payload.
* gr-zeromq ``pass_tags``: the payload frame starts with a header, host-endian (little-endian
  on every machine GNU Radio runs on today; a big-endian header is recognised by its magic
  and decoded too): ``uint16 magic 0x5FF0, uint8 version 1, uint64 offset`` (absolute index
  of the message's first sample), ``uint64 ntags``, then per tag ``uint64 offset`` and the
  PMT-serialised key, value and srcid (:mod:`streaming.pmt`, byte-identical to GNU Radio's
  ``pmt_serialize.cc``).
* Results: one multipart message a frame, a UTF-8 JSON header (``seq``, ``payload``, ``n``,
  ``timing``, ``metrics``) then one frame per payload: ``np.packbits`` of the bits (MSB first)
  and/or the LLRs as float32 little-endian.

Socket choices
--------------
* Like gr-zeromq, sinks bind and sources connect by default; ``bind`` switches either.
* Endpoints default to loopback (:data:`DEFAULT_IQ_ENDPOINT` ``tcp://127.0.0.1:5555`` for
  IQ, :data:`DEFAULT_RESULT_ENDPOINT` ``tcp://127.0.0.1:5556`` for results). Binding any
  other interface (``tcp://*:5555``, ``tcp://0.0.0.0:5555``, an interface name) exposes
  unauthenticated raw samples to the network, so it needs ``allow_remote=True``; pair it
  with ``curve=`` (:mod:`.security`). ``tcp://127.0.0.1:*`` binds a free port; read it back
  from ``.endpoint``.
* ``timeout_ms`` (default 100, gr-zeromq's) bounds every receive: ``recv()`` returns None
  when nothing came, it never blocks forever. A connect to an endpoint where nobody listens
  is not an error in ZeroMQ (it retries in the background): it shows as timeouts.
* ``hwm``: None keeps ZeroMQ's default of 1000 messages a pipe (gr-zeromq's -1). At 8191
  samples a message that is 64 MiB, about 0.27 s of the 245.76 Msps stream, enough to ride
  out a scheduling hiccup without hiding a receiver that cannot keep up.
* PUB drops whole messages silently when a subscriber's pipe reaches the HWM (ZeroMQ's PUB
  semantics; the gap then shows at a pass_tags receiver as an offset jump). ``nodrop=True``
  sets ``ZMQ_XPUB_NODROP`` so a full pipe makes the send fail after ``send_timeout_ms``
  instead, and the sink counts the message in ``stats.dropped_messages``.
* PUSH blocks when no peer has room (backpressure); here that block is bounded by
  ``send_timeout_ms`` (default 100) and a message that could not go is counted as dropped
  rather than hanging the transmitter.
* ``linger_ms`` (default 1000, gr-zeromq's): how long ``close()`` may wait to deliver queued
  messages; sources use 0 (nothing to deliver).
* Each object owns its ZeroMQ context unless one is passed (``context=``), so there is no
  process-wide state; pass a ``zmq.Context(io_threads=k)`` for more I/O threads. A socket is
  used from one thread at a time. A CURVE server starts its context's ZAP handler, so at
  most one CURVE server socket may share a context.

Receiving
---------
* Zero copy: sources receive with ``copy=False`` and return ``np.frombuffer`` views of the
  ZeroMQ frame (no copy for little-endian cf32; fixed point is converted in one pass); the
  array keeps the frame alive. After a pass_tags header the view may be unaligned; copy it
  if a consumer needs alignment.
* ``pass_tags=None`` detects the header (magic, version, a parse that leaves a whole number
  of samples) and then requires it on every later message; raw data that merely starts
  like a header before that is taken as samples. Pass True/False to remove the guess.
* Malformed messages are counted (``stats.bad_messages``) and skipped with a rate-limited
  warning; ``recv`` never raises on input data. NaN/Inf samples are passed through and
  counted: one BLAS pass over the message (about 10 us per 64 KiB message coming from
  DRAM, see ``bench/zmq_ingest.py``; ``check_finite=False`` skips it).

Modules: ``sockets`` (endpoint policy, the socket base), ``tags`` (pass_tags headers),
``iq`` (IQ source and sink), ``results`` (result messages); their public names are here.
"""
from ..pmt import PmtError, PmtPair, pmt_deserialize, pmt_serialize
from .iq import IQChunk, IQSink, IQSource, SinkStats, SourceStats
from .results import (FRAME_METRICS, FrameResult, ResultPublisher, ResultSubscriber, decode_result, encode_result,
                      frame_metrics)
from .sockets import (DEFAULT_IQ_ENDPOINT, DEFAULT_RESULT_ENDPOINT, ENDPOINT_SCHEMES, ZmqSocketBase, check_endpoint,
                      is_endpoint)
from .tags import Tag, decode_tag_header, encode_tag_header

__all__ = [
    "DEFAULT_IQ_ENDPOINT", "DEFAULT_RESULT_ENDPOINT", "ENDPOINT_SCHEMES", "is_endpoint",
    "IQSource", "IQSink", "IQChunk", "SourceStats", "SinkStats",
    "ResultPublisher", "ResultSubscriber", "FrameResult", "encode_result", "decode_result", "FRAME_METRICS",
    "frame_metrics",
    "Tag", "encode_tag_header", "decode_tag_header", "check_endpoint", "ZmqSocketBase",
    # re-exported from .pmt, where the codec lives (tag keys and values are PMTs)
    "PmtPair", "PmtError", "pmt_serialize", "pmt_deserialize",
]
