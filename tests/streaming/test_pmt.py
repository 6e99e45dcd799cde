"""PMT codec: byte-identical to GNU Radio 3.10, reads from inside a larger buffer, bounded."""
import numpy as np
import pytest

from streaming import pmt, zmq_io
from streaming.pmt import PmtError, PmtPair, PmtReader, pmt_deserialize, pmt_serialize

# Serialised by GNU Radio 3.10.5 (pmt.serialize_str) -- the same values as PMT_VALUES.
GNURADIO_PMT = {
    "sym": "02000772785f74696d65", "int": "03fffffffb", "bigint": "0d0000010000000000",
    "u64": "0b8000000000000005", "dbl": "044136e36000000000",
    "cpx": "053ff00000000000004000000000000000", "T": "00", "F": "01", "nil": "06",
    "tuple": "0c000000020b000000006553f100043fd0000000000000",
    "pair": "07020001610300000001", "list": "07020001780704400000000000000006",
    "vec": "0a0a0000000201003f8000003f80000040000000c0400000", "u8v": "0a000000000301000102fa",
    "f32v": "0a080000000201003f000000bfa00000", "s16v": "0a03000000020100fffe012c",
    "pvec": "080000000203000000070300000007",
    "dict": "09070200026b320200017609070200026b31030000000106",
}
PMT_VALUES = {
    "sym": "rx_time", "int": -5, "bigint": 2**40, "u64": 2**63 + 5, "dbl": 1.5e6, "cpx": 1 + 2j,
    "T": True, "F": False, "nil": None, "tuple": (np.uint64(1700000000), 0.25),
    "pair": PmtPair("a", 1), "list": PmtPair("x", PmtPair(2.0, None)),
    "vec": np.array([1 + 1j, 2 - 3j], np.complex64), "u8v": np.array([1, 2, 250], np.uint8),
    "f32v": np.array([0.5, -1.25], np.float32), "s16v": np.array([-2, 300], np.int16),
    "pvec": [7, 7], "dict": {"k2": "v", "k1": 1},
}


@pytest.mark.parametrize("name", sorted(GNURADIO_PMT))
def test_pmt_matches_gnuradio(name):
    wire = bytes.fromhex(GNURADIO_PMT[name])
    assert pmt_serialize(PMT_VALUES[name]) == wire
    decoded = pmt_deserialize(wire)
    expected = PMT_VALUES[name]
    if isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(decoded, expected)
        assert decoded.dtype == expected.dtype
    else:
        assert decoded == expected


@pytest.mark.parametrize("cut", [1, 3, 5, 9, 17])
def test_pmt_truncated_raises_value_error(cut):
    wire = bytes.fromhex(GNURADIO_PMT["tuple"])
    with pytest.raises(ValueError, match="truncated"):
        pmt_deserialize(wire[:cut])


def test_reader_reads_consecutive_pmts_from_an_offset():
    """PmtReader walks PMTs embedded in other data (as the pass_tags header does)."""
    values = ["rx_time", (np.uint64(1700000000), 0.25), {"k": [1, 2.5]}]
    prefix = b"\xaa\xbb\xcc"
    buf = prefix + b"".join(pmt_serialize(v) for v in values) + b"tail"
    reader = PmtReader(memoryview(buf), len(prefix))
    assert [reader.read() for _ in values] == values
    assert bytes(reader.take(4)) == b"tail"
    with pytest.raises(PmtError, match="truncated"):
        reader.take(1)


@pytest.mark.parametrize("value", [object(), np.zeros((2, 2)), 2**64, "x" * 65536])
def test_unsupported_values_raise(value):
    with pytest.raises(PmtError):
        pmt_serialize(value)


def test_nesting_and_trailing_bytes_are_rejected():
    deep = None
    for _ in range(70):
        deep = PmtPair(deep, None)
    with pytest.raises(PmtError, match="nesting"):
        pmt_serialize(deep)
    with pytest.raises(PmtError, match="nesting"):
        pmt_deserialize(b"\x0c\x00\x00\x00\x01" * 70 + b"\x06")     # tuples of one, 70 deep
    with pytest.raises(PmtError, match="trailing"):
        pmt_deserialize(pmt_serialize(1) + b"\x06")


def test_zmq_io_reexports_the_codec():
    for name in ("PmtError", "PmtPair", "pmt_serialize", "pmt_deserialize"):
        assert getattr(zmq_io, name) is getattr(pmt, name)
