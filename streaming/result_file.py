"""Decoded results to an HDF5 file, frame by frame.

Layout (all datasets grow along axis 0, one row a frame, in the order written):

* ``/bits`` uint8 [F, B] hard decisions (B = ``bits_per_frame``);
* ``/llr`` float32 [F, B] LLRs (positive: bit 0), or int8 [F, B] codes with the attribute
  ``llr_step`` (LLR = code x ``llr_step``);
* ``/seq`` int64 [F] the sender's frame numbers;
* root attribute ``zakotfs_config``: the frame configuration as JSON.
"""
from __future__ import annotations

import os

import h5py
import numpy as np

from zakotfs.config import FrameConfig

__all__ = ["ResultFileWriter"]


class ResultFileWriter:
    """``writer(result, metas)`` appends a batch: ``result.bits`` uint8 [F, B], ``result.llr``
    [F, B] (float32, or int8 codes of ``llr_step``) and each meta's ``seq``; ``close()``.
    A result without LLRs is a ``ValueError`` (remote workers send them with
    ``--payload both``). The file is written in HDF5's single-writer/multiple-reader mode
    and flushed after each batch: a reader (``h5py.File(path, "r", swmr=True)``) sees the
    rows as they come, and every batch flushed stays readable if the process is killed
    before ``close()``."""

    def __init__(self, path: str | os.PathLike, config: FrameConfig, llr_step: float | None = None):
        self.path = os.fspath(path)
        self._file = h5py.File(self.path, "w", libver="latest")
        self._file.attrs["zakotfs_config"] = config.to_json()
        B = config.bits_per_frame
        self._bits = self._file.create_dataset("bits", (0, B), maxshape=(None, B), dtype=np.uint8, chunks=(1, B))
        self._seq = self._file.create_dataset("seq", (0,), maxshape=(None,), dtype=np.int64)
        self._llr = self._file.create_dataset("llr", (0, B), maxshape=(None, B), chunks=(1, B),
                                              dtype=np.float32 if llr_step is None else np.int8)
        if llr_step is not None:
            self._llr.attrs["llr_step"] = llr_step
        self._file.swmr_mode = True         # from here on: rows only, no new objects or attributes

    def __call__(self, result, metas: list[dict]) -> None:
        if result.llr is None:
            raise ValueError(f"--out {self.path}: the results carry no LLRs (start remote workers "
                             "with --payload both)")
        n = self._bits.shape[0]
        for dset, rows in ((self._bits, result.bits), (self._llr, result.llr), (self._seq, [m["seq"] for m in metas])):
            dset.resize(n + len(rows), axis=0)
            dset[n:] = rows
        self._file.flush()

    def close(self) -> None:
        self._file.close()
