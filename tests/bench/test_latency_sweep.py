"""The latency-deadline sweep (``bench/latency_sweep.py``) in CI-sized form, its finding,
and the physical-limit model's bookkeeping, so that none of them rots between GPU runs."""
import json
from pathlib import Path

import pytest

from bench import latency_sweep as sweep
from bench import physical_limit


def test_ci_sized_sweep_writes_points_finding_and_plots(tmp_path, capsys):
    rc = sweep.main(["--grids", "64x16", "--frames", "3", "--warmup", "1", "--tag", "ci", "--out-dir", str(tmp_path)])
    assert rc == 0
    result = json.loads((tmp_path / "latency_cpu_ci.json").read_text())
    (point,) = result["points"]
    assert point["status"] == "ok", point.get("reason")
    lat = point["latency_us"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert point["frames"] == 3 and 0 <= point["deadline_misses"] <= 3
    # the bandwidth at which this grid would keep up: its own, scaled by the p99.9 miss
    assert point["realtime_bandwidth_hz"] == pytest.approx(point["bandwidth_hz"] * point["deadline_us"] / lat["p999"])
    assert result["finding"]["16qam/accurate"]["verdict"] in ("meets", "none meets")
    assert result["meta"]["commit"] is None or len(result["meta"]["commit"]) == 40
    assert len(result["plots"]) == 3                     # latency CDF, stage breakdown, scaling
    for png in result["plots"]:
        assert Path(png).stat().st_size > 0
    printed = capsys.readouterr()
    assert "real time up to" in printed.out + printed.err


def _point(grid, MN, p999, deadline, bandwidth=1e6, throughput=5.0):
    return {"grid": grid, "M": MN // 16, "MN": MN, "modulation": "16qam", "estimator": "accurate", "status": "ok",
            "latency_us": {"p999": p999}, "deadline_us": deadline, "p999_over_deadline": p999 / deadline,
            "bandwidth_hz": bandwidth, "throughput_mbps": throughput, "link_mbps": 4.0}


def test_finding_picks_the_largest_grid_that_meets_else_the_closest_miss():
    meets = sweep.finding([_point("64x16", 1024, 900, 1000), _point("128x16", 2048, 990, 1000),
                           _point("256x16", 4096, 3000, 1000)])["16qam/accurate"]
    assert meets["verdict"] == "meets" and meets["grid"] == "128x16"
    slow = sweep.finding([_point("64x16", 1024, 900, 1000), _point("128x16", 2048, 990, 1000, throughput=3.9)])
    assert slow["16qam/accurate"]["grid"] == "64x16"        # within its deadline, but under the link's rate
    misses = sweep.finding([_point("64x16", 1024, 5000, 1000, 1e6), _point("128x16", 2048, 4000, 1000, 2e6)])
    miss = misses["16qam/accurate"]
    assert miss["verdict"] == "none meets" and miss["closest_grid"] == "128x16"
    assert miss["miss_us"] == 3000 and miss["realtime_bandwidth_hz"] == pytest.approx(0.5e6)


def test_physical_limit_windowed_operator_moves_fewer_bytes_than_the_exact_one():
    windowed, exact = physical_limit.physical_limit(), physical_limit.physical_limit(window=0)
    full_overlap = physical_limit.physical_limit(window=4096)
    assert (windowed["operator_window"], windowed["operator_overlap"]) == (8192, 4096)
    assert full_overlap["operator_overlap"] == 4096 and exact["operator_window"] == 0
    # per normal product, blocks of B = Lw + V, r = B / Lw: (2 + 4r + 4Kr + K) + (2 + 4r + 5Kr) + 1
    # units against 8P + 4 + 12P + 4 + 5; K = 2, r = 1.5 at the default, 2 for a full overlap
    ops_w, ops_e = windowed["operator_U_as_written"], exact["operator_U_as_written"]
    assert sum(ops_w.values()) == 46 and sum(full_overlap["operator_U_as_written"].values()) == 59
    assert sum(ops_e.values()) == 20 * exact["P"] + 13
    for model in (windowed, exact):
        for kind in ("as_written", "fused"):
            stages = model["stages"]
            assert model["totals"][kind]["device_us"] == pytest.approx(sum(s[kind]["device_us"] for s in stages))
        assert model["totals"]["fused"]["device_us"] < model["totals"]["as_written"]["device_us"]
    assert windowed["per_iteration"]["as_written_hbm_bytes"] < exact["per_iteration"]["as_written_hbm_bytes"]
