"""Every per-frame statistic of the registry reaches every consumer: the receiver's host
result, the real-time path's packed columns, a batch cut to its frames, the result
messages, a scale-out worker's collected result and the link report."""
import dataclasses

import numpy as np
import pytest

from streaming.link_stats import SUMMARISED, LinkStats
from streaming.zmq_io import FRAME_METRICS, decode_result, encode_result, frame_metrics
from zakotfs import preset
from zakotfs.benchmark import make_frames
from zakotfs.frame_stats import FRAME_STATISTICS, from_device, pack, take_frames, unpack
from zakotfs.receiver import Receiver, RxResult

NAMES = [s.name for s in FRAME_STATISTICS]


@pytest.fixture(scope="module")
def run():
    """(receiver, its DeviceResult and RxResult) of two tiny frames on the CPU."""
    config = preset("tiny")
    receiver = Receiver(config, backend="cpu", quiet=True)
    frames = make_frames(config, 2).frames
    device = receiver.run(frames[:, config.cp_len:].astype(np.complex64))
    return receiver, device, receiver.process(frames)


def test_the_registry_names_each_statistic_once_with_its_contract():
    assert len(set(NAMES)) == len(NAMES)
    for stat in FRAME_STATISTICS:
        assert stat.dtype in (float, bool) and stat.description and isinstance(stat.unit, str)


def test_rx_result_has_one_keyword_field_per_statistic():
    fields = {f.name: f for f in dataclasses.fields(RxResult)}
    for name in NAMES:
        assert fields[name].kw_only and fields[name].default is None


@pytest.mark.parametrize("stat", FRAME_STATISTICS, ids=NAMES)
def test_each_statistic_reaches_the_host_result_and_the_packed_columns(run, stat):
    _, device, result = run
    values = getattr(result, stat.name)
    assert values.shape == (2,) and values.dtype == np.dtype(stat.dtype)
    columns = pack(device, np)
    assert columns.dtype == np.float32 and columns.shape == (2, len(FRAME_STATISTICS))
    np.testing.assert_allclose(unpack(columns)[stat.name], from_device(device, np.asarray)[stat.name],
                               rtol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(take_frames(result, 1)[stat.name], values[:1])


@pytest.mark.parametrize("stat", FRAME_STATISTICS, ids=NAMES)
def test_each_statistic_travels_in_result_messages(run, stat):
    result = dataclasses.replace(run[2], echo_delay=np.array([3.0, np.nan]), echo_db=np.array([-20.0, np.nan]))
    assert (stat.name in FRAME_METRICS) == stat.message
    parts = encode_result(0, bits=result.bits[0], metrics=frame_metrics(result, 0))
    metrics = decode_result([bytes(p) for p in parts]).header.get("metrics") or {}
    if stat.message:
        np.testing.assert_allclose(metrics[stat.name], getattr(result, stat.name)[0])
    else:
        assert stat.name not in metrics


def test_the_report_summarises_every_float_statistic(run):
    receiver, _, result = run
    result = dataclasses.replace(result, echo_delay=np.array([3.0, np.nan]), echo_db=np.array([-20.0, np.nan]))
    stats = LinkStats(receiver.config, receiver.backend, "accurate")
    stats.consume(result, [{"seq": k, "latency_us": 1.0} for k in range(2)])
    summary = stats.report()["frame_statistics"]
    assert set(summary) == {s.name for s in SUMMARISED} == {s.name for s in FRAME_STATISTICS if s.dtype is float}
    assert summary["cg_residual"]["p50"] == pytest.approx(np.median(result.cg_residual))
    assert summary["echo_delay"] == {"unit": "samples", "p50": 3.0, "min": 3.0, "max": 3.0}
