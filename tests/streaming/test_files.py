"""HDF5 and SigMF sample files, damaged files, the uniform sample source and pacing."""
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from streaming.files import FORMAT_VERSION, IQReader, IQWriter, SigMFReader, SigMFWriter, write_sigmf
from streaming.io import PacedSource, ZmqSampleSource, open_source
from zakotfs.config import preset

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config():
    return preset("tiny")


def stream(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)


def write_file(path, config, samples, *, chunk_samples=4096, pieces=7, bits=None, channel=None):
    with IQWriter(path, config, chunk_samples=chunk_samples, flush_interval_s=0) as writer:
        for piece in np.array_split(samples, pieces):
            writer.write(piece)
        if bits is not None:
            writer.write_truth_bits(bits)
        if channel is not None:
            writer.write_channel_truth(channel)
    return path


# ---- HDF5 ----------------------------------------------------------------------------------------
def test_hdf5_round_trip(tmp_path, config):
    rng = np.random.default_rng(1)
    x = stream(50_000)
    bits = rng.integers(0, 2, (3, config.bits_per_frame), dtype=np.uint8)
    channel = [{"gains": np.array([1 + 1j, 0.5j]), "delays_s": np.array([0.0, 3.1e-7]),
                "dopplers_hz": [12.5, -40.0], "note": "frame 0"},
               {"gains": np.array([0.25 + 0j]), "delays_s": [0.0], "dopplers_hz": [0.0]}]
    path = write_file(tmp_path / "rx.h5", config, x, bits=bits, channel=channel)

    with h5py.File(path, "r") as f:           # the layout the spec names
        assert f["iq"].dtype == np.complex64 and f["iq"].chunks == (4096,)
        assert f.attrs["sample_rate"] == config.bandwidth
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert json.loads(f.attrs["zakotfs_config"]) == config.to_dict()
        assert f["truth/bits"].dtype == np.uint8

    with IQReader(path, chunk_samples=10_000) as reader:
        assert reader.config == config and reader.sample_rate == config.bandwidth
        assert reader.n_samples == x.size and reader.damage is None
        first = reader.read(123)
        rest = np.concatenate(list(reader))
        assert reader.eof and reader.read() is None
        np.testing.assert_array_equal(np.concatenate([first, rest]), x)
        np.testing.assert_array_equal(reader.truth_bits, bits)
        got = reader.channel_truth
    assert len(got) == 2 and got[0]["note"] == "frame 0"
    np.testing.assert_allclose(got[0]["gains"], channel[0]["gains"])
    np.testing.assert_allclose(got[0]["delays_s"], channel[0]["delays_s"])
    np.testing.assert_allclose(got[1]["gains"], channel[1]["gains"])


def test_hdf5_without_truth(tmp_path, config):
    path = write_file(tmp_path / "a.h5", config, stream(100), pieces=2)
    with IQReader(path) as reader:
        assert reader.truth_bits is None and reader.channel_truth is None


def test_writer_closes_cleanly_on_keyboard_interrupt(tmp_path, config):
    x = stream(10_000)
    with pytest.raises(KeyboardInterrupt):
        with IQWriter(tmp_path / "k.h5", config) as writer:
            writer.write(x)
            raise KeyboardInterrupt
    with IQReader(tmp_path / "k.h5") as reader:
        np.testing.assert_array_equal(reader.read(x.size), x)


def test_writer_validates(tmp_path, config):
    with IQWriter(tmp_path / "v.h5", config) as writer:
        with pytest.raises(ValueError, match="bits_per_frame"):
            writer.write_truth_bits(np.zeros((2, 5), np.uint8))
        with pytest.raises(ValueError, match="1-D"):
            writer.write(np.zeros((2, 2), np.complex64))
        with pytest.raises(ValueError, match="complex"):
            writer.write(np.zeros(4))
    with pytest.raises(ValueError, match="closed"):
        writer.write(stream(3))
    with pytest.raises(ValueError, match="sample_rate"):
        IQWriter(tmp_path / "w.h5", config, sample_rate=-1)


