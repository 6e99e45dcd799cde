"""Channel models: power-delay profiles, path realisations, the streaming sample-level
emulator (the physics the receiver is judged on) and the DD twisted-convolution model."""
from .channel_stage import ChannelStage
from .dd_model import dd_twisted_convolution
from .emulator import DEFAULT_HALF_LEN, ChannelEmulator, apply_channel, noise_var_from_snr_db
from .fractional_delay import (band_edge_response, circular_delay_response, delay_kernel,
                               fractional_delay_nmse, fractional_delay_taps)
from .paths import (DOPPLER_MODELS, GAIN_MODELS, FramePaths, PathSet, apply_frame_circular,
                    check_cp, draw_paths, on_grid_paths)
from .profiles import PROFILES, SPEED_OF_LIGHT, PowerDelayProfile, doppler_from_speed, load_profile

__all__ = [
    "PowerDelayProfile", "PROFILES", "load_profile", "doppler_from_speed", "SPEED_OF_LIGHT",
    "PathSet", "FramePaths", "draw_paths", "on_grid_paths", "apply_frame_circular", "check_cp",
    "DOPPLER_MODELS", "GAIN_MODELS",
    "band_edge_response", "delay_kernel", "circular_delay_response", "fractional_delay_taps",
    "fractional_delay_nmse",
    "ChannelEmulator", "ChannelStage", "apply_channel", "noise_var_from_snr_db", "DEFAULT_HALF_LEN",
    "dd_twisted_convolution",
]
