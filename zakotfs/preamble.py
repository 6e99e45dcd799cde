"""Zadoff-Chu acquisition preamble sent before each frame's cyclic prefix.

x[n] = exp(-j pi u n (n + 1) / L) for odd L (n (n) / L for even L), unit modulus, so the
preamble carries the same energy per sample as data. Its periodic autocorrelation is an
impulse, which makes the normalised cross-correlation peak sharp (see
``streaming.acquisition``). Overhead: ``preamble_len`` samples a frame.
"""
from __future__ import annotations

import numpy as np

__all__ = ["zadoff_chu"]


def zadoff_chu(length: int, root: int = 25) -> np.ndarray:
    """complex128 [length] Zadoff-Chu sequence of root ``root`` (coprime with length)."""
    if length <= 0:
        raise ValueError(f"preamble length must be positive, got {length}")
    n = np.arange(length)
    root = root % length or 1
    while np.gcd(root, length) != 1:
        root += 1
    cf = length % 2
    return np.exp(-1j * np.pi * root * n * (n + cf) / length)
