"""``zakotfs_tx``: a GNU Radio source of Zak-OTFS frames."""
from __future__ import annotations

import numpy as np
import pmt
from gnuradio import gr

from zakotfs.frame import FrameBuilder, random_bits

from .config import frame_config

__all__ = ["zakotfs_tx"]

FRAME_TAG = "zakotfs_seq"
"""Stream tag on each frame's first sample: the frame's number (long)."""


class zakotfs_tx(gr.sync_block):
    """Source of back-to-back Zak-OTFS frames of random payload bits.

    Output: complex64 stream, ``config.samples_per_frame`` samples a frame (preamble, CP,
    the M N delay-Doppler samples), at ``config.bandwidth`` samples per second, each frame's
    first sample tagged ``zakotfs_seq`` with its number.

    Parameters
    ----------
    preset, grid, bandwidth, modulation
        The frame configuration (:func:`gr_zakotfs.config.frame_config`); the receiver must
        be given the same.
    frames : int
        Frames to send, then the block is done (the flowgraph ends); 0: without end.
    seed : int
        Seed of the payload bits: with ``frames`` > 0, the samples are those of
        ``zakotfs tx --frames FRAMES --seed SEED`` with the same configuration.

    ``bits`` holds the payload of the frames made so far, uint8 [frames, bits_per_frame]
    (with ``frames`` = 0, the last 64 frames').
    """

    def __init__(self, preset: str = "demo", frames: int = 0, seed: int = 0, grid: str = "",
                 bandwidth: float = 0.0, modulation: str = ""):
        gr.sync_block.__init__(self, name="zakotfs_tx", in_sig=None, out_sig=[np.complex64])
        if frames < 0:
            raise ValueError(f"frames must be >= 0 (0: without end), got {frames}")
        self.config = frame_config(preset, grid, bandwidth, modulation)
        self.frames = int(frames)
        self._builder = FrameBuilder(self.config)
        self._rng = np.random.default_rng(seed)
        self.bits = random_bits(self.config, self.frames, self._rng) if self.frames else np.empty(
            (0, self.config.bits_per_frame), np.uint8)
        self._stream = self._builder.stream(self.bits) if self.frames else np.empty(0, np.complex64)
        self._pos = 0           # next sample of _stream to send
        self._base = 0          # frame number of _stream's first frame
        self._tag = pmt.intern(FRAME_TAG)

    def _next_chunk(self) -> bool:
        """Without end: make the next 8 frames' samples; False once ``frames`` are sent."""
        if self.frames:
            return False
        bits = random_bits(self.config, 8, self._rng)
        self._base += len(self._stream) // self.config.samples_per_frame
        self._stream, self._pos = self._builder.stream(bits), 0
        self.bits = np.concatenate([self.bits, bits])[-64:]
        return True

    def work(self, input_items, output_items):
        out = output_items[0]
        if self._pos >= len(self._stream) and not self._next_chunk():
            return -1                                      # WORK_DONE
        n = min(len(out), len(self._stream) - self._pos)
        out[:n] = self._stream[self._pos:self._pos + n]
        L = self.config.samples_per_frame
        first = -(-self._pos // L) * L                      # the first frame start in [pos, pos + n)
        for start in range(first, self._pos + n, L):
            self.add_item_tag(0, self.nitems_written(0) + start - self._pos, self._tag,
                              pmt.from_long(self._base + start // L))
        self._pos += n
        return n
