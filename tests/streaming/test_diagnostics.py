"""The link report's diagnostics: each check flags its statistic past its threshold, and
the report carries the warnings for a library user."""
from streaming.diagnostics import CG_RESIDUAL_WARNING, CHECKS, diagnose

QUIET = {"config": {"M": 64, "N": 32}, "frames": 4, "cg_residual": {"p50": 1e-4, "max": 2e-4},
         "preamble_cfo_hz": {"p50": 100.0}, "cfo_range_hz": 7500.0, "cfo_offset_hz": 0.0,
         "sample_clock_ppm": 0.5, "sample_clock_ppm_removed": 0.0,
         "channel_delay": {"frames_at_edge": 0}, "pilot_echoes": {"frames": 0, "of_frames": 4},
         "source": {"sample_format": "ci16_le", "peak_dbfs": -3.0, "clipped_components": 0}}


def test_a_quiet_report_has_no_warnings():
    assert diagnose(QUIET) == []


def test_each_check_flags_its_statistic():
    loud = {**QUIET, "cg_residual": {"p50": 2 * CG_RESIDUAL_WARNING, "max": 1.0},
            "preamble_cfo_hz": {"p50": 7000.0}, "sample_clock_ppm": 500.0,
            "channel_delay": {"frames_at_edge": 2},
            "pilot_echoes": {"frames": 3, "of_frames": 4, "farthest_delay": 200.0, "farthest_delay_us": 13.0,
                             "strongest_db": -12.0},
            "source": {"sample_format": "ci8", "peak_dbfs": 0.0, "clipped_components": 5},
            "frames_matched_by": {"content": 6, "position": 0, "unmatched": 3}, "frames_invalid": 1}
    warnings = diagnose(loud)
    assert [w["code"] for w in warnings] == [check.__name__ for check in CHECKS]
    assert "--cg-iterations" in warnings[0]["message"] and "--cfo-offset 7000" in warnings[1]["message"]
    assert "--sample-clock-ppm 500.00" in warnings[2]["message"] and "--delay-spread 13" in warnings[4]["message"]
    assert "clips" in warnings[5]["message"] and warnings[6]["message"].startswith("2 of ")
