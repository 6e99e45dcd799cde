"""One way out for samples (open_sink) beside the way in, and the decoded results to HDF5."""
import types

import h5py
import numpy as np
import pytest

from streaming.files import IQWriter, SigMFWriter
from streaming.io import RecordingSource, open_sink, open_source
from streaming.result_file import ResultFileWriter
from streaming.zmq_io import IQSink, is_endpoint
from zakotfs import preset

CONFIG = preset("tiny")


def test_endpoints_and_files_are_told_apart():
    assert is_endpoint("tcp://127.0.0.1:5555") and is_endpoint("ipc:///tmp/x") and is_endpoint("inproc://a")
    assert not is_endpoint("tcp.h5") and not is_endpoint("x.sigmf-meta")


def test_open_sink_writes_what_open_source_reads(tmp_path):
    samples = (np.arange(5000) * (1 + 1j)).astype(np.complex64)
    for name, kind in (("x.h5", IQWriter), ("x.sigmf-meta", SigMFWriter)):
        sink = open_sink(tmp_path / name, CONFIG)
        assert isinstance(sink, kind)
        sink.write(samples)
        sink.close()
        with open_source(tmp_path / name) as source:
            np.testing.assert_array_equal(np.concatenate(list(source)), samples)
    sink = open_sink("tcp://127.0.0.1:*", CONFIG, pattern="push", sample_format="ci16_le")
    assert isinstance(sink, IQSink) and sink.encoder.format.name == "ci16_le"
    sink.close()


@pytest.mark.parametrize("target, options, match", [
    ("x.txt", {}, "expected FILE.h5"), ("x.h5", {"sample_format": "ci8"}, "holds complex64"),
    ("x.h5", {"full_scale": -1.0}, "full_scale")])
def test_open_sink_names_what_is_wrong(tmp_path, target, options, match):
    with pytest.raises(ValueError, match=match):
        open_sink(tmp_path / target, CONFIG, **options)


def test_a_recording_source_keeps_what_it_reads(tmp_path):
    samples = np.ones(3000, np.complex64)
    with IQWriter(tmp_path / "in.h5", CONFIG) as writer:
        writer.write(samples)
    source = RecordingSource(open_source(tmp_path / "in.h5", chunk_samples=1000), IQWriter(tmp_path / "rec.h5", CONFIG))
    while source.read() is not None:
        pass
    source.close()
    with h5py.File(tmp_path / "rec.h5") as f:
        np.testing.assert_array_equal(f["iq"][()], samples)


def test_results_go_to_hdf5_frame_by_frame(tmp_path):
    B = CONFIG.bits_per_frame
    writer = ResultFileWriter(tmp_path / "r.h5", CONFIG, llr_step=0.5)
    for seq in (3, 4):
        result = types.SimpleNamespace(bits=np.full((1, B), seq % 2, np.uint8), llr=np.full((1, B), seq, np.int8))
        writer(result, [{"seq": seq}])
    with pytest.raises(ValueError, match="carry no LLRs"):
        writer(types.SimpleNamespace(bits=np.zeros((1, B), np.uint8), llr=None), [{"seq": 5}])
    writer.close()
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["seq"][()].tolist() == [3, 4] and f["llr"].attrs["llr_step"] == 0.5
        assert f["bits"][()][:, 0].tolist() == [1, 0] and f["llr"].dtype == np.int8