@pytest.mark.parametrize("fraction", [0.95, 0.6, 0.3, 0.05])
def test_truncated_file_returns_intact_prefix_with_clear_message(tmp_path, config, fraction, caplog):
    x = stream(300_000)
    bits = np.ones((2, config.bits_per_frame), np.uint8)
    path = write_file(tmp_path / "cut.h5", config, x, bits=bits)
    os.truncate(path, int(os.path.getsize(path) * fraction))

    with pytest.raises(OSError, match=f"{path}.*truncated.*recover=True"):
        IQReader(path, recover=False)

    caplog.set_level(logging.WARNING)
    with IQReader(path) as reader:
        assert "truncated" in reader.damage
        assert str(path) in caplog.text and "damaged" in caplog.text
        assert 0 < reader.n_samples < x.size
        got = np.concatenate(list(reader))
        truth = reader.truth_bits              # its intact rows, or None
    np.testing.assert_array_equal(got, x[:got.size])
    assert truth is None or np.array_equal(truth, bits[:truth.shape[0]])
    assert got.size == reader.n_samples


_KILLED_WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from streaming.files import IQWriter
    from zakotfs.config import preset
    config = preset("tiny")
    writer = IQWriter(sys.argv[1], config, chunk_samples=4096, flush_interval_s=0)
    writer.write_truth_bits(np.ones((2, config.bits_per_frame), np.uint8))
    writer.write_channel_truth([{"gains": np.array([1 + 2j])}])
    for i in range(20):
        writer.write(np.full(10_000, i, np.complex64))
    print("written", flush=True)
    time.sleep(60)
