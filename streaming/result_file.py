"""Decoded results to an HDF5 file, frame by frame, self-described by attributes.

Layout (all datasets grow along axis 0, one row a frame, in the order written):

* ``/bits`` uint8 [F, B] hard decisions (B = ``bits_per_frame``) in the transmitter's
  order (``BIT_ORDER``);
* ``/llr`` float32 [F, B] max-log LLRs (``LLR_CONVENTION``: positive means bit 0), or int8 [F, B] codes
  with the attribute ``llr_step`` (LLR = code x ``llr_step``);
* ``/seq`` int64 [F] the sender's frame numbers: with a truth the row of /truth/bits the
  frame's bits matched (-1: none), else counted from the frame timing
  (``streaming.frame_matching``);
* ``/matched_by`` int8 enum [F] how ``seq`` was found (``MATCHED_BY``: content, position,
  unmatched);
* ``/frame_start`` int64 [F] the frame's first sample in the input stream (-1: unknown);
* ``/preamble_cfo_hz`` float64 [F] the acquirer's coarse carrier offset (NaN: unknown);
* ``/frame_statistics/<name>`` [F]: the receiver's per-frame statistics
  (``zakotfs.frame_stats.FRAME_STATISTICS``: CFO, SINR, CG residual, channel delays, ...),
  NaN (False for ``valid``) where a result does not carry one.

Every dataset has the attributes ``description`` and ``unit`` ("" for a pure number);
the root has ``format`` (``zakotfs-result``), ``format_version``, ``software_version``,
``command``, ``created`` (ISO 8601 UTC), ``llr_convention``, ``bit_order`` and
``zakotfs_config`` (the frame configuration as JSON).
"""
from __future__ import annotations

import datetime
import os

import h5py
import numpy as np

import zakotfs
from zakotfs.config import FrameConfig
from zakotfs.frame_stats import FRAME_STATISTICS

from .frame_matching import MATCH_KINDS

__all__ = ["ResultFileWriter", "RESULT_FORMAT_VERSION", "LLR_CONVENTION", "BIT_ORDER", "MATCHED_BY"]

RESULT_FORMAT_VERSION = 3
"""Version of the layout above (2: no /matched_by, /seq always from the timing; 1: /bits,
/llr, /seq and the configuration only)."""

LLR_CONVENTION = "max-log LLR = log P(b=0) / P(b=1): positive means bit 0"
BIT_ORDER = ("the transmitter's order (zakotfs.frame.FrameBuilder): data symbols in the frame's order, "
             "each symbol's bits b(0)..b(q-1) of the 3GPP TS 38.211 5.1 QAM mapping")
MATCHED_BY = {kind: code for code, kind in enumerate(MATCH_KINDS)}
"""The codes of /matched_by (an HDF5 enum: h5dump prints the names)."""


class ResultFileWriter:
    """``writer(result, metas)`` appends a batch: ``result.bits`` uint8 [F, B], ``result.llr``
    [F, B] (float32, or int8 codes of ``llr_step``), the per-frame statistics ``result``
    carries, and each meta's ``seq`` (optionally ``matched_by``, default ``position``,
    ``start`` and ``cfo_hz``); ``close()``. A result without LLRs is a ``ValueError``.
    ``command``: the command line stored as the root's ``command``.
    The file is written in HDF5's single-writer/multiple-reader mode and flushed after each
    batch: a reader (``h5py.File(path, "r", swmr=True)``) sees the rows as they come, and
    every batch flushed stays readable if the process is killed before ``close()``."""

    def __init__(self, path: str | os.PathLike, config: FrameConfig, llr_step: float | None = None,
                 command: str | None = None):
        self.path = os.fspath(path)
        self._file = h5py.File(self.path, "w", libver="latest")
        attrs = self._file.attrs
        attrs.update({"format": "zakotfs-result", "format_version": RESULT_FORMAT_VERSION,
                      "software_version": zakotfs.__version__, "command": command or "",
                      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "llr_convention": LLR_CONVENTION, "bit_order": BIT_ORDER,
                      "zakotfs_config": config.to_json()})
        B = config.bits_per_frame
        self._bits = self._dataset("bits", (B,), np.uint8, "", "hard decisions, 0 or 1 [frame, bit]; " + BIT_ORDER)
        self._llr = self._dataset("llr", (B,), np.float32 if llr_step is None else np.int8,
                                  "" if llr_step is None else f"{llr_step:.9g} per code",
                                  "log-likelihood ratios [frame, bit]; " + LLR_CONVENTION
                                  + ("" if llr_step is None else "; LLR = code x llr_step"))
        if llr_step is not None:
            self._llr.attrs["llr_step"] = llr_step
        self._seq = self._dataset("seq", (), np.int64, "",
                                  "the sender's frame number: the /truth/bits row the frame's bits matched "
                                  "(-1: none) where matched_by is content or unmatched, counted from the frame "
                                  "timing where it is position")
        self._matched_by = self._dataset("matched_by", (), h5py.enum_dtype(MATCHED_BY, basetype="i1"), "",
                                         "how seq was found: content (the truth row nearest the bits, far nearer "
                                         "than a random row), position (from the timing: no truth), unmatched "
                                         "(no truth row near enough: erased or decoded past recognition)")
        self._start = self._dataset("frame_start", (), np.int64, "samples",
                                    "the frame's first sample in the input stream (-1: unknown)")
        self._preamble_cfo = self._dataset("preamble_cfo_hz", (), np.float64, "Hz",
                                           "the acquirer's coarse carrier offset from the preamble (NaN: unknown)")
        group = self._file.create_group("frame_statistics")
        group.attrs["description"] = "the receiver's per-frame statistics (zakotfs.frame_stats), one row a frame"
        self._stats = {s.name: self._dataset(f"frame_statistics/{s.name}", (), bool if s.dtype is bool else np.float64,
                                             s.unit, s.description) for s in FRAME_STATISTICS}
        self._file.swmr_mode = True         # from here on: rows only, no new objects or attributes

    def _dataset(self, name: str, row: tuple, dtype, unit: str, description: str):
        chunks = (max(1, min(1024, 65536 // max(1, int(np.prod(row))))),) + row
        dset = self._file.create_dataset(name, (0,) + row, maxshape=(None,) + row, dtype=dtype, chunks=chunks)
        dset.attrs["unit"], dset.attrs["description"] = unit, description
        return dset

    def __call__(self, result, metas: list[dict]) -> None:
        if result.llr is None:
            raise ValueError(f"--out {self.path}: the results carry no LLRs")
        n, F = self._bits.shape[0], len(metas)
        columns = [(self._bits, result.bits), (self._llr, result.llr), (self._seq, [m["seq"] for m in metas]),
                   (self._matched_by, [MATCHED_BY[m.get("matched_by", "position")] for m in metas]),
                   (self._start, [m.get("start", -1) for m in metas]),
                   (self._preamble_cfo, [m.get("cfo_hz", np.nan) for m in metas])]
        for stat in FRAME_STATISTICS:
            values = getattr(result, stat.name, None)
            missing = np.ones(F, bool) if stat.dtype is bool else np.full(F, np.nan)
            columns.append((self._stats[stat.name], missing if values is None else np.asarray(values)[:F]))
        for dset, rows in columns:
            dset.resize(n + F, axis=0)
            dset[n:] = rows
        self._file.flush()

    def close(self) -> None:
        self._file.close()
