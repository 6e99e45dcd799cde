import numpy as np

from zakotfs import FrameBuilder, FrameConfig, extract_data, place_data, preset, random_bits, zak


def ongrid_config(v):
    return FrameConfig(M=int(v["M"]), N=int(v["N"]), bandwidth=1e6, modulation="qpsk",
                       cp_len=int(v["cp"]), guard_neg=int(v["g_neg"]), guard_pos=int(v["g_pos"]),
                       pilot_k=int(v["kp"]), pilot_l=int(v["lp"]), pilot_amplitude=float(v["pilot"].real))


def test_golden_frame_grid_and_tx(vectors):
    v = vectors["frame_ongrid"]
    builder = FrameBuilder(ongrid_config(v))
    np.testing.assert_allclose(builder.grid(v["bits"].astype(np.uint8))[0], v["X"], atol=1e-12)
    np.testing.assert_allclose(builder.build(v["bits"].astype(np.uint8))[0], v["tx"], atol=1e-6)


def test_golden_heff_readoff_from_pilot_only(vectors):
    """h_eff[d, m] = y_qp[kp + d, lp + m] e^{-j2pi m kp/(MN)} / a_p (spec read-off)."""
    v = vectors["frame_ongrid"]
    c = ongrid_config(v)
    Y = zak(v["rx_pilot_only"][c.cp_len:], c.M, c.N)
    np.testing.assert_allclose(Y, v["Y_pilot_only"], atol=1e-12)
    heff = np.empty((v["heff_delays"].size, v["heff_dopplers"].size), complex)
    for i, d in enumerate(v["heff_delays"]):
        k = c.pilot_k + d
        n, k_in = divmod(k, c.M)
        for j, m in enumerate(v["heff_dopplers"]):
            l = (c.pilot_l + m) % c.N
            y_qp = np.exp(2j * np.pi * n * l / c.N) * Y[k_in, l]
            heff[i, j] = y_qp * np.exp(-2j * np.pi * m * c.pilot_k / c.MN) / c.pilot_amplitude
    np.testing.assert_allclose(heff, v["heff_pilot_only"], atol=1e-12)


def test_place_extract_round_trip_and_energy(rng):
    c = preset("tiny")
    builder = FrameBuilder(c)
    bits = random_bits(c, 4, rng)
    x = builder.grid(bits)
    np.testing.assert_array_equal(extract_data(c, x), builder.constellation.map(bits))
    guard = ~c.data_mask
    guard[c.pilot_k, c.pilot_l] = False
    assert np.all(x[:, guard] == 0)
    # default pilot energy = guard positions x Es, so the frame energy is that of a full data frame
    energy = np.mean(np.sum(np.abs(x) ** 2, axis=(1, 2)))
    assert abs(energy / c.MN - 1) < 0.05
    wire = builder.build(bits)
    assert wire.shape == (4, c.samples_per_frame) and wire.dtype == np.complex64
    np.testing.assert_allclose(wire[:, c.preamble_len:c.preamble_len + c.cp_len],
                               wire[:, -c.cp_len:])
    np.testing.assert_allclose(place_data(c, extract_data(c, x)) + builder.pilot, x)
