"""Calibration off the acquirer's metas: the clock from the frames' period, the carrier from
the preambles, applied where they matter; recalibration retunes from the frame after its
window."""
import pytest

from zakotfs import preset
from zakotfs.calibration import CALIBRATION_DRIFT, Recalibrator, calibrate, estimate_offsets

CONFIG = preset("demo")


def _metas(n, ppm, cfo_hz, first=0):
    """Frames ``first`` .. ``first + n - 1`` of a stream whose clock runs ``ppm`` slow."""
    period = CONFIG.samples_per_frame / (1 + ppm * 1e-6)
    return [{"seq": k, "start": 1000 + k * period, "cfo_hz": cfo_hz} for k in range(first, first + n)]


def test_the_offsets_come_from_the_period_and_the_preambles():
    estimate = estimate_offsets(CONFIG, _metas(8, 150.0, 19730.0))
    assert estimate.sample_clock_ppm == pytest.approx(150.0, abs=0.5)
    assert estimate.preamble_cfo_hz == 19730.0
    assert estimate.changes == {"sample_clock_ppm": round(estimate.sample_clock_ppm, 2), "cfo_offset_hz": 19700.0}


def test_small_offsets_do_not_matter():
    ppm = 0.5 * CALIBRATION_DRIFT / CONFIG.MN * 1e6        # half the drift that matters
    assert estimate_offsets(CONFIG, _metas(8, ppm, 0.2 * CONFIG.nu_p)).changes == {}


def test_calibration_leaves_a_given_offset_alone():
    result = calibrate(CONFIG, _metas(8, 150.0, 19730.0), cfo_offset_hz=20000.0)
    assert result["frames"] == 8 and set(result["applied"]) == {"sample_clock_ppm"}


def test_a_retune_is_due_from_the_frame_after_its_window():
    recalibrator = Recalibrator(CONFIG, 4, sample_clock_ppm=150.0)
    recalibrator.observe(_metas(4, 150.0, 0.0))
    assert recalibrator.retunes == [] and recalibrator.due(100) == {}
    recalibrator.observe(_metas(4, 50.0, 0.0, first=4))
    assert [r["seq"] for r in recalibrator.retunes] == [8]
    assert recalibrator.due(7) == {}
    assert recalibrator.due(8)["sample_clock_ppm"] == pytest.approx(50.0, abs=0.5)
    assert recalibrator.due(9) == {}


def test_recalibration_needs_three_frames_a_window():
    with pytest.raises(ValueError, match="every"):
        Recalibrator(CONFIG, 2)
