"""The receiver pipeline: CP removal -> pilot channel estimate -> pilot cancellation ->
CG-LMMSE -> forward Zak -> unbiased symbols and max-log LLRs.

One class precomputes everything shape-dependent (masks, pilot waveform, DPSS basis,
snapshot pseudo-inverses) once; ``process`` runs per batch of frames.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from dsp_kernels import Backend, get_backend
from dsp_kernels.fused import frequency_shift, quantize_llr, split_last

from .cfo import PilotCFO, snapshot_rotation
from .dc_offset import dc_estimate, noise_only_index
from .sco import compensation
from .channel_operator import ChannelOperator, DelayAtoms
from .config import FrameConfig
from .equalizer import (PRIORS, cg_lmmse, data_mask, default_prior, default_segments, lmmse_bias,
                        local_power, spectrum_stride)
from .estimation import AccurateEstimator, ChannelEstimate, PaperEstimator, fit_range, tap_window
from .decision_feedback import data_signal, soft_symbols
from .frame import pilot_grid
from .frame_stats import FrameStatistics, from_device
from .modulation import LLR_FORMATS, LLR_INT8_STEP, constellation
from .echo import PilotEchoes
from .windowed_operator import WindowedOperator, default_window, window_coefficients, window_overlap, window_polynomials
from .zak_transform import inverse_zak, zak

__all__ = ["Receiver", "RxResult", "DeviceResult", "ESTIMATORS", "PRIORS", "CG_ITERATIONS", "TIMING_BACKOFF", "modelled_delays",
           "ESTIMATE_PASSES", "default_backoff"]

ESTIMATORS = ("accurate", "paper", "perfect")

CG_ITERATIONS = {"qpsk": 8, "16qam": 12, "64qam": 24, "256qam": 32}
"""Default CG iterations. Higher orders work at higher SNR, where CG converges more
slowly. Measured with ``python -m bench.cg_tuning ber`` on the demo grid, Veh-A, 6
realisations, with ``default_segments``' windows and the window-averaged preconditioner
(BER with perfect CSI / ``accurate``):

- 16QAM at 24 dB, 1.74 Doppler bins (S = 64): 8 iterations 1.25e-3 / 1.52e-3, 12
  1.24e-3 / 1.47e-3, 24 1.20e-3 / 1.46e-3.
- 16QAM at 28 dB, 3.5 bins (S = 128): 8 iterations 1.02e-4 / 1.43e-4, 12 6.5e-5 /
  1.03e-4, 24 5.3e-5 / 9.5e-5. Fewer iterations are an option (``cg_iterations``) that
  costs BER at high SNR.
- QPSK at 14 dB: 4, 8 and 16 iterations give the same BER, 3.3e-3 / 3.6e-3.
- 64QAM at 32 dB: 16 iterations 1.28e-3 / 1.72e-3, 24 1.18e-3 / 1.64e-3, 48 1.06e-3 /
  1.56e-3."""


TIMING_BACKOFF = 1
"""Samples into the cyclic prefix where the receiver starts reading a frame it estimates,
where the grid affords it (``default_backoff``). The channel then appears that much later,
so a frame placed up to that many samples late (the acquirer's error,
``streaming.acquisition``) still sees a causal, circular channel: read late, the frame's
last samples hold the next preamble's leading edge in place of the prefix's copy of the
frame's start."""

ESTIMATE_PASSES = 1
"""Default channel estimates per frame (``Receiver``'s ``estimate_passes``); a second one
removes the first equalisation's data from the pilot's region (``decision_feedback``)."""

FEEDBACK_CG_ITERATIONS = 4
"""CG iterations of the equalisations that only feed an estimate pass back (the last one runs
``cg_iterations``): the soft symbols need the large errors gone, not the last digits."""


