"""The receiver's per-frame statistics: one registry (name, dtype, unit, description) from
which every consumer takes them.

* ``RxResult`` has one field per statistic, float [F] (bool for ``valid``), None where a
  result does not carry it (:class:`FrameStatistics`, its base).
* ``DeviceResult.to_host`` copies them off the device (:func:`from_device`); the real-time
  path packs them into one float32 [F, K] array for a single copy (:func:`pack`,
  :func:`unpack`) and cuts batches to their frames (:func:`take_frames`).
* A result message carries those with ``message`` set (``streaming.zmq_io.FRAME_METRICS``).
* The link statistics summarise every one over the valid frames
  (``streaming.link_stats.LinkStats``, the report's ``frame_statistics``).

A statistic is computed on the device as ``DeviceResult.<source>``, float [F] or, with
``column``, one column of a float [F, 2]; ``finish`` turns those values (host float64 [F])
into the statistic.
"""
from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Callable

import numpy as np

__all__ = ["FrameStatistic", "FRAME_STATISTICS", "FrameStatistics", "from_device", "pack", "unpack",
           "take_frames", "present"]


def _sinr_db(mu: np.ndarray) -> np.ndarray:
    """The post-equalisation SINR mu / (1 - mu) in dB from the LMMSE bias mu."""
    return 10 * np.log10(mu / (1 - mu))


@dataclass(frozen=True)
class FrameStatistic:
    name: str
    dtype: type
    unit: str
    description: str
    source: str
    column: int | None = None
    finish: Callable[[np.ndarray], np.ndarray] | None = None
    message: bool = True

    def device_values(self, device_result):
        """The device array [F] this statistic is computed from."""
        values = getattr(device_result, self.source)
        return values if self.column is None else values[:, self.column]

    def from_values(self, values: np.ndarray) -> np.ndarray:
        """The statistic [F] of ``self.dtype`` from the source's values [F] on the host."""
        if self.dtype is bool:
            return np.asarray(values) > 0.5
        values = np.asarray(values).astype(np.float64)
        return values if self.finish is None else self.finish(values)


FRAME_STATISTICS: tuple[FrameStatistic, ...] = (
    FrameStatistic("noise_var", float, "power per sample", "N0, estimated from the pilot region (or given)",
                   "noise_var"),
    FrameStatistic("sinr_db", float, "dB", "post-equalisation SINR, mu / (1 - mu) of the LMMSE bias mu", "mu",
                   finish=_sinr_db),
    FrameStatistic("cg_residual", float, "", "relative residual of the last CG iteration", "cg_residual"),
    FrameStatistic("valid", bool, "", "False where the input had NaN/Inf samples (the frame erased)", "valid",
                   message=False),
    FrameStatistic("cfo_hz", float, "Hz", "the carrier offset removed (0 where not corrected)", "cfo_hz"),
    FrameStatistic("dc_power", float, "power per sample", "|DC offset|^2 removed (0 where none was detected)",
                   "dc_power"),
    FrameStatistic("delay_first", float, "samples", "first delay of the estimated channel (NaN: not estimated)",
                   "delay_span", column=0),
    FrameStatistic("delay_last", float, "samples", "last delay of the estimated channel (NaN: not estimated)",
                   "delay_span", column=1),
    FrameStatistic("echo_delay", float, "samples",
                   "delay of the farthest pilot echo beyond the tap window (NaN: none; zakotfs.echo)",
                   "echo", column=0),
    FrameStatistic("echo_db", float, "dB", "the strongest pilot echo's power against the channel in the window "
                   "(NaN: none)", "echo", column=1),
)
"""The per-frame statistics, in the order of their packed columns."""

FrameStatistics = make_dataclass(
    "FrameStatistics",
    [(s.name, "np.ndarray | None", field(default=None, kw_only=True)) for s in FRAME_STATISTICS],
    namespace={"__doc__": "One keyword field per statistic of ``FRAME_STATISTICS``: [F] or None.",
               "__module__": __name__})


def from_device(device_result, asnumpy: Callable) -> dict:
    """{name: host array [F]} of every statistic from a ``DeviceResult`` (``asnumpy``: the
    backend's copy to the host)."""
    return {s.name: s.from_values(asnumpy(s.device_values(device_result))) for s in FRAME_STATISTICS}


def pack(device_result, xp):
    """float32 [F, K]: every statistic's device values as one column, in registry order,
    for one copy to the host."""
    return xp.stack([s.device_values(device_result).astype(np.float32) for s in FRAME_STATISTICS], axis=-1)


def unpack(columns: np.ndarray) -> dict:
    """{name: [F]} of the statistics from :func:`pack`'s columns on the host."""
    return {s.name: s.from_values(columns[:, k]) for k, s in enumerate(FRAME_STATISTICS)}


def present(result) -> dict:
    """{name: values [F]} of the statistics ``result`` carries (attributes not None)."""
    return {s.name: values for s in FRAME_STATISTICS if (values := getattr(result, s.name, None)) is not None}


def take_frames(result, n: int) -> dict:
    """{name: values[:n]} of the statistics ``result`` carries (None for the others)."""
    return {s.name: None if (values := getattr(result, s.name, None)) is None else values[:n]
            for s in FRAME_STATISTICS}
