"""Frame builder and splitter: pilot, guard, data placement, preamble and cyclic prefix.

Transmit: x[k, l] = a_p at (k_p, l_p), 0 on the rest of the guard delay bins
k_p - g_neg ... k_p + g_pos (all l), data symbols elsewhere in order k ascending,
l fastest; s = inverse_zak(x); wire = preamble + s[MN - cp_len:] + s.
"""
from __future__ import annotations

import numpy as np

from dsp_kernels import xp_of

from .config import FrameConfig
from .modulation import constellation
from .preamble import zadoff_chu
from .zak_transform import inverse_zak

__all__ = ["FrameBuilder", "pilot_grid", "place_data", "extract_data", "add_cp", "remove_cp",
           "random_bits"]


def pilot_grid(config: FrameConfig, dtype=np.complex128) -> np.ndarray:
    """complex [M, N]: the pilot alone (a_p at (k_p, l_p))."""
    grid = np.zeros((config.M, config.N), dtype=dtype)
    grid[config.pilot_k, config.pilot_l] = config.pilot_amplitude
    return grid


def place_data(config: FrameConfig, symbols):
    """complex [..., n_data] -> complex [..., M, N] with zeros at the guard and pilot."""
    xp = xp_of(symbols)
    if symbols.shape[-1] != config.n_data:
        raise ValueError(f"symbols: last axis {symbols.shape[-1]}, expected n_data={config.n_data}")
    grid = xp.zeros(symbols.shape[:-1] + (config.M * config.N,), dtype=symbols.dtype)
    grid[..., xp.asarray(config.data_index)] = symbols
    return grid.reshape(symbols.shape[:-1] + (config.M, config.N))


def extract_data(config: FrameConfig, grid):
    """complex [..., M, N] -> complex [..., n_data] (placement order)."""
    xp = xp_of(grid)
    flat = grid.reshape(grid.shape[:-2] + (config.M * config.N,))
    return flat[..., xp.asarray(config.data_index)]


def add_cp(s, cp_len: int):
    """[..., L] -> [..., cp_len + L], prefix = last cp_len samples."""
    xp = xp_of(s)
    return xp.concatenate([s[..., s.shape[-1] - cp_len:], s], axis=-1) if cp_len else s


def remove_cp(r, cp_len: int):
    """[..., cp_len + L] -> [..., L]."""
    return r[..., cp_len:]


def random_bits(config: FrameConfig, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [n_frames, bits_per_frame] uniform payload bits."""
    return rng.integers(0, 2, size=(n_frames, config.bits_per_frame), dtype=np.uint8)


class FrameBuilder:
    """Transmitter for one configuration: bits -> DD grid -> wire samples.

    Set-up (pilot grid, preamble, constellation) happens once; ``build`` is called per batch.
    """

    def __init__(self, config: FrameConfig):
        self.config = config
        self.constellation = constellation(config.modulation)
        self.pilot = pilot_grid(config)
        self.preamble = zadoff_chu(config.preamble_len) if config.preamble_len else np.zeros(0)

    def grid(self, bits: np.ndarray) -> np.ndarray:
        """uint8 [F, bits_per_frame] -> complex128 [F, M, N] DD grid with pilot."""
        bits = np.atleast_2d(bits)
        if bits.shape[-1] != self.config.bits_per_frame:
            raise ValueError(f"bits: {bits.shape[-1]} per frame, expected {self.config.bits_per_frame}")
        return place_data(self.config, self.constellation.map(bits)) + self.pilot

    def build(self, bits: np.ndarray) -> np.ndarray:
        """uint8 [F, bits_per_frame] -> complex64 [F, samples_per_frame] wire samples
        (preamble + CP + inverse Zak of the grid)."""
        s = add_cp(inverse_zak(self.grid(bits)), self.config.cp_len)
        pre = np.broadcast_to(self.preamble, s.shape[:-1] + self.preamble.shape)
        return np.concatenate([pre, s], axis=-1).astype(np.complex64)

    def stream(self, bits: np.ndarray) -> np.ndarray:
        """uint8 [F, bits_per_frame] -> complex64 [F * samples_per_frame] back-to-back frames."""
        return self.build(bits).reshape(-1)
