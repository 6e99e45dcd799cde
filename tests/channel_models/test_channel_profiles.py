"""Power-delay profiles and the speed-to-Doppler conversion."""
import json
import math

import numpy as np
import pytest

from channel_models import PROFILES, PowerDelayProfile, doppler_from_speed, load_profile


def test_vehicular_a_is_the_spec_table():
    p = load_profile("veh-a")
    assert p.delays_s == pytest.approx((0, 310e-9, 710e-9, 1090e-9, 1730e-9, 2510e-9))
    assert p.powers_db == (0.0, -1.0, -9.0, -10.0, -15.0, -20.0)
    lin = p.powers_linear
    assert lin.sum() == pytest.approx(1.0)
    assert lin[1] / lin[0] == pytest.approx(10 ** -0.1)


# RMS delay spreads stated by the standards: 3GPP TS 36.101 Table B.2-1 (EPA 43, EVA 357,
# ETU 991 ns) and ITU-R M.1225 (Ped-A 45, Veh-A 370, Veh-B 4000 ns). (M.1225's 750 ns for
# Ped-B describes the environment, not its tap table, which gives 633 ns.)
@pytest.mark.parametrize("key, rms_ns, max_ns, n_paths", [
    ("epa", 43, 410, 7), ("eva", 357, 2510, 9), ("etu", 991, 5000, 9),
    ("ped-a", 45, 410, 4), ("veh-a", 370, 2510, 6), ("veh-b", 4000, 20000, 6),
    ("ped-b", 633, 3700, 6)])
def test_builtin_tables_match_their_stated_delay_spread(key, rms_ns, max_ns, n_paths):
    p = PROFILES[key]
    assert p.n_paths == n_paths
    assert p.max_delay_s == pytest.approx(max_ns * 1e-9)
    assert p.delay_spread_s == pytest.approx(rms_ns * 1e-9, rel=0.03)
    assert p.powers_linear.sum() == pytest.approx(1.0)


def test_load_profile_is_case_insensitive_and_reads_json(tmp_path):
    assert load_profile("VEH-A") is PROFILES["veh-a"]
    path = tmp_path / "two.json"
    path.write_text(json.dumps({"name": "two-ray", "delays_ns": [0, 100], "powers_db": [0, -3]}))
    p = load_profile(path)
    assert p.name == "two-ray"
    assert p.delays_s == pytest.approx((0.0, 100e-9))
    assert p.powers_linear == pytest.approx([1 / (1 + 10**-0.3), 10**-0.3 / (1 + 10**-0.3)])
    again = tmp_path / "again.json"
    again.write_text(json.dumps(PROFILES["eva"].to_dict()))
    assert load_profile(str(again)).delays_s == pytest.approx(PROFILES["eva"].delays_s)


def test_unknown_profile_lists_the_valid_names():
    with pytest.raises(ValueError, match="veh-a, veh-b, ped-a, ped-b, epa, eva, etu"):
        load_profile("vehicular-z")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"name": "x", "delays_ns": [0]}', "lacks powers_db"),
    ('[1, 2]', "JSON object"),
    ('{"delays_ns": [0, 10], "powers_db": [0]}', "delays_s has 2 entries but powers_db has 1"),
])
def test_bad_profile_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_profile(path)


@pytest.mark.parametrize("delays, powers, message", [
    ((0, 1e-7), (0,), "2 entries"),
    ((0, -1e-7), (0, 0), "delays_s must be >= 0"),
    ((2e-7, 1e-7), (0, 0), "non-decreasing"),
    ((0,), (math.nan,), "powers_db must be finite"),
    ((), (), "delays_s must hold at least one path"),
    (("a",), (0,), "delays_s must be a sequence of numbers"),
])
def test_profile_validation(delays, powers, message):
    with pytest.raises(ValueError, match=message):
        PowerDelayProfile("bad", delays, powers)


def test_doppler_from_speed():
    # The spec: 815 Hz is about 220 km/h at 4 GHz.
    assert doppler_from_speed(220, 4e9) == pytest.approx(815.4, abs=0.1)
    assert doppler_from_speed(0, 4e9) == 0.0
    assert doppler_from_speed(np.float64(36.0), 3e9) == pytest.approx(10 * 3e9 / 299_792_458)


@pytest.mark.parametrize("speed, fc, message", [
    (-1, 4e9, "speed_kmh"), (math.nan, 4e9, "speed_kmh"), ("fast", 4e9, "speed_kmh"),
    (100, 0, "fc_hz"), (100, math.inf, "fc_hz")])
def test_doppler_from_speed_rejects_bad_values(speed, fc, message):
    with pytest.raises(ValueError, match=message):
        doppler_from_speed(speed, fc)
