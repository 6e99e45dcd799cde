"""Frames numbered by their bits (``streaming.frame_matching``): samples inserted into or
removed from a stream move the timing's frame count; the report and ``--out`` still name the
right transmitted frame, and count as lost only the frames the fault destroyed."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from streaming.frame_matching import UNMATCHED, TruthMatcher
from zakotfs.cli import ExitStatus, build_parser, main
from zakotfs.cli.options import resolve_config

GRID = ["--grid", "64x32", "--bandwidth", "0.96e6", "--mod", "qpsk"]
S = resolve_config(build_parser().parse_args(["rx", "--in", "x", *GRID])).samples_per_frame
FRAMES = 20


def test_a_frame_is_matched_by_its_bits_wherever_its_timing_puts_it():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, (30, 4000), dtype=np.uint8)
    matcher = TruthMatcher(truth)
    noisy = truth[7] ^ (rng.random(4000) < 0.3).astype(np.uint8)          # BER 0.3: still its own
    assert matcher.match(0, truth[0]) == (0, 0)
    assert matcher.match(1, noisy)[0] == 7                                   # timing off by 6: all rows
    assert matcher.match(2, truth[8]) == (8, 0)                              # re-anchored on row 7
    assert matcher.match(3, rng.integers(0, 2, 4000, dtype=np.uint8)) == (UNMATCHED, None)
    assert (matcher.frames_matched, matcher.frames_unmatched, matcher.rows_seen, matcher.lost) == (3, 1, 3, 6)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """tx → a raw recording (20 frames), and two copies of it with a fault: 37 zero samples
    inserted in the middle of frame 5 (it alone is destroyed) and 3000 samples removed from
    100 samples into frame 8 (the rest of frame 8 and the start of frame 9, its preamble
    included: both destroyed)."""
    folder = tmp_path_factory.mktemp("matching")
    clean, truth = folder / "clean.cfile", folder / "truth.h5"
    assert main(["tx", "--out", str(clean), "--truth", str(truth), *GRID, "--frames", str(FRAMES)]) == 0
    x = np.fromfile(clean, np.complex64)
    cut = 5 * S + S // 2
    np.concatenate([x[:cut], np.zeros(37, np.complex64), x[cut:]]).tofile(folder / "inserted.cfile")
    np.concatenate([x[:8 * S + 100], x[8 * S + 3100:]]).tofile(folder / "removed.cfile")
    with h5py.File(truth, "r") as f:
        return folder, truth, f["truth/bits"][()]


@pytest.mark.parametrize("name,destroyed", [("inserted", {5}), ("removed", {8, 9})])
def test_inserted_and_removed_samples_keep_the_frame_numbers(recordings, name, destroyed, capsys):
    folder, truth_path, truth = recordings
    out, report_path = folder / f"{name}.h5", folder / f"{name}.json"
    status = main(["rx", "--in", str(folder / f"{name}.cfile"), *GRID, "--truth", str(truth_path),
                   "--backend", "cpu", "--out", str(out), "--report", str(report_path), "--json"])
    assert status == ExitStatus.OK and "Traceback" not in capsys.readouterr().err
    report = json.loads(report_path.read_text())
    with h5py.File(out, "r") as f:
        bits, seq = f["bits"][()], f["seq"][()].tolist()
        matched_by = f["matched_by"][()]
        codes = h5py.check_enum_dtype(f["matched_by"].dtype)
    intact = [i for i in range(FRAMES) if i not in destroyed]
    assert seq == intact and all(np.array_equal(b, truth[s]) for b, s in zip(bits, seq))
    assert np.all(matched_by == codes["content"])
    assert report["frames"] == len(intact) and report["ber"] == 0 and report["bit_errors"] == 0
    assert report["frames_lost"] == len(destroyed) and report["frames_missing_vs_truth"] == len(destroyed)
    assert report["frames_matched_by"] == {"content": len(intact), "position": 0, "unmatched": 0}


def test_the_truth_of_another_transmission_matches_nothing(recordings, tmp_path, capsys):
    """--truth of another seed: no frame matched, no BER, a warning that says why."""
    folder, _, _ = recordings
    other, report_path = tmp_path / "other.h5", tmp_path / "other.json"
    assert main(["tx", "--out", str(tmp_path / "other.cfile"), "--truth", str(other), *GRID, "--frames", "20",
                 "--seed", "1"]) == 0
    assert main(["rx", "--in", str(folder / "clean.cfile"), *GRID, "--truth", str(other), "--backend", "cpu",
                 "--report", str(report_path)]) == ExitStatus.OK
    report = json.loads(report_path.read_text())
    assert report["frames_matched_by"] == {"content": 0, "position": 0, "unmatched": FRAMES} and report["ber"] is None
    assert [w["code"] for w in report["warnings"]] == ["unmatched_frames"]
    assert "--truth holds another transmission's bits" in capsys.readouterr().out


def test_without_truth_frames_are_numbered_by_position(recordings, capsys):
    folder, _, _ = recordings
    report_path = folder / "position.json"
    assert main(["rx", "--in", str(folder / "clean.cfile"), *GRID, "--backend", "cpu",
                 "--report", str(report_path), "--json"]) == ExitStatus.OK
    report = json.loads(report_path.read_text())
    assert report["frames_matched_by"] == {"content": 0, "position": FRAMES, "unmatched": 0} and report["ber"] is None
