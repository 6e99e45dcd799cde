"""The receiver against the exact LMMSE on the same emulated frames (``bench/reference_gap.py``
runs the same comparison per grid and SNR)."""
import numpy as np
import pytest

from bench.reference_gap import GRIDS, emulate, exact_lmmse, hard_bits, reference_snr
from streaming.acquisition import acquire
from zakotfs.channel_operator import ChannelOperator
from zakotfs.exact_channel import exact_operator
from zakotfs.receiver import Receiver, default_backoff


def bit_errors(receiver, config, emulated, shift=0):
    return int(np.count_nonzero(receiver.process(emulated.frames(config, shift)).bits != emulated.bits))


@pytest.mark.parametrize("grid, snr_db, realisations", [("64x32", 25.0, 24), ("tiny", 20.0, 12)])
def test_a_frame_placed_one_sample_late_costs_nothing_with_the_backoff(grid, snr_db, realisations):
    """64x32 at 0.96 MHz (25 dB, 24 realisations x 4 frames) and ``tiny`` (20 dB, 12 x 4),
    Veh-A 815 Hz: read one sample late, a frame's last sample is the next preamble's, not
    the prefix's copy (the channel is not circular), and on ``tiny`` the first path leaves
    the delay fit's range: the errors multiply (1.9x on 64x32, 9x on ``tiny``) without the
    back-off; with it, a late frame gives the errors of a frame placed right (within 10 %)."""
    config = GRIDS[grid]()
    assert default_backoff(config) == 1
    errors = {}
    for backoff in (0, 1):
        receiver = Receiver(config, backend="cpu", quiet=True, timing_backoff=backoff)
        rng = np.random.default_rng(5)
        errors[backoff] = np.zeros(2, int)
        for _ in range(realisations):
            em = emulate(config, snr_db, rng, batch=4)
            errors[backoff] += [bit_errors(receiver, config, em, shift) for shift in (0, 1)]
    print(grid, errors)
    on_time, late = errors[1]
    assert late <= 1.1 * on_time
    assert errors[0][1] > 1.5 * errors[0][0]           # what the back-off removes


def exact_errors(config, em, snr_db):
    ops = exact_operator(em.paths, config.MN)
    r = em.frames(config)[:, config.cp_len:].astype(complex)
    x = np.stack([exact_lmmse(config, ChannelOperator(ops.basis[f:f + 1], ops.taps_fft[f:f + 1]), r[f],
                              10 ** (-snr_db / 10)) for f in range(r.shape[0])])
    return int(np.count_nonzero(hard_bits(config, x) != em.bits))


@pytest.mark.timeout(300)
def test_rx_gap_to_the_exact_lmmse_on_64x32():
    """``zakotfs rx``'s chain (stream acquisition, then the receiver with its defaults) on
    64x32 at 0.96 MHz, Veh-A 815 Hz, 20 dB, 6 realisations x 4 frames after 4 frame-lengths
    of noise, against the dense LMMSE with the data-only prior and the true channel on the
    same frames: every frame found, and the BER read on the reference's own curve (18 and
    20 dB on the same channels, log-linear) within the gap measured when this was written
    (``GAP_DB``) plus 0.15 dB, so that a change costing 0.3 dB fails."""
    config = GRIDS["64x32"]()
    receiver = Receiver(config, backend="cpu", quiet=True)
    snrs = (18.0, 20.0)
    exact = dict.fromkeys(snrs, 0)
    rx_errors = missed = 0
    n_bits = 0
    for snr in snrs:
        rng = np.random.default_rng(20)                # the same channels and bits at every SNR
        for _ in range(6):
            em = emulate(config, snr, rng, batch=4)
            exact[snr] += exact_errors(config, em, snr)
            if snr != 20.0:
                continue
            frames, metas = acquire(em.stream, config)
            lead = em.starts[0] - config.preamble_len
            slots = [round((m["start"] - lead - config.preamble_len) / config.samples_per_frame) for m in metas]
            missed += 4 - len(set(slots) & set(range(4)))
            keep = [k for k, f in enumerate(slots) if 0 <= f < 4]
            rx_errors += int(np.count_nonzero(receiver.process(frames[keep]).bits
                                              != em.bits[[slots[k] for k in keep]]))
            n_bits += em.bits.size
    assert missed == 0
    curve = [exact[s] / n_bits for s in snrs]
    gap = 20.0 - reference_snr(snrs, curve, rx_errors / n_bits)
    print(f"rx BER {rx_errors / n_bits:.3e}, reference {curve[0]:.3e} / {curve[1]:.3e}: gap {gap:.2f} dB")
    assert gap <= GAP_DB + 0.15


GAP_DB = 0.17
"""``test_rx_gap_to_the_exact_lmmse_on_64x32``'s gap when it was written (dB): rx BER 9.84e-3
against the reference's 1.91e-2 at 18 dB and 9.25e-3 at 20 dB."""
