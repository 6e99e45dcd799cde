import math

import pytest

from zakotfs import FrameConfig, parse_grid, preset


def test_paper_preset_matches_reference_throughput():
    c = preset("paper")
    assert (c.M, c.N, c.bandwidth, c.modulation) == (16384, 32, 245.76e6, "16qam")
    assert math.isclose(c.tau_p, 66.6667e-6, rel_tol=1e-5)
    assert math.isclose(c.nu_p, 15e3, rel_tol=1e-12)
    assert math.isclose(c.frame_time, 2.13333e-3, rel_tol=1e-5)
    assert math.isclose(c.doppler_step, 468.75, rel_tol=1e-12)
    assert c.throughput_bps >= 906.52e6            # the paper's 906.52 Mbps
    assert c.throughput_wire_bps < c.throughput_bps
    assert c.cp_len / c.MN < 0.002


def test_derived_positions():
    c = FrameConfig(M=16, N=8, bandwidth=1e6, modulation="qpsk", guard_neg=2, guard_pos=4)
    assert c.guard_bins == 7 and c.n_data == (16 - 7) * 8
    assert c.data_index[0] == 0 and c.data_index.size == c.n_data
    assert not c.data_mask[8, 4] and not c.data_mask[6, 0] and c.data_mask[5, 0] and c.data_mask[13, 7]
    assert math.isclose(c.pilot_amplitude, math.sqrt(7 * 8))
    t_neg, t_pos = c.tap_window
    assert t_pos + t_neg == 2 and t_neg >= 0


def test_json_round_trip():
    c = preset("demo")
    assert FrameConfig.from_json(c.to_json()) == c


@pytest.mark.parametrize("kwargs,match", [
    (dict(M=0, N=8, bandwidth=1e6), "M must be a positive integer"),
    (dict(M=16, N=-1, bandwidth=1e6), "N must be a positive integer"),
    (dict(M=16, N=8, bandwidth=-5), "bandwidth must be a positive"),
    (dict(M=16, N=8, bandwidth=1e6, modulation="8psk"), "modulation must be one of"),
    (dict(M=16, N=8, bandwidth=1e6, guard_neg=9), "does not fit in the delay grid"),
    (dict(M=16, N=8, bandwidth=1e6, pilot_k=16), "pilot_k=16 is outside"),
    (dict(M=16, N=8, bandwidth=1e6, pilot_l=8), "pilot_l=8 is outside"),
    (dict(M=16, N=8, bandwidth=1e6, cp_len=-1), "cp_len must be a non-negative"),
    (dict(M=16, N=8, bandwidth=1e6, guard_neg=2, guard_pos=2, max_delay=3), "max_delay=3"),
    (dict(M=4, N=2, bandwidth=1e6, pilot_k=2, guard_neg=2, guard_pos=1), "no room for data"),
])
def test_bad_configuration_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FrameConfig(**kwargs)


def test_unknown_key_and_preset_and_grid():
    with pytest.raises(ValueError, match="unknown frame configuration keys: colour"):
        FrameConfig.from_dict({"M": 4, "N": 4, "bandwidth": 1.0, "colour": 1})
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")
    assert parse_grid("16384x32") == (16384, 32)
    with pytest.raises(ValueError, match="MxN"):
        parse_grid("16384")
