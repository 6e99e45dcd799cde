"""Frame acquisition in a sample stream: Zadoff-Chu preamble correlation, lock and tracking.

A stream carries frames back to back, each ``preamble + CP + s[0 .. MN-1]``
(``zakotfs.FrameBuilder.stream``). :class:`FrameAcquirer` takes the stream in messages of any
size and hands back each frame's ``cp_len + MN`` samples (preamble stripped, CP kept) with its
absolute position. The design, thresholds and their false-alarm / missed-detection behaviour
are written down in ``docs/frame-timing.md``.

Metric (normalised cross-correlation) at lag n, p the preamble (length L, unit modulus):

.. math::

    c[n] = \\sum_{k=0}^{L-1} r[n+k]\\,p^*[k], \\qquad
    \\rho[n] = \\frac{|c[n]|^2}{L \\cdot \\max\\big(E_L[n],\\ \\alpha \\tfrac{L}{L_w} E_w[n]\\big)}

with E_L[n] the energy of r[n .. n+L-1] and E_w[n] the energy of the centred window
r[n - 3L/2 .. n + L + 3L/2 - 1] (L_w = 4L, alpha = 1/4). rho lies in [0, 1]; on white Gaussian
noise rho (with the floor inactive) is Beta(1, L-1) distributed, P(rho > g) = (1 - g)^(L-1),
which sets the thresholds. The floor keeps windows that hold only a handful of non-zero
samples (guard gaps of a noiseless stream, the edge of a burst) from scoring high.

Why one module of this size: the metric, the timing model (the drift line of the frame
starts) and the acquirer's states all read and move one stream history (the held samples,
their absolute indices, the last frames' timing); split apart, that state would be passed
between modules on every message.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
import scipy.fft as sfft

from zakotfs.config import FrameConfig
from zakotfs.preamble import zadoff_chu

from .sample_format import unusable

__all__ = ["FrameAcquirer", "acquire", "split_aligned", "preamble_metric",
           "false_alarm_threshold"]

NO_PREAMBLE_MESSAGE = ("stream acquisition needs a preamble; configure preamble_len > 0 "
                       "or use file replay with known alignment")

_SEARCH, _REFINE, _TRACK = "search", "refine", "track"
_FLOOR_ALPHA = 0.25          # alpha of the energy floor
_SEARCH_FALSE_LOCKS_PER_FRAME = 1e-3   # false locks per frame-length of noise (default)
_TRACK_FALSE_ALARM = 1e-6    # per tracking check (whole +-search window)
_PATH_FALSE_ALARM = 1e-4     # per first-path look-back window
_MAX_BAD_RANGES = 4096
DRIFT_FRAMES = 8             # frames tracked in a row whose starts (a fitted line) predict the next
_SEARCH_DYNAMIC_RANGE = 1e-6  # search ignores windows 60 dB below the FFT block's mean power


def false_alarm_threshold(preamble_len: int, false_alarm: float) -> float:
    """Metric threshold g with P(rho > g) = ``false_alarm`` per lag on white Gaussian noise.

    rho = |<r, p>|^2 / (|r|^2 |p|^2) for r circularly-symmetric Gaussian in C^L is
    Beta(1, L - 1): P(rho > g) = (1 - g)^(L - 1), so g = 1 - false_alarm^(1 / (L - 1)).
    """
    if not isinstance(preamble_len, (int, np.integer)) or preamble_len < 2:
        raise ValueError(f"preamble_len must be an integer >= 2, got {preamble_len!r}")
    if not 0.0 < false_alarm < 1.0:
        raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm!r}")
    return float(-math.expm1(math.log(false_alarm) / (preamble_len - 1)))


def _check_config(config) -> None:
    if not isinstance(config, FrameConfig):
        raise TypeError(f"config must be a zakotfs.FrameConfig, got {type(config).__name__}")


def _as_stream(samples, name: str = "samples") -> np.ndarray:
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sample array, got shape {arr.shape}")
    if arr.dtype != np.complex64:
        if not (np.issubdtype(arr.dtype, np.complexfloating)
                or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"{name} must be complex64 samples, got dtype {arr.dtype}")
        arr = arr.astype(np.complex64)
    return arr


def split_aligned(stream, config: FrameConfig) -> np.ndarray:
    """Frames of an aligned stream (file replay from sample 0): preamble stripped, CP kept.

    Input: ``stream`` complex64 [n], frame f occupying samples
    ``[f S, (f + 1) S)`` with S = ``config.samples_per_frame``. Works with ``preamble_len = 0``.
    Output: complex64 [F, cp_len + MN], F = n // S, a strided view of ``stream`` (a copy when
    the input is not complex64). Trailing samples shorter than a frame (e.g. a channel's
    delay-spread tail) are ignored.
    """
    _check_config(config)
    arr = _as_stream(stream, "stream")
    S = config.samples_per_frame
    F = arr.shape[0] // S
    return arr[:F * S].reshape(F, S)[:, config.preamble_len:]


def preamble_metric(stream, config: FrameConfig) -> np.ndarray:
    """One-shot normalised preamble correlation rho[n] (module docstring) of a whole stream.

    Input: complex64 [n]. Output: float64 [n - L + 1], rho at every lag whose window fits;
    samples outside the stream count as zeros in the energy floor. Unusable samples
    (``sample_format.unusable``) count as zeros. This is the reference the streaming
    correlator is tested against.
    """
    _check_config(config)
    if config.preamble_len == 0:
        raise ValueError(NO_PREAMBLE_MESSAGE)
    r = _as_stream(stream, "stream").astype(np.complex64)
    bad = unusable(r)
    r = r.astype(np.complex128)
    if bad is not None:
        r[bad] = 0
    L = config.preamble_len
    if r.shape[0] < L:
        return np.zeros(0)
    pre = 3 * L // 2
    p = zadoff_chu(L)
    c = np.correlate(r, p, mode="valid")
    e = np.concatenate([[0.0], np.cumsum(np.pad(np.abs(r) ** 2, (pre, pre)))])
    n = c.shape[0]
    i = np.arange(n)
    e_l = e[i + pre + L] - e[i + pre]
    e_w = e[i + L + 2 * pre] - e[i]
    den = L * np.maximum(e_l, _FLOOR_ALPHA * L / (L + 2 * pre) * e_w)
    return np.abs(c) ** 2 / np.maximum(den, np.finfo(np.float64).tiny)


class FrameAcquirer:
    """Streaming frame synchronisation on the Zadoff-Chu preamble.

    Parameters
    ----------
    config : FrameConfig
        Frame configuration; ``preamble_len`` must be > 0.
    threshold : float, optional
        Acquisition threshold on rho for the full search, and for the confirmation of a
        fresh lock by the next preamble. Default: the value with a false-alarm probability
        ``false_alarm`` per lag on noise (:func:`false_alarm_threshold`).
    search : int
        Tracking window: once locked, the next preamble is looked for at
        ``+samples_per_frame +- search`` samples (default 32).
    track_threshold : float, optional
        Threshold inside the tracking window once a lock is confirmed. Default: false alarm
        1e-6 per check (``2 search + 1`` lags), never above ``threshold``.
    false_alarm : float, optional
        Per-lag false-alarm probability that sets the default ``threshold``. Default
        ``1e-3 / samples_per_frame``: one false lock per 1000 frame-lengths of noise. A false
        lock emits nothing (it is not confirmed one frame later) and loses no samples.
    path_fraction : float
        A lag counts as a path when rho >= ``path_fraction`` x the peak (and above a noise
        floor): the frame start is the earliest such lag at most ``max(config.max_delay, 2)``
        samples before the peak (first path, not strongest path). Default 0.1 (-10 dB).
    jump_tolerance : int, optional
        A frame is emitted only when the next preamble's first path or its strongest path is
        found within this many samples of where it is expected (default ``min(2, search)``);
        when both moved further, samples were dropped or inserted inside the frame, which is
        then counted lost. Where it is expected follows the sender's clock: on the line
        through the starts of the last ``DRIFT_FRAMES`` frames tracked in a row (a
        sample-clock offset of epsilon drifts the frames by about -epsilon S samples each);
        with fewer than three since an acquisition or a jump, S samples after the previous
        preamble, within the drift of a clock off by ``max_clock_ppm`` (at most
        ``search // 2``; 4 samples on the demo grid, 2 on tiny, 16 on paper).
    max_clock_ppm : float
        The largest sample-clock offset assumed before the drift is known (default 200 ppm).
    block : int, optional
        FFT size of the overlap-save search (default: a power of two near one frame,
        between 4 L and 65536).

    Notes
    -----
    ``push(samples)`` takes complex64 [n] (any n >= 0) and returns a list of
    ``(frame, meta)``: ``frame`` complex64 [cp_len + MN], ``meta`` a dict with ``seq``
    (sender frame number estimated from timing, 0 = first frame acquired; consecutive
    emitted frames differ by ``1 + lost_before``), ``start`` (absolute stream index of the
    frame's first CP sample), ``metric`` (peak rho of its preamble), ``cfo_hz`` (carrier-frequency
    offset from the phase between the preamble's halves; not corrected in ``frame``) and
    ``lost_before`` (frames not delivered since the previous emitted frame: lost on timing
    plus dropped as non-finite). Output depends on the stream only, never on how it is cut
    into messages. A frame is emitted once the next frame's preamble has been verified at
    its expected place, or the signal is seen to stop right after it (end of a burst);
    ``flush()`` ends the stream and emits a last complete frame.

    Counters in ``stats``: samples_in, frames_out, frames_lost (estimated from timing),
    frames_bad (dropped for unusable samples), resyncs (lock lost, full search again),
    acquisitions (locks from the full search), false_locks (search locks that the next
    preamble did not confirm), lock_checks (tracking verifications), timing_jumps (next
    preamble found in the tracking window but moved by more than ``jump_tolerance``),
    bursts_ended (no next preamble, but the signal power dropped right after the frame: the
    transmission ended cleanly and the frame is emitted), nonfinite_samples (unusable: NaN,
    Inf or beyond ``sample_format.MAX_MAGNITUDE``; replaced by 0 before any power sum, the
    frames over them dropped), gaps and samples_missing (``skip``: samples known lost between
    two messages).

    Examples
    --------
    >>> import numpy as np, zakotfs
    >>> config = zakotfs.preset("tiny")
    >>> bits = zakotfs.random_bits(config, 3, np.random.default_rng(0))
    >>> tx = zakotfs.FrameBuilder(config).stream(bits)
    >>> acq = FrameAcquirer(config)
    >>> found = acq.push(tx[:5000]) + acq.push(tx[5000:]) + acq.flush()
    >>> [meta["start"] for _, meta in found], found[0][0].shape
    ([64, 2192, 4320], (2064,))
    """

    def __init__(self, config: FrameConfig, *, threshold: float | None = None, search: int = 32,
                 track_threshold: float | None = None, false_alarm: float | None = None,
                 path_fraction: float = 0.1, jump_tolerance: int | None = None, max_clock_ppm: float = 200.0,
                 block: int | None = None):
        _check_config(config)
        if config.preamble_len == 0:
            raise ValueError(NO_PREAMBLE_MESSAGE)
        L = config.preamble_len
        if L < 2:
            raise ValueError(f"preamble_len must be >= 2 for acquisition, got {L}")
        if (not isinstance(search, (int, np.integer)) or search < 0
                or search >= config.samples_per_frame // 4):
            raise ValueError(f"search must be an integer in [0, samples_per_frame / 4 = "
                             f"{config.samples_per_frame // 4}), got {search!r}")
        if jump_tolerance is None:
            jump_tolerance = min(2, search)
        if not isinstance(jump_tolerance, (int, np.integer)) or not 0 <= jump_tolerance <= search:
            raise ValueError(f"jump_tolerance must be an integer in [0, search={search}], "
                             f"got {jump_tolerance!r}")
        if not 0.0 < path_fraction <= 1.0:
            raise ValueError(f"path_fraction must lie in (0, 1], got {path_fraction!r}")
        if false_alarm is None:
            false_alarm = _SEARCH_FALSE_LOCKS_PER_FRAME / config.samples_per_frame
        self.threshold = (false_alarm_threshold(L, false_alarm) if threshold is None
                          else float(threshold))
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
        if track_threshold is None:
            track_threshold = min(self.threshold,
                                  false_alarm_threshold(L, _TRACK_FALSE_ALARM / (2 * search + 1)))
        if not 0.0 < track_threshold < 1.0:
            raise ValueError(f"track_threshold must lie in (0, 1), got {track_threshold!r}")
        self.track_threshold = float(track_threshold)
        self.config = config
        self.search = int(search)
        self.path_fraction = float(path_fraction)
        self.jump_tolerance = int(jump_tolerance)
        if not (math.isfinite(max_clock_ppm) and max_clock_ppm >= 0):
            raise ValueError(f"max_clock_ppm must be a finite number >= 0, got {max_clock_ppm!r}")
        # before the drift is known: a clock off by up to max_clock_ppm, within half the window
        self._first_tolerance = max(self.jump_tolerance,
                                    min(search // 2, math.ceil(max_clock_ppm * 1e-6 * config.samples_per_frame)))
        self._clock_margin = max_clock_ppm * 1e-6 * config.samples_per_frame   # samples a frame

        self._L = L
        self._S = config.samples_per_frame
        self._spread = max(int(config.max_delay), 2)   # first-path look-back / peak look-ahead
        self._pre = 3 * L // 2                          # energy-floor context each side
        self._floor = _FLOOR_ALPHA * L / (L + 2 * self._pre)
        self._path_floor = false_alarm_threshold(L, _PATH_FALSE_ALARM / (self._spread + 1))
        if block is None:
            block = 1 << max(int(self._S).bit_length() - 1, 0)
            block = min(max(block, 1 << (4 * L - 1).bit_length()), 65536)
        if not isinstance(block, (int, np.integer)) or block < 2 * L or block & (block - 1):
            raise ValueError(f"block must be a power of two >= 2 preamble_len = {2 * L}, "
                             f"got {block!r}")
        self.block = int(block)
        self._H = self.block - L + 1                    # lags per search block

        p = zadoff_chu(L)
        self._p = p.astype(np.complex64)
        self._P = np.conj(sfft.fft(p, self.block)).astype(np.complex64)
        pre, S, sp, W = self._pre, self._S, self._spread, self.search
        track_span = S + W + sp + L + 2 * pre + 2
        search_span = self._H + 2 * sp + 2 * L + 2 * pre + 2
        self.capacity = max(track_span, search_span) + max(S, self.block) + 64
        self._buf = np.zeros(self.capacity, dtype=np.complex64)
        n_e = max(self.block, 2 * W + 2 * sp + 2 * L + 2) + 2 * pre
        self._e = np.zeros(n_e + 1, dtype=np.float64)   # cumulative energy, work array
        self._pw = np.empty(n_e, dtype=np.float32)
        self._den = np.empty(self._H, dtype=np.float64)
        self.reset()

    # ---- public ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the stream: counters to 0, next sample is stream index 0."""
        self._b0 = 0            # absolute index of _buf[0]
        self._start = 0         # the stream's samples begin here (0; after a gap, its end): zeros before
        self._n = 0             # valid samples in _buf
        self._state = _SEARCH
        self._pos = 0           # next search lag
        self._n1 = 0            # first threshold crossing (refine)
        self._anchor = 0        # preamble start of the pending frame (track)
        self._anchor_metric = 0.0
        self._anchor_peak = 0   # lag of the strongest path of the pending frame's preamble
        self._anchor_cfo = 0.0
        self._confirmed = False
        self._seq = 0           # seq of the pending frame once confirmed
        self._ref = None        # (preamble start, seq) of the last confirmed frame
        self._track = deque(maxlen=DRIFT_FRAMES)    # (i, preamble start) of frames tracked in a row
        self._next = 0          # where the next preamble should start (track; ``_expected``)
        self._period = float(self._S)               # samples a frame on this clock (``_expected``)
        self._period_margin = self._clock_margin    # how far off it may be, samples a frame
        self._offsets = deque(maxlen=DRIFT_FRAMES)  # first path - placement of the frames tracked
        self._undelivered = 0
        self._bad = []          # sorted, disjoint [a, b) absolute ranges of non-finite input
        self._flushing = False
        self._real_end = 0
        self._stats = dict(samples_in=0, frames_out=0, frames_lost=0, frames_bad=0, resyncs=0,
                           acquisitions=0, false_locks=0, lock_checks=0, timing_jumps=0,
                           bursts_ended=0, nonfinite_samples=0, gaps=0, samples_missing=0)

    @property
    def stats(self) -> dict:
        """Counters (a copy); see the class notes."""
        return dict(self._stats)

    @property
    def state(self) -> str:
        """``"search"`` (no lock), ``"refine"`` (crossing found, locating the first path)
        or ``"track"`` (locked)."""
        return self._state

    def push(self, samples) -> list[tuple[np.ndarray, dict]]:
        """Append complex64 [n] samples; return the frames completed by them, in order."""
        x = _as_stream(samples)
        out: list[tuple[np.ndarray, dict]] = []
        off, total = 0, x.shape[0]
        self._stats["samples_in"] += total
        while off < total:
            room = self.capacity - self._n
            if room == 0:
                self._compact()
                room = self.capacity - self._n
                if room == 0:   # cannot happen: the state machine never needs more than capacity
                    raise RuntimeError("acquisition buffer full")
            k = min(room, total - off)
            dst = self._buf[self._n:self._n + k]
            dst[...] = x[off:off + k]
            self._sanitise(dst, self._b0 + self._n)
            self._n += k
            off += k
            self._advance(out)
        return out

    def flush(self) -> list[tuple[np.ndarray, dict]]:
        """End of stream: search what is left (zero-padded) and emit a last complete frame.

        The one frame whose successor cannot be verified is emitted here. Afterwards the
        acquirer searches again from the current end (counters kept).
        """
        out: list[tuple[np.ndarray, dict]] = []
        end = self._b0 + self._n
        self._flushing, self._real_end = True, end
        try:
            self._advance(out)
        finally:
            self._flushing = False
            self._n = end - self._b0        # drop the zero padding
        self._state, self._pos = _SEARCH, end
        return out

    def skip(self, n: int) -> list[tuple[np.ndarray, dict]]:
        """The next ``n`` samples of the stream are missing: the sender made them and they
        never arrived (a gr-zeromq ``pass_tags`` offset that jumped). The frame being tracked
        is emitted if all its samples came (its successor's preamble, which would have
        placed the next frame, is not looked for), else counted lost; a fresh lock that no
        second preamble has confirmed yet is forgotten. The acquirer then searches again from the
        first sample after the gap, whose stream index is ``n`` on from the last one, so
        that the frames after it keep their ``seq`` and those the gap took are counted lost
        (without the offsets, a cut of a whole number of frames would join two frames' halves
        into one that times right). Returns the frame emitted, if any."""
        out: list[tuple[np.ndarray, dict]] = []
        if n <= 0:
            return out
        self._stats["gaps"] += 1
        self._stats["samples_missing"] += int(n)
        end = self._b0 + self._n
        if self._state == _TRACK and self._confirmed:   # (a fresh lock may be false: forgotten)
            P = self._anchor
            if P + self._S <= end:
                self._deliver(P, out)
            else:
                self._stats["frames_lost"] += 1
                self._undelivered += 1
            self._ref = (P, self._seq)
        self._b0 = self._start = self._pos = end + int(n)
        self._n = 0
        self._bad.clear()
        self._state = _SEARCH
        return out

    # ---- buffer -------------------------------------------------------------------------
    def _sanitise(self, chunk: np.ndarray, start: int) -> None:
        """Zero the unusable samples of ``chunk`` (``sample_format.unusable``: NaN, Inf, or
        beyond ``MAX_MAGNITUDE``), count them and mark their stream range [start + i, ...)
        bad, so that no frame overlapping it is emitted and no power sum sees them."""
        bad = unusable(chunk)
        if bad is None:
            return
        self._stats["nonfinite_samples"] += int(bad.sum())
        chunk[bad] = 0
        edges = np.flatnonzero(np.diff(np.concatenate([[False], bad, [False]]).astype(np.int8)))
        for a, b in zip(edges[0::2] + start, edges[1::2] + start):
            if self._bad and self._bad[-1][1] == a:
                self._bad[-1][1] = int(b)
            else:
                self._bad.append([int(a), int(b)])
        if len(self._bad) > _MAX_BAD_RANGES:      # coarsen (conservative: the union's hull)
            self._bad[-2][1] = self._bad[-1][1]
            del self._bad[-1]

    def _is_clean(self, a: int, b: int) -> bool:
        for lo, hi in self._bad:
            if lo < b and a < hi:
                return False
        return True

    def _keep_from(self) -> int:
        sp, pre = self._spread, self._pre
        if self._state == _TRACK:
            return self._anchor - pre - 1
        if self._state == _REFINE:
            return self._n1 - sp - pre - 1
        return self._pos - sp - pre - 1

    def _compact(self) -> None:
        keep = max(self._keep_from(), self._b0)
        shift = keep - self._b0
        if shift <= 0:
            return
        self._buf[:self._n - shift] = self._buf[shift:self._n]
        self._n -= shift
        self._b0 = keep
        while self._bad and self._bad[0][1] <= keep:
            del self._bad[0]

    def _samples(self, lo: int, hi: int) -> np.ndarray:
        """Absolute samples [lo, hi); zeros before the stream's first sample (at its start, or
        the first after a gap)."""
        if lo >= self._b0:
            return self._buf[lo - self._b0:hi - self._b0]
        if self._b0 != self._start:   # invariant of _keep_from
            raise RuntimeError(f"samples [{lo}, {hi}) already discarded "
                               f"(buffer starts at {self._b0})")
        seg = np.zeros(hi - lo, dtype=np.complex64)
        if hi > self._b0:
            seg[self._b0 - lo:] = self._buf[:hi - self._b0]
        return seg

    def _ensure(self, hi: int) -> bool:
        """Samples up to absolute ``hi`` present? While flushing, zero-pad up to it."""
        end = self._b0 + self._n
        if hi <= end:
            return True
        if not self._flushing:
            return False
        if hi - self._b0 > self.capacity:
            self._compact()
        self._buf[self._n:hi - self._b0] = 0
        self._n = hi - self._b0
        return True

    # ---- correlator -----------------------------------------------------------------------
    def _energies(self, seg: np.ndarray, n: int):
        """Cumulative energy of ``seg`` -> (E_L, E_w) of the n lags that seg covers."""
        L, pre = self._L, self._pre
        m = seg.shape[0]
        if m > self._pw.shape[0]:   # only for look-ups wider than the search block
            self._pw = np.empty(m, dtype=np.float32)
            self._e = np.zeros(m + 1, dtype=np.float64)
        pw, e = self._pw[:m], self._e[:m + 1]
        v = seg.view(np.float32).reshape(m, 2)
        np.add(np.square(v[:, 0]), np.square(v[:, 1]), out=pw)
        np.cumsum(pw, dtype=np.float64, out=e[1:])
        e_l = e[pre + L:pre + L + n] - e[pre:pre + n]
        e_w = e[L + 2 * pre:L + 2 * pre + n] - e[:n]
        return e_l, e_w

    def _search_block(self, pos: int):
        """First lag in [pos, pos + H) with rho > threshold, or None (overlap-save FFT)."""
        L, pre, H = self._L, self._pre, self._H
        seg = self._samples(pos - pre, pos + H + L + pre - 1)
        X = sfft.fft(seg[pre:pre + self.block])
        X *= self._P
        c = sfft.ifft(X, overwrite_x=True)[:H]
        v = c.view(np.float32).reshape(H, 2)
        num = np.square(v[:, 0])
        num += np.square(v[:, 1])
        e_l, e_w = self._energies(seg, H)
        den = self._den
        np.multiply(e_w, self._floor, out=den)
        np.maximum(den, e_l, out=den)
        # FFT round-off leaves |c|^2 ~ 1e-14 x block energy in all-zero windows: windows more
        # than 60 dB below the block's mean power are not searched.
        np.maximum(den, _SEARCH_DYNAMIC_RANGE * L * self._e[seg.shape[0]] / seg.shape[0], out=den)
        den *= L * self.threshold
        hits = num > den
        i = int(np.argmax(hits))
        return pos + i if hits[i] else None

    def _range_metric(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(rho, |c|^2) at lags [lo, hi) by direct correlation, float64 [hi - lo] each."""
        L, pre = self._L, self._pre
        n = hi - lo
        seg = self._samples(lo - pre, hi + L + pre - 1)
        c = np.correlate(seg[pre:pre + n + L - 1], self._p, mode="valid")
        e_l, e_w = self._energies(seg, n)
        den = L * np.maximum(e_l, self._floor * e_w)
        power = c.real.astype(np.float64) ** 2 + c.imag.astype(np.float64) ** 2
        return power / np.maximum(den, np.finfo(np.float64).tiny), power

    def _locate(self, lo: int, peak_lo: int, peak_hi: int):
        """(start, peak rho, peak lag): the max of rho over lags [peak_lo, peak_hi], then the
        first path: the earliest lag at most ``spread`` before it (and >= ``lo``) with
        |c|^2 >= path_fraction * |c_peak|^2 and rho >= the path floor.

        Paths are compared on |c|^2, not rho: rho divides by the local energy, which after
        silence (a burst start) is small for lags before the preamble, and inflates the
        partial-overlap sidelobes of the ZC sequence there (to 0.15 at L = 256, 0.23 at
        L = 64). In |c|^2 those sidelobes stay below 0.024 of the peak within the spread."""
        return self._pick(*self._range_metric(lo, peak_hi + 1), lo, peak_lo, peak_hi)

    def _pick(self, m: np.ndarray, power: np.ndarray, lo: int, peak_lo: int, peak_hi: int):
        """``_locate`` on rho and |c|^2 already computed over lags [lo, ...)."""
        i_max = (peak_lo - lo) + int(np.argmax(m[peak_lo - lo:peak_hi + 1 - lo]))
        first = max(i_max - self._spread, 0)
        is_path = ((power[first:i_max + 1] >= self.path_fraction * power[i_max])
                   & (m[first:i_max + 1] >= self._path_floor))
        i = first + int(np.argmax(is_path)) if is_path.any() else i_max
        return lo + i, float(m[i_max]), lo + i_max

    def _cfo(self, start: int, power: np.ndarray) -> float:
        """CFO (Hz) from the phase between the two halves of the preamble, summed over the
        paths: sum_d c2(d) conj(c1(d)) over the lags d in [start, start + spread] where the
        whole preamble's |c|^2 shows a path (>= ``path_fraction`` of the strongest), c_k(d)
        the correlation of half k with the received half at lag d. Each path turns by the
        same 2 pi nu h / B between the halves and counts with its power; on Veh-A (demo, 25
        dB) the per-frame error fell from 11 kHz rms (the first path alone, whose partial
        correlations with the other paths do not cancel) to 2.5 kHz. The other lags hold
        the halves' partial correlations with themselves, which would bias it. ``power``:
        the whole preamble's |c|^2 at lags [start, start + spread]."""
        h, sp = self._L // 2, self._spread
        r = self._samples(start, start + 2 * h + sp)
        c1 = np.correlate(r[:h + sp], self._p[:h], mode="valid")
        c2 = np.correlate(r[h:2 * h + sp], self._p[h:2 * h], mode="valid")
        paths = power >= self.path_fraction * power.max()
        return float(np.angle(np.vdot(c1[paths], c2[paths])) * self.config.bandwidth / (2 * np.pi * h))

    # ---- state machine --------------------------------------------------------------------
    def _advance(self, out: list) -> None:
        L, pre, sp, W, S = self._L, self._pre, self._spread, self.search, self._S
        while True:
            if self._state == _SEARCH:
                if self._flushing and self._pos >= self._real_end - L:
                    return
                if not self._ensure(self._pos + self._H + L + pre - 1):
                    return
                hit = self._search_block(self._pos)
                if hit is None:
                    self._pos += self._H
                else:
                    self._state, self._n1 = _REFINE, hit
            elif self._state == _REFINE:
                # the peak is looked for up to L + spread after the first crossing: a ZC
                # preamble has strong partial-overlap sidelobes (time shift d acts as a
                # frequency shift u d / L) that can cross first, up to L - 1 samples early
                n1 = self._n1
                if not self._ensure(n1 + L + sp + 1 + L + pre - 1):
                    return
                start, peak, peak_lag = self._locate(max(n1 - sp, 0), n1, n1 + L + sp)
                if peak < self.threshold:   # the FFT crossing is not confirmed by the direct metric
                    self._state, self._pos = _SEARCH, n1 + 1
                    continue
                self._stats["acquisitions"] += 1
                self._lock(start, peak, peak_lag, confirmed=False)
            else:   # _TRACK
                P = self._anchor
                E = self._next
                if self._flushing and E + W + L > self._real_end:
                    if P + S <= self._real_end:
                        self._confirm()
                        self._deliver(P, out)
                        self._ref = (P, self._seq)
                    self._state, self._pos = _SEARCH, self._real_end
                    return
                if not self._ensure(E + W + sp + L + pre):
                    return
                self._stats["lock_checks"] += 1
                lo = E - W - sp
                m, power = self._range_metric(lo, E + W + sp + 1)
                start, peak, peak_lag = self._pick(m, power, lo, E - W, E + W)
                profile = np.sqrt(power)
                # a fresh lock is confirmed at the search threshold, a confirmed one tracked lower
                if peak >= (self.track_threshold if self._confirmed else self.threshold):
                    self._confirm()
                    # A slip of samples inside the frame moves every path, the first path and
                    # the strongest one alike, and the whole delay profile; fading moves one of
                    # the first two (the first path changes when a weak early path crosses the
                    # path level, the peak when two paths are about as strong), and rarely the
                    # profile's best alignment with the last one: emit unless all three moved.
                    # The frame is then placed by the profile (P + S + drift + its shift), so
                    # that a first path found late or early in one frame does not move it.
                    tol = self.jump_tolerance if len(self._track) >= 3 else self._first_tolerance
                    shift = int(np.argmax(np.correlate(profile, self._anchor_profile, mode="valid"))) - W
                    moved = min(abs(shift), abs(start - E), abs(peak_lag - (self._anchor_peak + E - P)))
                    if moved <= tol:
                        self._deliver(P, out)
                        self._track.append((self._track[-1][0] + 1, E + shift))
                    else:
                        self._stats["timing_jumps"] += 1
                        self._stats["frames_lost"] += 1
                        self._undelivered += 1
                        self._track.clear()           # the stream moved: predict from here on
                        self._track.append((0, E + shift))
                    self._ref = (P, self._seq)
                    anchor = E + shift + self._earlier_path(start - (E + shift), tol)
                    first = anchor - sp - lo            # |c|^2 around it, where it lies in this range
                    self._lock(anchor, peak, peak_lag, confirmed=True,
                               power=power[first:first + 2 * sp + 1] if first >= 0 else None)
                    self._seq = self._ref[1] + 1
                elif self._is_clean(P + L, P + S) and self._burst_ended(P):
                    # the transmission stopped cleanly after frame P: it is complete
                    self._confirm()
                    self._stats["bursts_ended"] += 1
                    self._deliver(P, out)
                    self._ref = (P, self._seq)
                    self._state, self._pos = _SEARCH, P + max(sp, L) + 1
                else:
                    if self._confirmed:
                        self._stats["resyncs"] += 1
                        if self._is_clean(P + L, P + S):
                            self._stats["frames_lost"] += 1
                        else:
                            self._stats["frames_bad"] += 1
                        self._undelivered += 1
                        self._ref = (P, self._seq)
                    else:
                        self._stats["false_locks"] += 1
                    # past this preamble's partial-overlap sidelobes and multipath echoes
                    self._state, self._pos = _SEARCH, P + max(sp, L) + 1

    def _earlier_path(self, offset: int, tol: int) -> int:
        """Move the placement earlier where the first path is seen there: ``offset`` is this
        frame's first path minus its placement. An acquisition made while the first path had
        faded (over 10 dB under the next: 8 % of Veh-A trials at demo) placed the frames on a
        later path, 76 samples late on paper, past the receiver's tap window. When two of the
        last ``DRIFT_FRAMES`` frames found a first path (within a sample of each other) more
        than ``tol`` before the placement, it moves there, and the line of placements with it.
        Returns the move (<= 0)."""
        self._offsets.append(offset)
        earliest = min(self._offsets)
        if earliest >= -tol or sum(o <= earliest + 1 for o in self._offsets) < 2:
            return 0
        self._offsets.clear()
        moved = [(i, s + earliest) for i, s in self._track]
        self._track.clear()
        self._track.extend(moved)
        return earliest

    def _expected(self, P: int) -> int:
        """Where the preamble after the one at P should start: on the line fitted through the
        starts of the last ``DRIFT_FRAMES`` frames tracked in a row (a sample clock off by
        epsilon moves it by about -epsilon S a frame, 2.6 samples at 5 ppm on the paper grid;
        the fit also averages out the first path's jitter of a sample or two), P + S with
        fewer than three. The slope is also the frame period that ``_confirm`` counts slots
        with, kept while no fit knows it better."""
        if len(self._track) < 3:
            return P + self._S
        n = len(self._track)                    # least squares, in Python: at most 8 points
        mean_i = sum(i for i, _ in self._track) / n
        mean_s = sum(s for _, s in self._track) / n
        sxx = sum((i - mean_i) ** 2 for i, _ in self._track)
        slope = sum((i - mean_i) * (s - mean_s) for i, s in self._track) / sxx
        margin = 3 / math.sqrt(sxx)             # 3 sigma of the slope for starts 1 sample off
        if margin <= self._period_margin:
            self._period, self._period_margin = slope, margin
        return int(round(mean_s + slope * (self._track[-1][0] + 1 - mean_i)))

    def _burst_ended(self, P: int) -> bool:
        """Did the signal stop right at the end E of frame P? The frame's last L samples carry
        at least 0.35 of the power of the L samples before them and an eighth of the
        preamble's, and the L samples after its multipath tail (from E + spread) less than a
        quarter of the preamble's or of the frame's end, whichever is stronger: silence or
        noise 5 dB or more below the signal (a preamble faded 15 dB under its frame's end
        held the last frame of one in 8 bursts at 15 dB otherwise). The
        frame's end is held to its own neighbourhood's power within 4.5 dB, but to the
        preamble's only within 9 dB, because over a frame the channel fades: at 0.96 MHz,
        Veh-A and 815 Hz, a 64x32 frame's end fell 3 to 5 dB below its preamble in 4 of 12
        realisations at 15 dB, and 4 dB below the L samples before it in 1 of 6 at 20 dB
        (a quarter instead of 0.35 let a frame cut short through in
        ``test_random_faults_never_give_a_damaged_frame``). A sender restart or
        dropped samples leave the power unchanged; a frame cut short by the sender has a
        silent tail; a signal that stops elsewhere than at E (dropped samples that reach past
        the end of a burst) fails one of the two tests unless it stops within ``spread``
        samples after E."""
        L, E = self._L, P + self._S
        after = E + self._spread

        def power(a: int) -> float:
            v = self._samples(a, a + L).view(np.float32)
            return float(np.dot(v, v)) / L

        ref = power(P)
        end = power(E - L)
        return ref > 0 and end >= max(0.35 * power(E - 2 * L), ref / 8) and power(after) < 0.25 * max(ref, end)

    def _lock(self, start: int, metric: float, peak_lag: int, *, confirmed: bool, power=None) -> None:
        """Track from the preamble at ``start``; ``power``: |c|^2 at lags start +- spread
        (computed here where not given), for its delay profile and its CFO."""
        self._state = _TRACK
        self._anchor, self._anchor_metric, self._anchor_peak = start, metric, peak_lag
        if power is None:
            power = self._range_metric(start - self._spread, start + self._spread + 1)[1]
        self._anchor_profile = np.sqrt(power)
        self._anchor_cfo = self._cfo(start, power[self._spread:])
        self._confirmed = confirmed
        if not confirmed:                 # a fresh acquisition: no drift known yet
            self._track.clear()
            self._track.append((0, start))
            self._offsets.clear()
        self._next = self._expected(start)

    def _confirm(self) -> None:
        """The pending frame is real: account for the frames between it and the last one."""
        if self._confirmed:
            return
        self._confirmed = True
        if self._ref is None:
            self._seq = 0
            return
        ref, ref_seq = self._ref
        # frame slots since ref, at least (drops only remove samples): counted with the
        # clock's frame period, less a margin for its error over the slots (a clock 100 ppm
        # off puts 2 demo frames 3.3 samples from 2 S, past the timing tolerance of 2)
        distance = self._anchor - ref
        margin = min(self.jump_tolerance + self._period_margin * distance / self._period, self._period / 2)
        k = max(1, math.ceil((distance - margin) / self._period))
        self._stats["frames_lost"] += k - 1
        self._undelivered += k - 1
        self._seq = ref_seq + k

    def _deliver(self, P: int, out: list) -> None:
        a, b = P + self._L, P + self._S
        if not self._is_clean(a, b):
            self._stats["frames_bad"] += 1
            self._undelivered += 1
            return
        frame = self._buf[a - self._b0:b - self._b0].copy()
        meta = dict(seq=self._seq, start=a, metric=self._anchor_metric, cfo_hz=self._anchor_cfo,
                    lost_before=self._undelivered)
        self._undelivered = 0
        self._stats["frames_out"] += 1
        out.append((frame, meta))


def acquire(stream, config: FrameConfig, **options) -> tuple[np.ndarray, list[dict]]:
    """One-shot :class:`FrameAcquirer` over a whole stream (pushed at once, then flushed).

    Input: complex64 [n]. Output: (frames complex64 [F, cp_len + MN], metas: list of F dicts).
    """
    acq = FrameAcquirer(config, **options)
    found = acq.push(stream) + acq.flush()
    frames = (np.stack([f for f, _ in found]) if found
              else np.zeros((0, config.cp_len + config.MN), dtype=np.complex64))
    return frames, [m for _, m in found]