def default_backoff(config: FrameConfig) -> int:
    """TIMING_BACKOFF, at most what the cyclic prefix holds beyond the design's largest delay
    (cp_len - max_delay) and what the guard holds left of the tap window: read b samples
    early, the data before the guard reaches max_delay - guard_neg + b, which must stay
    before the window's first tap -t_neg (the window reaches b taps further right,
    ``estimation.tap_window``); at least 0."""
    t_neg, _ = config.tap_window
    spare = min(config.cp_len - config.max_delay, config.guard_neg - config.max_delay - t_neg)
    return max(0, min(TIMING_BACKOFF, spare))


def modelled_delays(config: FrameConfig) -> tuple[float, float]:
    """[lo, hi]: the delays (samples from a frame's placement) that a receiver with
    ``default_backoff`` models: the accurate estimator's ``fit_range``, the back-off earlier."""
    backoff = default_backoff(config)
    lo, hi = fit_range(config, backoff)
    return lo - backoff, hi - backoff


@dataclass
class RxResult(FrameStatistics):
    """Per-batch output (host numpy arrays); the per-frame statistics are keyword fields
    from ``zakotfs.frame_stats.FRAME_STATISTICS`` (``noise_var``, ``sinr_db``, ``cg_residual``,
    ``valid``, ``cfo_hz``, ...: [F] or None)."""

    bits: np.ndarray          # uint8 [F, bits_per_frame]
    llr: np.ndarray           # float32 (or int8 codes, llr_step) [F, bits_per_frame], positive: bit 0; 0 for invalid frames
    symbols: np.ndarray | None  # complex64 [F, n_data] unbiased equalised symbols (keep_symbols)
    stage_s: dict = field(default_factory=dict)   # seconds per stage for this batch
    llr_step: float | None = None   # int8 LLRs: LLR = llr x llr_step; None: float32 LLRs


@dataclass
class DeviceResult:
    """``Receiver.run``'s output, arrays on the backend (shapes as in RxResult; mu: the
    LMMSE bias [F], SINR = mu / (1 - mu))."""

    llr: object
    bits: object
    symbols: object
    noise_var: object
    mu: object
    cg_residual: object
    valid: object
    cfo_hz: object
    dc_power: object
    delay_span: object      # float [F, 2]: first and last delay of the estimated channel (NaN: none)
    echo: object            # float [F, 2]: the farthest pilot echo's delay, the strongest one's dB (NaN: none; ``zakotfs.echo``)

    def to_host(self, backend: Backend, llr: np.ndarray, bits: np.ndarray, keep_symbols: bool,
                stages: dict, llr_step: float | None) -> RxResult:
        """RxResult with the already-copied ``llr`` and ``bits`` and the small arrays copied now."""
        return RxResult(
            bits=bits, llr=llr,
            symbols=backend.asnumpy(self.symbols).astype(np.complex64) if keep_symbols else None,
            stage_s=stages, llr_step=llr_step, **from_device(self, backend.asnumpy),
        )


