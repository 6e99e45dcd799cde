"""The BER-against-impairment sweep (``bench/impairment_sweep.py``) in CI-sized form: its
JSON, its plot, and its findings on the tiny grid (nu_p = 60 kHz, MN = 2048): a 20 kHz
carrier offset, and a 2000 ppm clock offset (4 samples of drift a frame), break the
receiver that ignores them and not the one that corrects them."""
import json

import pytest

from bench import impairment_sweep


@pytest.mark.parametrize("impairment,points,fixed,ignored,shift", [
    ("cfo", "0,20000", "accurate, CFO removed", "accurate, CFO ignored", 20000.0),
    ("sco", "0,2000", "accurate, clock undone", "accurate, clock ignored", 0.0),
])
def test_ci_sized_sweep(tmp_path, impairment, points, fixed, ignored, shift):
    out = tmp_path / f"{impairment}.json"
    assert impairment_sweep.main([impairment, "--preset", "tiny", "--points", points, "--frames", "2",
                                  "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["points"] == [float(p) for p in points.split(",")]
    rows = result["receivers"]
    assert set(rows) == set(impairment_sweep.IMPAIRMENTS[impairment][3])
    perfect = next(row["ber"] for name, row in rows.items() if name.startswith("perfect"))
    assert rows[ignored]["ber"][1] > 0.1 and rows[fixed]["ber"][1] < 3 * perfect[1] + 0.01
    assert abs(rows[fixed]["cfo_removed_hz_p50"][1] - shift) < 815
    assert out.with_suffix(".png").stat().st_size > 0
    assert result["commit"] is None or len(result["commit"]) == 40


def test_ci_sized_adc_sweep(tmp_path):
    """The frames read through a fixed-point ADC: 16-bit codes with the full scale at the
    peak decode as the float samples do; 8 bits lose to their own quantisation noise with
    18 dB of headroom; 9 dB of clipping cuts the pilot's pulses, which breaks the estimate
    far more than it hurts the receiver given the true channel."""
    out = tmp_path / "adc.json"
    assert impairment_sweep.main(["adc", "--preset", "tiny", "--points=-9,0,18", "--frames", "2",
                                  "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["receivers"]
    float_ber = rows["accurate, float"]["ber"]
    for ci16, flt in zip(rows["accurate, ci16_le"]["bit_errors"][1:], rows["accurate, float"]["bit_errors"][1:]):
        assert abs(ci16 - flt) <= max(2, 0.02 * flt)
    assert rows["accurate, ci8"]["ber"][2] > 2 * max(float_ber[2], rows["accurate, ci8"]["ber"][1])
    clipped, perfect_clipped = rows["accurate, ci16_le"]["ber"][0], rows["perfect CSI, ci8"]["ber"][0]
    assert clipped > 10 * float_ber[0] and clipped > 3 * perfect_clipped
    assert out.with_suffix(".png").stat().st_size > 0
