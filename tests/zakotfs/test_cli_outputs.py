"""What ``rx`` and ``tx`` write explains itself: the result file's attributes and per-frame
datasets, the JSON report's schema, units and stop reason; recordings take the format their
suffix names."""
import json
import logging
import shlex

import h5py
import numpy as np
import pytest

from streaming.link_stats import REPORT_SCHEMA_VERSION, REPORT_UNITS, STOP_REASONS
from streaming.result_file import RESULT_FORMAT_VERSION
from zakotfs import __version__
from zakotfs.cli import main
from zakotfs.frame_stats import FRAME_STATISTICS


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    """tx (tiny, 4 frames) -> channel -> rx --out --report --record rec.sigmf-meta."""
    d = tmp_path_factory.mktemp("outputs")
    tx, ch = str(d / "tx.h5"), str(d / "ch.h5")
    assert main(["tx", "--preset", "tiny", "--out", tx, "--frames", "4", "--seed", "3"]) == 0
    assert main(["channel", "--in", tx, "--out", ch, "--snr", "30", "--seed", "4", "--cfo-hz", "300"]) == 0
    assert main(RX(d)) == 0
    return d


def RX(d) -> list[str]:
    """The fixture's rx arguments."""
    return ["rx", "--in", str(d / "ch.h5"), "--out", str(d / "r.h5"), "--report", str(d / "r.json"),
            "--record", str(d / "rec.sigmf-meta"), "--json"]


def test_every_dataset_of_the_result_file_says_its_unit_and_meaning(decoded):
    with h5py.File(decoded / "r.h5") as f:
        root = dict(f.attrs)
        assert root["format"] == "zakotfs-result" and root["format_version"] == RESULT_FORMAT_VERSION
        assert root["software_version"] == __version__ and root["command"] == shlex.join(["zakotfs", *RX(decoded)])
        assert root["created"].endswith("+00:00") and "positive means bit 0" in root["llr_convention"]
        assert "38.211" in root["bit_order"] and json.loads(root["zakotfs_config"])["M"] > 0
        datasets = []
        f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        for dset in datasets:
            assert {"unit", "description"} <= set(dset.attrs), dset.name
            assert dset.shape[0] == 4, dset.name
        stats = f["frame_statistics"]
        assert set(stats) == {s.name for s in FRAME_STATISTICS}
        for s in FRAME_STATISTICS:
            assert stats[s.name].attrs["unit"] == s.unit
        assert np.all((stats["cfo_hz"][()] > 100) & (stats["cfo_hz"][()] < 1000))   # the 300 Hz carrier offset
        assert np.all(stats["sinr_db"][()] > 10) and np.all(stats["cg_residual"][()] < 1e-2)
        assert f["frame_start"].attrs["unit"] == "samples" and np.all(np.diff(f["frame_start"][()]) > 0)
        assert np.all(f["llr"][()][f["bits"][()] == 0] > 0)                   # the sign convention holds


def test_the_report_has_a_schema_units_and_one_place_per_figure(decoded):
    report = json.loads((decoded / "r.json").read_text())
    assert report["schema"] == "zakotfs-link-report" and report["schema_version"] == REPORT_SCHEMA_VERSION
    assert report["software_version"] == __version__ and report["created"]
    assert report["command"] == shlex.join(["zakotfs", *RX(decoded)])          # as typed, not sys.argv
    assert report["units"] == REPORT_UNITS
    for path in REPORT_UNITS:                                  # every unit names a field of the report
        head = path.split(".")[0]
        assert head in report, path
    assert report["units"]["stages"].startswith("us") and report["units"]["channel_delay.first"] == "samples"
    assert report["stopped_by"] == "end of stream" and report["stopped_by"] in STOP_REASONS.values()
    assert "stopped_by" not in report["runner"] and "source" not in report["runner"]
    assert "frames_lost" not in report["runner"]


def test_rx_record_and_tx_out_write_the_format_their_suffix_names(decoded, tmp_path, caplog):
    meta = json.loads((decoded / "rec.sigmf-meta").read_text())
    assert meta["global"]["core:datatype"] == "cf32_le" and (decoded / "rec.sigmf-data").stat().st_size > 0
    with h5py.File(decoded / "ch.h5") as f:
        iq = f["iq"][()]
    np.testing.assert_array_equal(np.fromfile(decoded / "rec.sigmf-data", np.complex64), iq)
    cfile, sc16 = tmp_path / "tx.cfile", tmp_path / "tx.sc16"
    assert main(["tx", "--preset", "tiny", "--out", str(cfile), "--frames", "2", "--seed", "3",
                 "--truth", str(tmp_path / "truth.h5")]) == 0
    assert main(["tx", "--preset", "tiny", "--out", str(sc16), "--frames", "2", "--seed", "3"]) == 0
    with h5py.File(decoded / "tx.h5") as f:
        sent = f["iq"][()]
    samples = np.fromfile(cfile, np.complex64)
    np.testing.assert_array_equal(samples, sent[:samples.size])
    codes = np.fromfile(sc16, "<i2").astype(float).view(complex)
    assert codes.size == samples.size and np.abs(codes).max() < 32768
    caplog.set_level(logging.WARNING)
    assert main(["rx", "--in", str(cfile), "--preset", "tiny", "--truth", str(tmp_path / "truth.h5"),
                 "--record", str(tmp_path / "again.cfile"), "--report", str(tmp_path / "r.json"), "--json"]) == 0
    assert "ignored" not in caplog.text                         # --preset is what framed the raw file
    assert json.loads((tmp_path / "r.json").read_text())["bit_errors"] == 0
    np.testing.assert_array_equal(np.fromfile(tmp_path / "again.cfile", np.complex64), samples)
    assert main(["rx", "--in", str(decoded / "ch.h5"), "--grid", "64x16", "--json"]) == 0
    assert "ignored" in caplog.text                              # the file's own configuration wins


def test_a_command_run_in_process_leaves_the_signal_handlers_as_it_found_them(tmp_path, monkeypatch):
    """main(argv) called from another program (a test, a notebook): a stop signal during the
    command ends it with exit status 130, and afterwards SIGINT and SIGTERM are handled as
    before (the command itself, ``entry``, ignores a late second signal instead)."""
    import signal

    from zakotfs.cli import ExitStatus, tx

    def interrupted(args):
        signal.raise_signal(signal.SIGTERM)
        return 0

    monkeypatch.setattr(tx, "run", interrupted)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert main(["tx", "--preset", "tiny", "--out", str(tmp_path / "x.h5")]) == ExitStatus.INTERRUPTED
    assert {s: signal.getsignal(s) for s in before} == before


def test_rx_queues_half_a_second_of_frames_by_default():
    """The default queue rides out a half-second stall of the compute on a live link
    (3.84 MHz: 469 frames of 1.07 ms), at least 4 batches, at most 256 MiB of samples (the
    paper grid's 4.2 MB frames: the floor of 64)."""
    from zakotfs import design, preset
    from zakotfs.cli.options import QUEUE_BYTES, default_queue

    cpu_grid = design(256, 16, 3.84e6)
    assert default_queue(cpu_grid, 32) * cpu_grid.wire_time >= 0.45
    assert default_queue(cpu_grid, 256) == 1024
    paper = preset("paper")
    assert default_queue(paper, 1) == 64 and 8 * (paper.cp_len + paper.MN) * 64 > QUEUE_BYTES
