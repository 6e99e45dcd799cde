"""Decision feedback to the channel estimate: the data's leak into the pilot region removed.

The pilot's snapshots (``estimation``) are read from received samples that the design's
channel, delays in [0, max_delay], keeps free of data. A fractional delay is not confined
there: its band-limited (sinc) response decays as 1 / distance, so every data symbol leaks
into the snapshots, and at low bandwidth, where the tap window ends a few samples from the
data, the leak can exceed the noise. An equalised frame tells the receiver what the data
were; their contribution through the estimated channel H_hat,

    r' = r - H_hat s_hat,      s_hat = Z^{-1} place(x_soft),

leaves the pilot's response and the noise in the snapshots, plus the leak of the symbols'
remaining errors through the estimate's error (second order), and the channel is estimated
again from r'. x_soft is each data symbol's posterior mean given its unbiased equalised
value x_hat = x + e, e ~ CN(0, sigma^2), sigma^2 = (1 - mu) / mu (the LMMSE's SINR), per
axis over the QAM levels a_i (3GPP TS 38.211, ``dsp_kernels.qam``):

    E[a | y] = sum_i a_i w_i / sum_i w_i,      w_i = exp(-(y - a_i)^2 / sigma^2),

so that symbols the equaliser is unsure of feed back towards 0 rather than a wrong point.
Array code with a fixed shape and no data-dependent branch: it runs inside the GPU
receiver's CUDA graph (``zakotfs.realtime``).
"""
from __future__ import annotations

from dsp_kernels import xp_of

from .config import FrameConfig
from .zak_transform import inverse_zak

__all__ = ["soft_symbols", "data_signal"]


def soft_symbols(x, error_var, levels):
    """complex [F, n] unbiased symbols, float [F] error variance sigma^2, float [Q] per-axis
    QAM levels -> complex [F, n]: E[x | x_hat] per symbol (module doc)."""
    xp = xp_of(x)
    a = xp.asarray(levels, dtype=x.real.dtype)
    var = error_var.astype(x.real.dtype)[:, None, None]

    def axis(y):
        log_w = -(y[..., None] - a) ** 2 / var                                   # [F, n, Q]
        w = xp.exp(log_w - log_w.max(axis=-1, keepdims=True))
        return (w * a).sum(axis=-1) / w.sum(axis=-1)

    return axis(x.real) + 1j * axis(x.imag)


def data_signal(config: FrameConfig, symbols, data_index):
    """complex [F, n_data] data symbols, int [n_data] their flat DD positions (on the
    symbols' backend) -> complex [F, MN]: the time signal of the data alone, Z^{-1} place(x)
    (zero on the guard and the pilot)."""
    xp = xp_of(symbols)
    grid = xp.zeros((symbols.shape[0], config.MN), dtype=symbols.dtype)
    grid[:, data_index] = symbols
    return inverse_zak(grid.reshape(-1, config.M, config.N))
