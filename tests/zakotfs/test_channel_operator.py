"""The one operator form against independent references: the paper's DD twisted convolution
(channel_models.dd_model), the golden on-grid frame, and the emulator's sample-level channel."""
import numpy as np

from channel_models.dd_model import dd_twisted_convolution
from channel_models.emulator import ChannelEmulator
from channel_models.paths import FramePaths, draw_paths
from channel_models.profiles import load_profile
from zakotfs import FrameBuilder, FrameConfig, inverse_zak, preset, random_bits, zak
from zakotfs.channel_operator import ChannelOperator
from zakotfs.exact_channel import exact_operator


def test_dd_taps_operator_is_the_twisted_convolution(rng):
    c = FrameConfig(M=32, N=8, bandwidth=1e6, guard_neg=4, guard_pos=4)
    x = rng.standard_normal((c.M, c.N)) + 1j * rng.standard_normal((c.M, c.N))
    delays, dopplers = np.array([0, 1, 3, 6]), np.array([-2, -1, 0, 1, 3])
    h = np.zeros((1, delays.size, dopplers.size), complex)
    h[0, [0, 1, 2, 3], [2, 3, 0, 4]] = [0.9, 0.4 - 0.3j, 0.25j, 0.1]
    op = ChannelOperator.from_dd_taps(c, h, delays, dopplers)
    y = zak(op.apply(inverse_zak(x)[None]), c.M, c.N)[0]
    nz = np.nonzero(h[0])
    ref = dd_twisted_convolution(x, h[0][nz], delays[nz[0]], dopplers[nz[1]])
    np.testing.assert_allclose(y, ref, atol=1e-12)


def test_golden_ongrid_rx(vectors):
    v = vectors["frame_ongrid"]
    M, N, cp = int(v["M"]), int(v["N"]), int(v["cp"])
    c = FrameConfig(M=M, N=N, bandwidth=1e6, cp_len=cp, guard_neg=2, guard_pos=4)
    delays = np.arange(5)
    dopplers = np.arange(-2, 3)
    h = np.zeros((1, 5, 5), complex)
    for hi, d, m in zip(v["paths_h"], v["paths_d"], v["paths_m"]):
        h[0, d, m + 2] = hi
    op = ChannelOperator.from_dd_taps(c, h, delays, dopplers)
    np.testing.assert_allclose(op.apply(v["tx"][None, cp:])[0], v["rx"][cp:], atol=1e-12)


def test_adjoint_and_power_spectrum(rng):
    L, P, F = 256, 3, 2
    basis = rng.standard_normal((P, L)) + 1j * rng.standard_normal((P, L))
    taps = rng.standard_normal((F, P, L)) + 1j * rng.standard_normal((F, P, L))
    op = ChannelOperator(basis, taps)
    s = rng.standard_normal((F, L)) + 1j * rng.standard_normal((F, L))
    r = rng.standard_normal((F, L)) + 1j * rng.standard_normal((F, L))
    np.testing.assert_allclose(np.sum(op.apply(s).conj() * r, -1), np.sum(s.conj() * op.adjoint(r), -1))
    H = np.stack([op.apply(np.broadcast_to(e, (F, L))) for e in np.eye(L)], axis=-1)   # [F, L, L]
    U = np.fft.fft(np.eye(L)) / np.sqrt(L)
    gram_f = U @ H.conj().transpose(0, 2, 1) @ H @ U.conj().T
    np.testing.assert_allclose(op.power_spectrum(), np.real(np.diagonal(gram_f, axis1=1, axis2=2)),
                               rtol=1e-9, atol=1e-9)


def test_perfect_csi_operator_matches_the_emulator():
    """Sample-level Veh-A with fractional delays and Dopplers: the exact operator built from
    the exported FramePaths reproduces the emulator's frame (ISI and filter truncation only)."""
    c = preset("demo")
    rng = np.random.default_rng(3)
    paths = draw_paths(load_profile("veh-a"), 1.74 / c.frame_time, rng)
    bits = random_bits(c, 2, rng)
    tx = FrameBuilder(c).stream(bits)
    em = ChannelEmulator(paths, c.bandwidth, seed=0)
    rx = np.concatenate([em.process(tx), em.flush()])[:tx.size].reshape(2, -1)
    fp = FramePaths.stack([em.frame_paths(f * c.samples_per_frame + c.preamble_len + c.cp_len)
                           for f in range(2)])
    op = exact_operator(fp, c.MN)
    r = rx[:, c.preamble_len + c.cp_len:]
    s = inverse_zak(FrameBuilder(c).grid(bits))
    error = np.sum(np.abs(op.apply(s) - r) ** 2) / np.sum(np.abs(r) ** 2)
    assert 10 * np.log10(error) < -35


def test_fractional_delay_response_is_the_dft_ramp():
    """The factored evaluation equals exp(-j2pi f d / L) over fftfreq f, with cos(pi d) at
    the Nyquist bin of an even L, for odd, even and tiny L and delays of either sign."""
    from zakotfs.channel_operator import fractional_delay_response

    d = np.random.default_rng(0).uniform(-700, 700, (2, 5))
    for L in (1, 2, 7, 64, 1000, 1023, 65536):
        want = np.exp(-2j * np.pi / L * d[..., None] * np.fft.fftfreq(L, 1.0 / L))
        if L % 2 == 0:
            want[..., L // 2] = np.cos(np.pi * d)
        np.testing.assert_allclose(fractional_delay_response(d, L), want, rtol=0, atol=1e-11)
