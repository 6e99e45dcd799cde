"""Fixed-point IQ (ci16_le, ci8) on the wire and on disk, checked against the interleaved
codes written out by hand and against the sigmf package's own reading."""
import logging

import numpy as np
import pytest

from streaming.files import MissingConfigError, RawIQReader, SigMFReader, SigMFWriter
from streaming.io import open_source
from streaming.sample_format import RANGING_HEADROOM, LevelMeter, SampleEncoder, sample_format
from streaming.zmq_io import IQSink, IQSource, encode_tag_header
from zakotfs import preset

CONFIG = preset("tiny")


def _codes(rng, n, bits):
    top = 2 ** (bits - 1)
    return rng.integers(-top, top, size=2 * n).astype(f"<i{bits // 8}")


@pytest.mark.parametrize("name,bits", [("ci16_le", 16), ("ci8", 8)])
def test_decode_reads_interleaved_codes_at_full_scale_one(name, bits):
    codes = _codes(np.random.default_rng(1), 257, bits)
    samples = sample_format(name).decode(codes.tobytes())
    assert samples.dtype == np.complex64 and samples.size == 257
    expected = (codes[0::2] + 1j * codes[1::2]) / 2.0 ** (bits - 1)
    np.testing.assert_array_equal(samples, expected.astype(np.complex64))
    swapped = sample_format(name).decode(codes.byteswap().tobytes(), byteorder=">")
    np.testing.assert_array_equal(swapped, samples)


def test_cf32_decode_is_a_view_and_big_endian_is_converted():
    x = (np.arange(6) * (1 - 2j)).astype("<c8")
    view = sample_format("cf32_le").decode(x.tobytes())
    np.testing.assert_array_equal(view, x)
    np.testing.assert_array_equal(sample_format("cf32_le").decode(x.astype(">c8").tobytes(), byteorder=">"), x)


@pytest.mark.parametrize("name,bits", [("ci16_le", 16), ("ci8", 8)])
def test_encode_rounds_to_the_nearest_code_and_counts_what_clips(name, bits):
    fmt, top = sample_format(name), 2 ** (bits - 1) - 1
    x = np.array([0.5 + 0.25j, -1.0 + 1.0j, 1.5 - 2.0j, 0.0 - 0.999j, np.nan + 0.1j], dtype=np.complex64)
    items, clipped = fmt.encode(x, full_scale=1.0)
    assert items.dtype == np.dtype(f"<i{bits // 8}")
    expected = [round(0.5 * top), round(0.25 * top), -top, top, top, -top, 0, round(-0.999 * top), 0,
                round(0.1 * top)]
    np.testing.assert_array_equal(items, expected)
    assert clipped == 3                                    # 1.5, -2.0 and the NaN
    back = fmt.decode(items.tobytes())[:2] * 2.0 ** (bits - 1) / top
    assert np.abs(back.real - x[:2].real).max() <= 0.5 / top and np.abs(back.imag - x[:2].imag).max() <= 0.5 / top


def test_the_encoder_ranges_its_gain_so_that_nothing_clips():
    enc = SampleEncoder("ci8")
    assert enc.ranging and enc.full_scale is None
    enc(np.full(4, 0.01 + 0j, dtype=np.complex64))             # a quiet lead-in
    assert enc.full_scale == pytest.approx(0.01 * RANGING_HEADROOM)
    enc(np.array([0.1 - 3j], dtype=np.complex64))              # the signal: raised before encoding
    assert enc.full_scale == pytest.approx(3.0 * RANGING_HEADROOM) and enc.clipped == 0
    enc(np.array([1 + 4j], dtype=np.complex64))                # within the headroom: kept
    assert enc.full_scale == pytest.approx(3.0 * RANGING_HEADROOM) and enc.clipped == 0
    enc(np.array([1 + 1j], dtype=np.complex64))                # never lowered
    assert enc.full_scale == pytest.approx(3.0 * RANGING_HEADROOM)
    assert RANGING_HEADROOM == pytest.approx(10 ** (3.0103 / 20))
    fixed = SampleEncoder("ci16_le", full_scale=0.5)
    fixed(np.array([1 + 0.1j], dtype=np.complex64))
    assert fixed.full_scale == 0.5 and fixed.clipped == 1 and not fixed.ranging
    with pytest.raises(ValueError, match="full_scale must be > 0"):
        SampleEncoder("ci16_le", full_scale=0.0)
    with pytest.raises(ValueError, match="expected one of cf32_le, ci16_le, ci8"):
        sample_format("sc16")


