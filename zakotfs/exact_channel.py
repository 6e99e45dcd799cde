"""The emulator's exact channel (``channel_models.paths.FramePaths``) in the receiver's
operator form (``zakotfs.channel_operator.ChannelOperator``), and the BER of the receiver
given it: the perfect channel state the estimated one is measured against."""
from __future__ import annotations

import numpy as np

from channel_models.fractional_delay import circular_delay_response
from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths

from .channel_operator import ChannelOperator
from .receiver import Receiver

__all__ = ["exact_operator", "perfect_csi_ber"]


def exact_operator(paths: FramePaths, L: int, dtype=np.complex128) -> ChannelOperator:
    """The channel of ``paths`` over a frame of L samples as a :class:`ChannelOperator` with
    frames stacked on the leading axis ([F] from :meth:`FramePaths.stack`, or one frame):
    one basis function per path, its gain h_i[q] (``FramePaths.gains``, q in [0, L)), and
    the circular band-limited delay of ``circular_delay_response`` (roll-off included)."""
    basis = paths.gains(np.arange(L)).astype(dtype)                              # [(F,) P, L]
    taps_fft = circular_delay_response(L, paths.delay, paths.rolloff).astype(dtype)
    if basis.ndim == 2:                                                          # one frame
        basis, taps_fft = basis[None], taps_fft[None]
    return ChannelOperator(basis, taps_fft)


def perfect_csi_ber(receiver: Receiver, emulator: ChannelEmulator, received: np.ndarray, lead: int,
                    bits: np.ndarray, snr_db: float) -> float:
    """BER of the LMMSE receiver given the emulator's exact channel (its CFO included),
    noise variance (Es/N0 ``snr_db``, dB) and DC offset (removed), on the frames
    ``receiver`` decoded (``received`` complex64 [n], the emulator's output, frame k at
    ``lead`` + k x samples_per_frame; ``bits`` uint8 [K, B] sent): the bound the
    estimated-CSI receiver is measured against, with its CG iterations and operator window."""
    config = receiver.config
    perfect = Receiver(config, backend=receiver.backend, estimator="perfect",
                       cg_iterations=receiver.cg_iterations, operator_window=receiver.operator_window)
    spf, skip = config.samples_per_frame, config.preamble_len
    errors = 0
    for f in range(bits.shape[0]):
        start = lead + f * spf + skip
        t0 = start + config.cp_len
        fp = FramePaths.stack([emulator.frame_paths(t0)])
        frame = received[None, start:start + config.cp_len + config.MN] - np.complex64(emulator.dc_offset)
        result = perfect.process(frame, operator=exact_operator(fp, config.MN), noise_var=10 ** (-snr_db / 10))
        errors += int(np.count_nonzero(result.bits[0] != bits[f]))
    return errors / bits.size
