"""The BER-against-CFO sweep (``bench/cfo_sweep.py``) in CI-sized form: its JSON, its plot,
and its finding on the tiny grid (nu_p = 60 kHz): a 20 kHz offset breaks the receiver that
ignores it and not the one that removes it."""
import json

from bench import cfo_sweep


def test_ci_sized_cfo_sweep(tmp_path):
    out = tmp_path / "cfo.json"
    assert cfo_sweep.main(["--preset", "tiny", "--offsets", "0,20000", "--frames", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["cfo_hz"] == [0.0, 20000.0] and result["correction_range_hz"] == 30000.0
    rows = result["receivers"]
    assert set(rows) == set(cfo_sweep.RECEIVERS)
    removed, ignored, perfect = (rows[k]["ber"] for k in ("accurate, CFO removed", "accurate, CFO ignored",
                                                          "perfect CSI"))
    assert ignored[1] > 0.3 and removed[1] < 3 * perfect[1] + 0.01
    assert abs(rows["accurate, CFO removed"]["cfo_removed_hz_p50"][1] - 20000) < 815
    assert rows["accurate, CFO ignored"]["cfo_removed_hz_p50"] == [0.0, 0.0]
    assert out.with_suffix(".png").stat().st_size > 0
    assert result["commit"] is None or len(result["commit"]) == 40