class Receiver:
    """Zak-OTFS receiver for one frame configuration.

    Parameters
    ----------
    config : FrameConfig
    backend : "auto" | "cpu" | "gpu" | Backend
    estimator : "accurate" | "paper" | "perfect"
        ``perfect`` takes the true operator and noise variance passed to ``process``.
    max_doppler_hz : float
        Largest Doppler the estimator is designed for.
    path_fit : bool or None
        The accurate estimator's path fit (``AccurateEstimator``: each atom one delay and
        one Doppler tone, kept per frame where it explains the pilot better). None: on the
        CPU, which runs it compiled.
    prior : "data" | "unit" | None
        The equaliser's prior on the guard and pilot samples (``zakotfs.equalizer``): "data"
        gives them zero variance, the exact LMMSE; "unit" unit variance, the system that
        the preconditioner inverts almost exactly. None: ``equalizer.default_prior`` (data
        where the guard is a tenth of the delay bins or more).
    cg_iterations : int or None
        Fixed CG iteration count (None: ``CG_ITERATIONS`` for the modulation).
    segments : int or None
        Preconditioner windows (None: ``default_segments`` for the grid, the tap window and
        ``max_doppler_hz``); ``python -m bench.cg_tuning`` measures the choice.
    operator_window : int or None
        Apply the channel as LTI filters per window of this many samples
        (``zakotfs.windowed_operator``); 0: the exact frame-long operator; None:
        ``default_window`` for the grid, the tap window and ``max_doppler_hz`` (0 where no
        window keeps the predicted error under -40 dB). The overlap of the blocks is
        ``window_overlap``'s.
    dtype : complex64 (real-time default) or complex128
    keep_symbols : bool
        Also return the equalised symbols (an extra device-to-host copy per frame).
    llr_format : "float32" | "int8"
        int8: LLRs as int8 codes of step ``LLR_INT8_STEP`` (``RxResult.llr_step``), quantised
        on the device: a quarter of the bytes to copy back and to send on.
    cfo_correction : bool
        Estimate each frame's carrier-frequency offset from the pilot and remove it before
        the channel estimate (``zakotfs.cfo``; range +-nu_p / 2 around ``cfo_offset_hz``;
        whole Doppler bins for the ``paper`` estimator). Not with perfect CSI, whose operator
        already holds the offset.
    cfo_offset_hz : float
        A known carrier offset (Hz), removed from every frame before the pilot's estimate,
        which then covers +-nu_p / 2 around it: what an offset beyond that range needs (the
        rx summary suggests it from the preamble).
    dc_removal : bool
        Remove a DC offset where the pilot's guard shows one (``zakotfs.dc_offset``), before
        the CFO and the channel estimate. Not with perfect CSI.
    estimate_passes : int
        Channel estimates per frame: after the first, each equalises the frame, removes the
        data's contribution through the estimate from the pilot's region and estimates again
        (``zakotfs.decision_feedback``); the last estimate is the one equalised with. Each pass
        costs an estimate and an equalisation of ``FEEDBACK_CG_ITERATIONS``. Ignored with
        perfect CSI.
    timing_backoff : int or None
        Read each frame this many samples into its cyclic prefix when the channel is
        estimated (``frame_start`` = cp_len - timing_backoff), so that a frame placed late by
        up to that many samples still sees a causal, circular channel (``TIMING_BACKOFF``). The
        reported delays (``delay_span``, ``echo``) are measured from the frame's placement
        all the same (the delay fit's range, ``estimation.fit_range``, is the back-off earlier
        in those terms). None: ``default_backoff``. A channel given to ``process`` (perfect CSI)
        is the frame's from cp_len, and is used on it there.
    sample_clock_ppm : float
        A known sample-clock offset (``zakotfs.sco``: the receiver's sample period is 1 +
        ppm x 1e-6 times the transmitter's), undone by resampling each frame after the DC
        and the CFO are removed (with perfect CSI too: it is the front end's, not the
        channel's).
    """

    def __init__(self, config: FrameConfig, *, backend="auto", estimator: str = "accurate",
                 max_doppler_hz: float = 1000.0, path_fit: bool | None = None, prior: str | None = None, cg_iterations: int | None = None,
                 segments: int | None = None, operator_window: int | None = None,
                 dtype=np.complex64, keep_symbols: bool = False, llr_format: str = "float32",
                 cfo_correction: bool = True, cfo_offset_hz: float = 0.0, dc_removal: bool = True,
                 sample_clock_ppm: float = 0.0, estimate_passes: int = ESTIMATE_PASSES,
                 timing_backoff: int | None = None, quiet: bool = False):
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        if llr_format not in LLR_FORMATS:
            raise ValueError(f"llr_format must be one of {', '.join(LLR_FORMATS)}, got {llr_format!r}")
        if config.tap_window[0] < 1:
            raise ValueError("the guard leaves no noise-only delay bins left of the channel "
                             f"(tap_window={config.tap_window}); widen guard_neg or lower max_delay")
        if not (isinstance(estimate_passes, (int, np.integer)) and estimate_passes >= 1):
            raise ValueError(f"estimate_passes must be a positive integer, got {estimate_passes!r}")
        self.estimate_passes = int(estimate_passes)
        if timing_backoff is None:
            timing_backoff = default_backoff(config)
        if not (isinstance(timing_backoff, (int, np.integer)) and 0 <= timing_backoff <= config.cp_len):
            raise ValueError(f"timing_backoff must be an integer in [0, cp_len={config.cp_len}], "
                             f"got {timing_backoff!r}")
        self.timing_backoff = int(timing_backoff)
        self.config = config
        self.backend: Backend = get_backend(backend, quiet=quiet) if isinstance(backend, str) else backend
        self.estimator_name = estimator
        self.dtype = np.dtype(dtype)
        self.keep_symbols = keep_symbols
        self.llr_format = llr_format
        self.cfo_correction = bool(cfo_correction)
        self.dc_removal = bool(dc_removal)
        self.max_doppler_hz = float(max_doppler_hz)
        self._pilot_cfo = PilotCFO(config.N, config.nu_p, max_doppler_hz,            # zakotfs.cfo: whole bins for the paper's read-off
                                   1 / config.frame_time if estimator == "paper" else 0.0, self.backend.xp)
        self.llr_step = LLR_INT8_STEP if llr_format == "int8" else None
        self.constellation = constellation(config.modulation)
        xp = self.backend.xp
        self._levels = xp.asarray(self.constellation.levels)             # on the device once: no copy in a graph
        self._echo_shift = xp.asarray([float(self.timing_backoff), 0.0])
        self.cfo_offset_hz = self.sample_clock_ppm = 0.0
        self._snapshot_rotation = self._resample = None
        self.retune(cfo_offset_hz=cfo_offset_hz, sample_clock_ppm=sample_clock_ppm)
        self._noise_only = xp.asarray(noise_only_index(config))
        self.echoes = PilotEchoes(config, xp)
        taps, doppler_bins = sum(tap_window(config, self.timing_backoff)) + 1, max_doppler_hz * config.frame_time
        self.segments = segments or default_segments(config.MN, taps, doppler_bins)
        if operator_window is None:
            operator_window = default_window(config.MN, taps, doppler_bins)
        if not (isinstance(operator_window, (int, np.integer)) and operator_window >= 0):
            raise ValueError(f"operator_window must be a non-negative integer, got {operator_window!r}")
        if operator_window and (config.MN % operator_window or config.MN // operator_window < 2
                                or operator_window < taps):
            raise ValueError(f"operator_window={operator_window} must divide MN={config.MN} at least "
                             f"twice and cover the {taps} taps of the tap window")
        self.operator_window = operator_window
        self.prior = default_prior(config) if prior is None else prior
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
        if cg_iterations is None:
            cg_iterations = CG_ITERATIONS[config.modulation]
        if not (isinstance(cg_iterations, int) and cg_iterations >= 0):
            raise ValueError(f"cg_iterations must be a non-negative integer, got {cg_iterations!r}")
        self.cg_iterations = cg_iterations
        self._data_mask = data_mask(config, xp, self.dtype.type(0).real.dtype) if self.prior == "data" else None
        self.operator_overlap = window_overlap(config.MN, operator_window, taps, doppler_bins) if operator_window else 0
        if operator_window:
            t_neg, t_pos = tap_window(config, self.timing_backoff)
            self.delay_start = (t_pos - t_neg) // 2 - self.operator_overlap // 2   # taps' support centred
            self.polynomials = xp.asarray(window_polynomials(operator_window),
                                          dtype=self.dtype.type(0).real.dtype)
            self.bin_stride = spectrum_stride(self.segments)
        self.pilot_time = xp.asarray(inverse_zak(pilot_grid(config)).astype(self.dtype))
        self.data_index = xp.asarray(config.data_index)
        if estimator == "paper":
            self.estimator = PaperEstimator(config, max_doppler_hz, backend=self.backend, dtype=self.dtype,
                                            backoff=self.timing_backoff)
        elif estimator == "accurate":
            self.estimator = AccurateEstimator(config, max_doppler_hz, path_fit=path_fit, backend=self.backend,
                                               dtype=self.dtype, backoff=self.timing_backoff)
        else:
            self.estimator = None
        self.path_fit = bool(getattr(self.estimator, "path_fit", False))
        # the windowed operator's fit of a constant basis, once (basis, beta)
        basis = getattr(self.estimator, "operator_basis", None)
        self._window_beta = (basis, window_coefficients(basis, self.polynomials)) \
            if operator_window and basis is not None else None

    @property
    def options(self) -> dict:
        """The constructor's keyword arguments that rebuild this receiver on another backend
        or in another process (``Receiver(config, backend=..., **options)``), the offsets as
        retuned now."""
        return dict(estimator=self.estimator_name, max_doppler_hz=self.max_doppler_hz, path_fit=self.path_fit,
                    prior=self.prior,
                    cg_iterations=self.cg_iterations, segments=self.segments, operator_window=self.operator_window,
                    dtype=self.dtype, keep_symbols=self.keep_symbols, llr_format=self.llr_format,
                    cfo_correction=self.cfo_correction, cfo_offset_hz=self.cfo_offset_hz,
                    dc_removal=self.dc_removal, sample_clock_ppm=self.sample_clock_ppm,
                    estimate_passes=self.estimate_passes, timing_backoff=self.timing_backoff)

    @property
    def frame_start(self) -> int:
        """Where in a frame of cp_len + MN samples the receiver reads its MN samples when it
        estimates the channel: cp_len - timing_backoff."""
        return self.config.cp_len - self.timing_backoff

    def retune(self, *, cfo_offset_hz: float | None = None, sample_clock_ppm: float | None = None) -> None:
        """Set the front end's known offsets (the constructor's ``cfo_offset_hz`` and
        ``sample_clock_ppm``; None keeps one) for the frames run from now on: a live
        re-calibration. A real-time path that captured this receiver's chain in a CUDA
        graph captured the old ones: retune through it (``RealtimeReceiver.retune``)."""
        c, xp = self.config, self.backend.xp
        if cfo_offset_hz is not None:
            if not np.isfinite(cfo_offset_hz):
                raise ValueError(f"cfo_offset_hz must be finite, got {cfo_offset_hz!r}")
            self.cfo_offset_hz = float(cfo_offset_hz)
            self._snapshot_rotation = snapshot_rotation(c, self.cfo_offset_hz, xp, self.dtype, self.timing_backoff) \
                if self.cfo_offset_hz else None
        if sample_clock_ppm is not None:
            if not (np.isfinite(sample_clock_ppm) and abs(sample_clock_ppm) < 1e4):
                raise ValueError(f"sample_clock_ppm must be finite and under 1e4 in size, got {sample_clock_ppm!r}")
            self.sample_clock_ppm = float(sample_clock_ppm)
            self._resample = compensation(c.MN, self.sample_clock_ppm, xp, self.dtype) \
                if self.sample_clock_ppm else None

    def warm_up(self, batch: int = 1) -> float:
        """Process ``batch`` zero frames once, so that Numba's compilation (or its disk
        cache), the FFT plans, the GPU kernels and the memory pool are made before the first
        received frame, whose latency is then the steady state's. Returns the seconds taken
        (0 for the ``perfect`` estimator, which needs a channel to run)."""
        if self.estimator is None:
            return 0.0
        start = time.perf_counter()
        self.process(np.zeros((batch, self.config.cp_len + self.config.MN), np.complex64))
        return time.perf_counter() - start

    def _timed(self, stages: dict, name: str, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        self.backend.synchronize()
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
        return out

    def estimate(self, r) -> ChannelEstimate:
        """complex [F, MN] (CP removed, on the backend) -> channel estimate."""
        return self.estimator(r)

    def equalizer_operator(self, channel: ChannelOperator | DelayAtoms):
        """The operator the equaliser applies: the channel's ``ChannelOperator``, or its
        windowed form (``operator_window``), built from delay atoms where the estimator
        gave them."""
        if not self.operator_window:
            return channel.operator() if isinstance(channel, DelayAtoms) else channel
        build = WindowedOperator.from_atoms if isinstance(channel, DelayAtoms) else WindowedOperator.from_operator
        known = self._window_beta is not None and channel.basis is self._window_beta[0]
        return build(channel, self.polynomials, self.delay_start, self.operator_overlap, self.bin_stride,
                     beta=self._window_beta[1] if known else None)

    def front_end(self, r, estimating: bool = True):
        """complex [F, MN] -> (frames with the front end's offsets undone, DC offset removed
        complex [F], CFO removed float64 [F] in Hz): the DC offset removed where detected and
        the CFO (``cfo_offset_hz`` plus the pilot's estimate) removed, in one pass, then the
        sample clock resampled (``sample_clock_ppm``). The resampling reads the frame as one period of a
        band-limited signal, so it comes last: an offset still in the frame would jump at
        the period's edge (20 kHz over a demo frame: a third of a turn) and spread that step
        over the frame. Without ``estimating`` (perfect CSI, whose operator holds the CFO and
        which is given the DC-free channel), only the sample clock."""
        xp = self.backend.xp
        dc = xp.zeros(r.shape[0], dtype=r.dtype)
        cfo = xp.zeros(r.shape[0])
        if estimating:
            if self.dc_removal:
                dc = dc_estimate(r, self._noise_only)
            cfo += self.cfo_offset_hz
            if self.cfo_correction:
                z = self.estimator.snapshots(r, dc)
                z = z if self._snapshot_rotation is None else z * self._snapshot_rotation
                cfo += self._pilot_cfo(z)
            if self.dc_removal or self.cfo_correction or self.cfo_offset_hz:
                r = frequency_shift(r, -cfo / self.config.bandwidth, dc)
        if self._resample is not None:
            r = self._resample(r)
        return r, dc, cfo

    def run(self, r, *, operator: ChannelOperator | None = None, noise_var=None,
            stages: dict | None = None) -> DeviceResult:
        """complex [F, MN] received frames on the backend, read from ``frame_start`` (from
        cp_len where ``operator`` is given) -> DeviceResult.

        Device work only: no host transfer and no synchronisation unless ``stages`` is
        given (then each stage is synchronised and its seconds added there), so the whole
        chain can be captured in a CUDA graph (``zakotfs.realtime``).
        """
        c, be, xp = self.config, self.backend, self.backend.xp

        def stage(name, fn, *args):
            return fn(*args) if stages is None else self._timed(stages, name, fn, *args)

        if self.estimator is None and operator is None:
            raise ValueError("estimator 'perfect' needs the true channel: pass operator=")
        estimating = operator is None
        r = r.astype(self.dtype, copy=False)
        valid = xp.isfinite(split_last(r)).all(axis=-1).all(axis=-1)   # on the device: NaN/Inf frames are erased
        r, dc, cfo = stage("front_end", self.front_end, xp.where(valid[:, None], r, 0), estimating)
        # windowed: the accurate estimator's atoms, no taps over the whole frame
        fit = getattr(self.estimator, "fit", None) if self.operator_window else None

        def estimate(r):
            """(operator, N0 [F] floored, delay span [F, 2]) from the pilot (the given N0 if any)."""
            est = (fit or self.estimate)(r)
            n0 = est.noise_var if noise_var is None else noise_var
            span = None if est.delay_span is None else est.delay_span - self.timing_backoff
            return est.operator.astype(self.dtype), floor(n0), span

        def floor(n0):
            """float [F] N0 in the receiver's real dtype, floored: a noiseless or erased frame
            must not divide by zero."""
            n0 = xp.broadcast_to(xp.asarray(n0, dtype=np.float64), (r.shape[0],))
            return xp.maximum(xp.asarray(n0, dtype=self.dtype.type(0).real.dtype), 1e-12)

        def equalize(r, operator, iterations=self.cg_iterations):
            operator = self.equalizer_operator(operator)
            data_part = r - operator.apply(xp.broadcast_to(self.pilot_time, r.shape))
            power = local_power(operator, self.segments)
            sol = cg_lmmse(operator, data_part, n0, iterations, self.segments, power, self._data_mask)
            mu = xp.clip(lmmse_bias(power, n0), 1e-6, 1 - 1e-6)
            x = zak(sol.s, c.M, c.N).reshape(r.shape[0], -1)[:, self.data_index] / mu[:, None]
            return x, mu, sol.residual, operator

        def data_leak(x, mu, operator):
            """complex [F, MN]: the equalised data's contribution through the estimated
            channel (``zakotfs.decision_feedback``)."""
            symbols = soft_symbols(x, (1 - mu) / mu, self._levels)
            return operator.apply(data_signal(c, symbols, self.data_index))

        if estimating:
            operator, n0, span = stage("estimate", estimate, r)
            for _ in range(self.estimate_passes - 1):
                x, mu, _, applied = stage("equalize", equalize, r, operator, FEEDBACK_CG_ITERATIONS)
                operator, n0, span = stage("estimate", estimate, r - stage("estimate", data_leak, x, mu, applied))
        else:
            if noise_var is None:
                raise ValueError("perfect CSI needs noise_var= as well")
            operator = ChannelOperator(xp.asarray(operator.basis, dtype=self.dtype),
                                       xp.asarray(operator.taps_fft, dtype=self.dtype))
            n0, span = floor(noise_var), None

        echo = stage("echo", self.echoes, r, n0)
        if estimating:
            echo = echo - self._echo_shift
        x, mu, residual, _ = stage("equalize", equalize, r, operator)
        error_var = (1 - mu) / mu
        llr = stage("demap", be.maxlog_llr, x, error_var[:, None], self.constellation)
        llr = xp.where(valid[:, None, None], llr, 0).reshape(llr.shape[0], -1)     # erasures: no information
        bits = self.constellation.hard_bits(llr)
        if self.llr_step is not None:
            llr = quantize_llr(llr, self.llr_step)
        return DeviceResult(llr=llr, bits=bits, symbols=x,
                            noise_var=n0, mu=mu, cg_residual=residual, valid=valid, cfo_hz=cfo,
                            dc_power=xp.abs(dc) ** 2,
                            delay_span=xp.full((r.shape[0], 2), np.nan) if span is None else span, echo=echo)

    def process(self, frames: np.ndarray, *, operator: ChannelOperator | None = None,
                noise_var=None) -> RxResult:
        """complex64 [F, cp_len + MN] (or [cp_len + MN]) host samples -> RxResult on the host,
        each stage timed (synchronised) in ``RxResult.stage_s``.

        ``operator`` and ``noise_var`` give perfect CSI (required for ``estimator="perfect"``,
        optional overrides otherwise).
        """
        c, be, xp = self.config, self.backend, self.backend.xp
        frames = np.atleast_2d(np.asarray(frames))
        if frames.ndim != 2 or frames.shape[-1] != c.cp_len + c.MN:
            raise ValueError(f"frames: expected shape [F, {c.cp_len + c.MN}] (cp_len + MN), "
                             f"got {frames.shape}")
        stages: dict = {}
        start = self.frame_start if operator is None else c.cp_len
        r = self._timed(stages, "transfer_in", lambda a: xp.asarray(a[:, start:start + c.MN], dtype=self.dtype),
                        frames)
        out = self.run(r, operator=operator, noise_var=noise_var, stages=stages)
        llr_host, bits_host = self._timed(stages, "transfer_out",
                                          lambda: (be.asnumpy(out.llr), be.asnumpy(out.bits)))
        return out.to_host(be, llr_host, bits_host, self.keep_symbols, stages, self.llr_step)
