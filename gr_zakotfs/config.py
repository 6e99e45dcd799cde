"""The frame configuration a block's parameters name (shared by the transmitter and the
receiver block, which must agree on it)."""
from __future__ import annotations

from zakotfs.config import FrameConfig, design, parse_grid, preset


def frame_config(preset_name: str = "demo", grid: str = "", bandwidth: float = 0.0,
                 modulation: str = "") -> FrameConfig:
    """The preset ``preset_name``; with ``grid`` ("MxN") or ``bandwidth`` (Hz, > 0) a
    configuration designed for them (``zakotfs.config.design``, as ``--grid``/``--bandwidth``
    do); ``modulation`` ("" keeps the preset's) overrides the modulation."""
    base = preset(preset_name)
    if grid or bandwidth:
        M, N = parse_grid(grid) if grid else (base.M, base.N)
        return design(M, N, bandwidth or (None if grid else base.bandwidth), modulation or base.modulation)
    return base.replace(modulation=modulation) if modulation else base
