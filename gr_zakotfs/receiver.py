"""``zakotfs_rx``: a GNU Radio block that receives Zak-OTFS frames from a complex stream."""
from __future__ import annotations

import time

import numpy as np
import pmt
from gnuradio import gr

from streaming.acquisition import FrameAcquirer
from zakotfs.frame_stats import present
from zakotfs.receiver import Receiver

from .config import frame_config

__all__ = ["zakotfs_rx"]

_POLL_S = 1e-3
"""While a frame waits for its successor and no input comes, GNU Radio calls the block
without input (``forecast`` asks for none): each such call sleeps this long, so that the
wait for ``idle_timeout`` polls instead of spinning, short of the ms an input buffer holds."""


class zakotfs_rx(gr.basic_block):
    """Zak-OTFS receiver: frame acquisition on the preamble, then per frame the delay-Doppler
    channel estimate, CG-LMMSE equalisation and soft demapping (``zakotfs.receiver.Receiver``
    on the frames of ``streaming.acquisition.FrameAcquirer``), as ``zakotfs rx`` does.

    Input: complex64 stream at ``config.bandwidth`` samples per second.

    Outputs:

    * stream 0, uint8: the decoded bits, one a byte (0 or 1), ``bits_per_frame`` a frame in
      the transmitter's order; each frame's first bit tagged ``zakotfs_frame`` with the
      frame's metadata (a dict, as in the PDU);
    * message port ``pdus``: one PDU a frame, (metadata dict, u8vector of the bits);
    * message port ``llr``: one PDU a frame, (metadata dict, f32vector of the max-log LLRs,
      positive meaning bit 0).

    The metadata: ``seq`` (the frame's number from its timing), ``start`` (its first sample
    in the input), ``preamble_cfo_hz`` and every per-frame statistic of
    ``zakotfs.frame_stats.FRAME_STATISTICS`` the receiver gives (``cfo_hz``, ``sinr_db``,
    ``cg_residual``, ``noise_var``, ``delay_first``, ...).

    Parameters
    ----------
    preset, grid, bandwidth, modulation
        The frame configuration (:func:`gr_zakotfs.config.frame_config`), the transmitter's.
    backend : "auto", "cpu" or "gpu"
    estimator : "accurate" or "paper"
    max_doppler_hz, cfo_offset_hz, sample_clock_ppm, cfo_correction, dc_removal
        As ``zakotfs.receiver.Receiver`` (and ``zakotfs rx``'s options of those names).
    idle_timeout : float
        Seconds without input after which the frame waiting for its successor's preamble is
        decoded (as ``zakotfs rx --idle-timeout``): the last frame of a stream that ends.

    A frame is decoded once the next frame's preamble confirms its timing, the signal stops
    right after it, or no input has come for ``idle_timeout`` seconds; every frame is output
    on the stream and the message ports alike. Only a frame held when the flowgraph is
    stopped first (``top_block.stop()`` within ``idle_timeout`` of the last input) is
    decoded in :meth:`stop`: its PDUs posted, its bits kept in ``tail_bits`` (no stream
    output is possible then). ``frames`` counts the frames decoded.
    """

    def __init__(self, preset: str = "demo", backend: str = "auto", estimator: str = "accurate",
                 max_doppler_hz: float = 1000.0, cfo_offset_hz: float = 0.0, sample_clock_ppm: float = 0.0,
                 cfo_correction: bool = True, dc_removal: bool = True, grid: str = "", bandwidth: float = 0.0,
                 modulation: str = "", idle_timeout: float = 0.25):
        gr.basic_block.__init__(self, name="zakotfs_rx", in_sig=[np.complex64], out_sig=[np.uint8])
        self.config = frame_config(preset, grid, bandwidth, modulation)
        self.receiver = Receiver(self.config, backend=backend, estimator=estimator, max_doppler_hz=max_doppler_hz,
                                 cfo_offset_hz=cfo_offset_hz, sample_clock_ppm=sample_clock_ppm,
                                 cfo_correction=cfo_correction, dc_removal=dc_removal)
        self.receiver.warm_up(1)
        self.acquirer = FrameAcquirer(self.config)
        self.idle_timeout = float(idle_timeout)
        self._last_input = time.monotonic()
        self.frames = 0
        self.tail_bits = np.empty((0, self.config.bits_per_frame), np.uint8)
        self._pending: list[tuple[np.ndarray, dict]] = []      # (bits [B], metadata) not yet output
        self._offset = 0                                         # bits of _pending[0] already output
        self._pdus, self._llr, self._tag = pmt.intern("pdus"), pmt.intern("llr"), pmt.intern("zakotfs_frame")
        self.message_port_register_out(self._pdus)
        self.message_port_register_out(self._llr)

    def _holding(self) -> bool:
        """Does the acquirer hold a frame that waits for its successor's preamble?"""
        return self.acquirer.state == "track"

    def forecast(self, noutput_items, ninputs):
        """No input needed while decoded bits wait to be output or a frame is held (then
        ``general_work`` runs without input, to decode it once the input has been idle
        ``idle_timeout``); else one sample, and a stream that has ended ends the block."""
        return [0 if self._pending or self._holding() else 1] * ninputs

    def _decode(self, frames: list[tuple[np.ndarray, dict]]) -> list[tuple[np.ndarray, dict]]:
        """(bits [B], metadata) of each acquired frame, its PDUs posted."""
        if not frames:
            return []
        result = self.receiver.process(np.stack([f for f, _ in frames]))
        stats = present(result)
        decoded = []
        for i, (_, meta) in enumerate(frames):
            info = {"seq": int(meta["seq"]), "start": int(meta.get("start", -1)),
                    "preamble_cfo_hz": float(meta.get("cfo_hz", np.nan)),
                    **{name: (bool(v[i]) if v.dtype == bool else float(v[i])) for name, v in stats.items()}}
            meta_pmt = pmt.to_pmt(info)
            bits = np.ascontiguousarray(result.bits[i], np.uint8)
            llr = np.asarray(result.llr[i], np.float32) * (result.llr_step or 1.0)
            self.message_port_pub(self._pdus, pmt.cons(meta_pmt, pmt.init_u8vector(bits.size, bits)))
            self.message_port_pub(self._llr, pmt.cons(meta_pmt, pmt.init_f32vector(llr.size, llr)))
            decoded.append((bits, info))
        self.frames += len(frames)
        return decoded

    def general_work(self, input_items, output_items):
        samples = input_items[0]
        if len(samples):
            self._last_input = time.monotonic()
            self._pending += self._decode(self.acquirer.push(np.array(samples, np.complex64)))
            self.consume(0, len(samples))
        elif not self._pending and self._holding():
            if time.monotonic() - self._last_input >= self.idle_timeout:
                self._pending += self._decode(self.acquirer.flush())
            else:
                time.sleep(_POLL_S)
        out, produced = output_items[0], 0
        while self._pending and produced < len(out):
            bits, info = self._pending[0]
            if self._offset == 0:
                self.add_item_tag(0, self.nitems_written(0) + produced, self._tag, pmt.to_pmt(info))
            n = min(len(out) - produced, bits.size - self._offset)
            out[produced:produced + n] = bits[self._offset:self._offset + n]
            produced += n
            self._offset += n
            if self._offset == bits.size:
                self._pending.pop(0)
                self._offset = 0
        return produced

    def stop(self):
        """The flowgraph stopped before ``idle_timeout`` passed: decode the frame still held
        (PDUs posted, bits in ``tail_bits``)."""
        tail = self._decode(self.acquirer.flush())
        if tail:
            self.tail_bits = np.stack([bits for bits, _ in tail])
        return True