""")


def test_file_of_a_killed_writer_gives_back_what_was_flushed(tmp_path):
    path = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))))
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.kill()
        proc.wait(10)
    with pytest.raises(OSError, match="not closed by its writer.*recover=True"):
        IQReader(path, recover=False)
    with IQReader(path) as reader:
        config = preset("tiny")
        assert "not closed" in reader.damage and reader.config == config
        got = np.concatenate(list(reader))
        np.testing.assert_array_equal(reader.truth_bits, np.ones((2, config.bits_per_frame)))
        np.testing.assert_allclose(reader.channel_truth[0]["gains"], [1 + 2j])
    assert got.size == 200_000
    np.testing.assert_array_equal(got, np.repeat(np.arange(20), 10_000).astype(np.complex64))


@pytest.mark.parametrize("size", [0, 100, 1000, 3000])
def test_file_cut_inside_its_metadata_gives_a_clear_error(tmp_path, config, size):
    path = write_file(tmp_path / "meta.h5", config, stream(100_000))
    os.truncate(path, size)
    with pytest.raises((OSError, ValueError)) as info:
        IQReader(path)
    assert str(path) in str(info.value)


def test_not_hdf5_missing_file_and_missing_config(tmp_path, config):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"this is not HDF5" * 100)
    with pytest.raises(OSError, match=f"{junk}.*HDF5"):
        IQReader(junk)
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        IQReader(tmp_path / "nope.h5")
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as f:
        f.create_dataset("iq", data=stream(10))
    with pytest.raises(ValueError, match="zakotfs_config.*config="):
        IQReader(bare)
    with IQReader(bare, config=config) as reader:
        assert reader.config == config and reader.read().size == 10
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("samples", data=stream(10))
    with pytest.raises(ValueError, match=f"{other}.*/iq"):
        IQReader(other)


# ---- SigMF ---------------------------------------------------------------------------------------
def test_sigmf_round_trip(tmp_path, config):
    x = stream(20_000, seed=3)
    with SigMFWriter(tmp_path / "rec.sigmf-meta", config, frequency=3.5e9) as writer:
        for i, piece in enumerate(np.array_split(x, 4)):
            writer.annotate(writer.samples_written, piece.size, label=f"frame {i}", **{"zakotfs:seq": i})
            writer.write(piece)
    meta = json.loads((tmp_path / "rec.sigmf-meta").read_text())
    assert meta["global"]["core:datatype"] == "cf32_le"
    assert meta["global"]["core:sample_rate"] == config.bandwidth
    assert meta["global"]["zakotfs:config"] == config.to_dict()
    assert meta["captures"] == [{"core:sample_start": 0, "core:frequency": 3.5e9}]
    assert [a["zakotfs:seq"] for a in meta["annotations"]] == [0, 1, 2, 3]

    with SigMFReader(tmp_path / "rec.sigmf-data", chunk_samples=3000) as reader:
        assert reader.config == config and reader.n_samples == x.size
        np.testing.assert_array_equal(np.concatenate(list(reader)), x)
        assert reader.annotations[1]["core:label"] == "frame 1"


def test_sigmf_without_zakotfs_config_needs_one(tmp_path, config):
    from sigmf import SigMFFile

    x = stream(1000, seed=4)
    x.tofile(tmp_path / "plain.sigmf-data")
    SigMFFile(data_file=str(tmp_path / "plain.sigmf-data"),
              global_info={"core:datatype": "cf32_le", "core:sample_rate": 1e6}
              ).tofile(str(tmp_path / "plain"))
    with pytest.raises(ValueError, match="no zakotfs:config.*config="):
        SigMFReader(tmp_path / "plain.sigmf-meta")
    with SigMFReader(tmp_path / "plain.sigmf-meta", config=config) as reader:
        np.testing.assert_array_equal(reader.read(5000), x)


def test_sigmf_checksum_mismatch_is_reported(tmp_path, config):
    meta = write_sigmf(tmp_path / "c", stream(1000), config)
    with open(tmp_path / "c.sigmf-data", "r+b") as fh:
        fh.write(b"\xff" * 8)
    with pytest.raises(ValueError, match=r"does not match its core:sha512.*recover=True"):
        SigMFReader(meta, recover=False)
    with SigMFReader(meta) as reader:
        assert reader.read().size == 1000 and "core:sha512" in reader.stats()["damage"]
    with SigMFReader(meta, verify_checksum=False) as reader:
        assert reader.read().size == 1000 and reader.damage is None


# ---- uniform source ------------------------------------------------------------------------------
def test_open_source_files_and_endpoint(tmp_path, config):
    x = stream(9000, seed=5)
    h5 = write_file(tmp_path / "s.h5", config, x)
    sig = write_sigmf(tmp_path / "s", x, config)
    for path in (h5, sig):
        source = open_source(path, chunk_samples=4000)
        chunks = []
        while (chunk := source.read()) is not None:
            chunks.append(chunk)
        assert source.eof and source.config == config
        np.testing.assert_array_equal(np.concatenate(chunks), x)
        source.close()
    zsource = open_source("tcp://127.0.0.1:*", bind=True, pattern="pull", timeout_ms=10)
    assert isinstance(zsource, ZmqSampleSource)
    assert zsource.config is None and not zsource.eof and zsource.read() is None
    assert zsource.stats()["timeouts"] == 1
    zsource.close()
    with pytest.raises(ValueError, match="realtime"):
        open_source("tcp://127.0.0.1:5555", realtime=True)
    with pytest.raises(ValueError, match="expected a .h5"):
        open_source(tmp_path / "x.wav")
    with pytest.raises(ValueError, match="ZeroMQ"):
        open_source(h5, timeout_ms=5)


def test_realtime_pacing(tmp_path, config):
    x = stream(20_000)
    bits = np.zeros((1, config.bits_per_frame), np.uint8)
    with IQWriter(tmp_path / "p.h5", config, sample_rate=100_000.0) as writer:
        writer.write(x)
        writer.write_truth_bits(bits)
    source = open_source(tmp_path / "p.h5", realtime=True, chunk_samples=5000)
    assert isinstance(source, PacedSource) and source.sample_rate == 100_000.0
    np.testing.assert_array_equal(source.truth_bits, bits)
    t0 = time.perf_counter()
    n = 0
    while (chunk := source.read()) is not None:
        n += chunk.size
    elapsed = time.perf_counter() - t0
    source.close()
    assert n == x.size
    assert 0.14 <= elapsed < 1.0            # the 4th chunk is due 15000 samples / 100 kHz later
