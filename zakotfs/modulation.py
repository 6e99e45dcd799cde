"""The receiver's soft-bit output formats; the 3GPP TS 38.211 QAM mapping and max-log
demapping it uses are ``dsp_kernels.qam`` (re-exported here)."""
from __future__ import annotations

from dsp_kernels.qam import MODULATIONS, Constellation, bits_per_symbol, constellation

__all__ = ["MODULATIONS", "bits_per_symbol", "Constellation", "constellation", "LLR_FORMATS", "LLR_INT8_STEP"]

LLR_FORMATS = ("float32", "int8")

LLR_INT8_STEP = 16 / 127
"""int8 LLRs: code q stands for LLR = q x step, |LLR| clipped at 16 (a bit error
probability of e^-16); a quarter of float32's bytes to copy and send
(``python -m bench.operator_accuracy precision`` compares the LLRs' mutual information
with the sent bits against float32's)."""
