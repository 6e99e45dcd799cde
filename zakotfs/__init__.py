"""zakotfs: a real-time Zak-OTFS receiver (CuPy on the GPU, numpy/Numba on the CPU)."""
from .config import PRESETS, FrameConfig, design, parse_grid, preset
from .frame import FrameBuilder, add_cp, extract_data, pilot_grid, place_data, random_bits, remove_cp
from .modulation import MODULATIONS, Constellation, bits_per_symbol, constellation
from .preamble import zadoff_chu
from .theory import awgn_ber, qfunc
from .zak_transform import inverse_zak, zak

__version__ = "0.1.0"

__all__ = [
    "FrameConfig", "PRESETS", "preset", "design", "parse_grid",
    "FrameBuilder", "pilot_grid", "place_data", "extract_data", "add_cp", "remove_cp", "random_bits",
    "MODULATIONS", "Constellation", "constellation", "bits_per_symbol",
    "zadoff_chu", "zak", "inverse_zak", "awgn_ber", "qfunc",
]