@pytest.mark.parametrize("name", ["ci16_le", "ci8"])
def test_zeromq_carries_fixed_point_and_rejects_a_broken_item(name):
    fmt = sample_format(name)
    x = (np.random.default_rng(2).standard_normal((300, 2)) @ np.array([1, 1j])).astype(np.complex64)
    with IQSink("tcp://127.0.0.1:*", "push", sample_format=name, pass_tags=True) as sink, \
            IQSource(sink.endpoint, "pull", sample_format=name, timeout_ms=2000, pass_tags=True) as source:
        assert sink.send(x) and sink.send(x[:100])
        first, second = source.recv_chunk(), source.recv_chunk()
        scale = sink.encoder.full_scale * 2 ** (fmt.bits - 1) / (2 ** (fmt.bits - 1) - 1)
        np.testing.assert_allclose(first.samples * scale, x, atol=sink.encoder.full_scale / 2 ** (fmt.bits - 2))
        assert (first.offset, second.offset, second.missing) == (0, 300, 0)
        assert sink.stats.bytes == 400 * fmt.itemsize and sink.stats.clipped_components == 0
        # a payload cut inside an item is skipped and counted
        sink._socket.send(encode_tag_header(400) + b"\x01" * (3 * fmt.itemsize + 1))
        assert source.recv_chunk() is None and source.stats.bad_messages == 1


def test_sigmf_fixed_point_reads_back_through_the_sigmf_package(tmp_path):
    x = (np.random.default_rng(3).standard_normal((2000, 2)) @ np.array([1, 1j])).astype(np.complex64)
    with SigMFWriter(tmp_path / "rec", CONFIG, sample_format="ci16_le", full_scale=8.0) as writer:
        writer.write(x)
    reader = SigMFReader(tmp_path / "rec.sigmf-meta")
    assert reader._meta.get_global_field("core:datatype") == "ci16_le"
    assert (tmp_path / "rec.sigmf-data").stat().st_size == 2000 * 4
    got = reader.read(5000)
    np.testing.assert_allclose(got * 8.0 * 32768 / 32767, x, atol=8.0 / 32767)


def test_raw_files_take_their_format_from_the_suffix_or_as_given(tmp_path):
    codes = _codes(np.random.default_rng(4), 1000, 16)
    expected = ((codes[0::2] + 1j * codes[1::2]) / 32768).astype(np.complex64)
    for name in ("cap.sc16", "cap.bin"):
        (tmp_path / name).write_bytes(codes.tobytes())
    source = open_source(tmp_path / "cap.sc16", config=CONFIG, chunk_samples=300)
    np.testing.assert_array_equal(np.concatenate(list(source)), expected)
    assert source.stats()["sample_format"] == "ci16_le" and source.sample_rate == CONFIG.bandwidth
    as_given = open_source(tmp_path / "cap.bin", config=CONFIG, sample_format="ci16_le", chunk_samples=4096)
    np.testing.assert_array_equal(as_given.read(), expected)
    assert open_source(tmp_path / "cap.bin", config=CONFIG).read().size == 500       # cf32_le unless told
    with pytest.raises(ValueError, match="says ci16_le, not ci8"):
        RawIQReader(tmp_path / "cap.sc16", config=CONFIG, sample_format="ci8")
    with pytest.raises(MissingConfigError, match="carries no frame configuration"):
        open_source(tmp_path / "cap.sc16")
    with pytest.raises(ValueError, match="an HDF5 or SigMF file says its own"):
        open_source(tmp_path / "x.h5", sample_format="ci16_le")


def test_a_raw_file_cut_inside_a_sample_reads_the_whole_ones(tmp_path, caplog):
    x = (np.arange(10) * (1 + 1j)).astype("<c8")
    (tmp_path / "cut.cfile").write_bytes(x.tobytes()[:-3])
    with caplog.at_level(logging.WARNING):
        reader = RawIQReader(tmp_path / "cut.cfile", config=CONFIG)
    assert "not a whole number of cf32_le samples" in caplog.text
    np.testing.assert_array_equal(np.concatenate(list(reader)), x[:9])
    assert reader.stats()["trailing_bytes"] == 5 and reader.eof and reader.read() is None



def test_the_level_meter_reads_the_peak_and_the_codes_at_full_scale():
    meter = LevelMeter("ci8")
    codes = np.array([10, -20, 127, 3, -128, 64, 0, 0], dtype=np.int8)
    meter(sample_format("ci8").decode(codes.tobytes()))
    meter(sample_format("ci8").decode(np.array([1, -1], dtype=np.int8).tobytes()))
    level = meter.to_dict()
    assert level["clipped_components"] == 2 and level["peak_dbfs"] == pytest.approx(0.0)
    quiet = LevelMeter("ci16_le")
    quiet(sample_format("ci16_le").decode(np.array([4096, -2048], dtype="<i2").tobytes()))
    assert quiet.to_dict() == {"sample_format": "ci16_le", "peak_dbfs": pytest.approx(-18.0618),
                               "clipped_components": 0}
    float_input = LevelMeter("cf32_le")
    float_input(np.array([5 + 5j], dtype=np.complex64))
    assert float_input.to_dict()["peak_dbfs"] is None
