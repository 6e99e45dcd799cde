"""The emulator's exact channel (``channel_models.paths.FramePaths``) in the receiver's
operator form (``zakotfs.channel_operator.ChannelOperator``): the perfect channel state
the estimated one is measured against."""
from __future__ import annotations

import numpy as np

from channel_models.fractional_delay import circular_delay_response
from channel_models.paths import FramePaths

from .channel_operator import ChannelOperator

__all__ = ["exact_operator"]


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
