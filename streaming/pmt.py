"""GNU Radio polymorphic types (PMT): serialisation byte-identical to GNU Radio 3.10.

The wire format is GNU Radio's ``gnuradio-runtime/lib/pmt/pmt_serialize.cc`` (type bytes from
``pmt_serial_tags.h``): one type byte per object, then its payload, big-endian. gr-zeromq's
``pass_tags`` header (:mod:`streaming.zmq_io`) carries each stream tag's key, value and srcid
in this form.

The Python mapping is given by :func:`pmt_serialize` and :func:`pmt_deserialize`. Nesting
is limited to 64 levels both ways; malformed, truncated or unsupported input raises
:class:`PmtError` (a ValueError).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PmtError", "PmtPair", "PmtReader", "pmt_serialize", "pmt_deserialize"]

_MAX_PMT_DEPTH = 64

_PST_TRUE, _PST_FALSE, _PST_SYMBOL, _PST_INT32, _PST_DOUBLE, _PST_COMPLEX = 0, 1, 2, 3, 4, 5
_PST_NULL, _PST_PAIR, _PST_VECTOR, _PST_DICT, _PST_UNIFORM_VECTOR = 6, 7, 8, 9, 10
_PST_UINT64, _PST_TUPLE, _PST_INT64 = 11, 12, 13
# uniform-vector subtypes -> big-endian numpy dtype of one item
_UVI_DTYPES = {0: ">u1", 1: ">i1", 2: ">u2", 3: ">i2", 4: ">u4", 5: ">i4", 6: ">u8", 7: ">i8",
               8: ">f4", 9: ">f8", 10: ">c8", 11: ">c16"}
_DTYPE_UVI = {np.dtype(v).newbyteorder("="): k for k, v in _UVI_DTYPES.items()}
# fixed-size payloads, big-endian as pmt_serialize.cc writes them
_U16, _U32, _I32 = struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">i")
_U64, _I64, _F64 = struct.Struct(">Q"), struct.Struct(">q"), struct.Struct(">d")
_C128, _UV_HEADER = struct.Struct(">dd"), struct.Struct(">BIB")


class PmtError(ValueError):
    """Malformed or unsupported PMT serialisation."""


@dataclass(frozen=True)
class PmtPair:
    """A PMT pair (cons cell). Proper lists are chains of pairs ending in None (PMT_NIL)."""

    car: Any
    cdr: Any


def pmt_serialize(obj: Any) -> bytes:
    """Python value -> GNU Radio PMT serialisation (bytes).

    Mapping: True/False; None -> PMT_NIL; str -> symbol (GNU Radio's strings are symbols);
    int -> int32, or int64 outside int32, or uint64 at or above 2**63 (``np.uint64`` always
    uint64); float -> double; complex -> complex double; tuple -> tuple; list -> vector;
    dict -> dict; :class:`PmtPair` -> pair; 1-D ndarray of u8..u64, i8..i64, f32, f64, c64,
    c128 -> uniform vector.
    """
    out = bytearray()
    _serialize_into(obj, out, 0)
    return bytes(out)


def _serialize_into(obj: Any, out: bytearray, depth: int) -> None:
    """Append the serialisation of ``obj`` (at nesting level ``depth``) to ``out``."""
    if depth > _MAX_PMT_DEPTH:
        raise PmtError(f"PMT nesting deeper than {_MAX_PMT_DEPTH}")
    if obj is True or obj is False or isinstance(obj, np.bool_):
        out.append(_PST_TRUE if obj else _PST_FALSE)
    elif obj is None:
        out.append(_PST_NULL)
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        if len(raw) > 0xFFFF:
            raise PmtError(f"symbol of {len(raw)} bytes is longer than PMT's 65535")
        out += struct.pack(">BH", _PST_SYMBOL, len(raw)) + raw
    elif isinstance(obj, np.uint64):
        out += struct.pack(">BQ", _PST_UINT64, int(obj))
    elif isinstance(obj, (int, np.integer)):
        value = int(obj)
        if -2**31 <= value < 2**31:
            out += struct.pack(">Bi", _PST_INT32, value)
        elif -2**63 <= value < 2**63:
            out += struct.pack(">Bq", _PST_INT64, value)
        elif value < 2**64:
            out += struct.pack(">BQ", _PST_UINT64, value)
        else:
            raise PmtError(f"integer {value} does not fit in 64 bits")
    elif isinstance(obj, (float, np.floating)):
        out += struct.pack(">Bd", _PST_DOUBLE, float(obj))
    elif isinstance(obj, (complex, np.complexfloating)):
        out += struct.pack(">Bdd", _PST_COMPLEX, obj.real, obj.imag)
    elif isinstance(obj, PmtPair):
        out.append(_PST_PAIR)
        _serialize_into(obj.car, out, depth + 1)
        _serialize_into(obj.cdr, out, depth + 1)
    elif isinstance(obj, tuple):
        out += struct.pack(">BI", _PST_TUPLE, len(obj))
        for item in obj:
            _serialize_into(item, out, depth + 1)
    elif isinstance(obj, list):
        out += struct.pack(">BI", _PST_VECTOR, len(obj))
        for item in obj:
            _serialize_into(item, out, depth + 1)
    elif isinstance(obj, dict):
        if not obj:
            out.append(_PST_NULL)
        for key, value in obj.items():
            out.append(_PST_DICT)
            out.append(_PST_PAIR)
            _serialize_into(key, out, depth + 1)
            _serialize_into(value, out, depth + 1)
        if obj:
            out.append(_PST_NULL)
    elif isinstance(obj, np.ndarray) and obj.ndim == 1 and obj.dtype.newbyteorder("=") in _DTYPE_UVI:
        uvi = _DTYPE_UVI[obj.dtype.newbyteorder("=")]
        # one pad byte, as pmt_serialize.cc writes
        out += struct.pack(">BBIBB", _PST_UNIFORM_VECTOR, uvi, obj.size, 1, 0)
        out += np.ascontiguousarray(obj, dtype=_UVI_DTYPES[uvi]).tobytes()
    else:
        raise PmtError(f"cannot serialise {type(obj).__name__} as a PMT")


class PmtReader:
    """Cursor over a buffer holding serialised PMTs, possibly among other data.

    ``buf`` is a bytes-like object indexed by byte (bytes, or a ``memoryview`` cast to "B");
    ``pos`` is the byte the next read starts at and advances past what each read consumes.
    Every read checks the remaining length and raises :class:`PmtError` when the buffer is
    truncated.
    """

    def __init__(self, buf, pos: int = 0):
        self.buf = buf
        self.pos = pos

    def take(self, n: int) -> memoryview:
        """The next ``n`` bytes (a view of ``buf``); :class:`PmtError` if fewer are left."""
        if n < 0 or self.pos + n > len(self.buf):
            raise PmtError(f"truncated: needed {n} bytes at byte {self.pos}, "
                           f"{len(self.buf) - self.pos} left")
        view = self.buf[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: struct.Struct) -> tuple:
        """The next ``fmt.size`` bytes unpacked with ``fmt``."""
        return fmt.unpack(self.take(fmt.size))

    def read(self, depth: int = 0) -> Any:
        """The next serialised PMT as a Python value (the mapping of :func:`pmt_deserialize`).

        ``depth`` is the nesting level of the caller; deeper than 64 raises :class:`PmtError`.
        """
        if depth > _MAX_PMT_DEPTH:
            raise PmtError(f"PMT nesting deeper than {_MAX_PMT_DEPTH}")
        (tag,) = self.take(1)
        if tag == _PST_TRUE:
            return True
        if tag == _PST_FALSE:
            return False
        if tag == _PST_NULL:
            return None
        if tag == _PST_SYMBOL:
            (n,) = self.unpack(_U16)
            return bytes(self.take(n)).decode("utf-8", errors="replace")
        if tag == _PST_INT32:
            return self.unpack(_I32)[0]
        if tag == _PST_INT64:
            return self.unpack(_I64)[0]
        if tag == _PST_UINT64:
            return np.uint64(self.unpack(_U64)[0])
        if tag == _PST_DOUBLE:
            return self.unpack(_F64)[0]
        if tag == _PST_COMPLEX:
            re, im = self.unpack(_C128)
            return complex(re, im)
        if tag in (_PST_TUPLE, _PST_VECTOR):
            (n,) = self.unpack(_U32)
            if n > len(self.buf) - self.pos:     # every item takes at least one byte
                raise PmtError(f"truncated: {n} items announced, {len(self.buf) - self.pos} bytes left")
            items = [self.read(depth + 1) for _ in range(n)]
            return tuple(items) if tag == _PST_TUPLE else items
        if tag == _PST_PAIR:
            # a chain of pairs is read iteratively (long lists), as pmt's parse_pair does
            cars = [self.read(depth + 1)]
            while self.pos < len(self.buf) and self.buf[self.pos] == _PST_PAIR:
                self.pos += 1
                cars.append(self.read(depth + 1))
            value = self.read(depth + 1)
            for car in reversed(cars):
                value = PmtPair(car, value)
            return value
        if tag == _PST_DICT:
            result = {}
            while True:
                item = self.read(depth + 1)
                if not isinstance(item, PmtPair):
                    raise PmtError("dict entry is not a (key . value) pair")
                key = item.car
                try:
                    hash(key)
                except TypeError:
                    key = repr(key)
                result[key] = item.cdr
                (nxt,) = self.take(1)
                if nxt == _PST_NULL:
                    return result
                if nxt != _PST_DICT:
                    raise PmtError(f"dict chain continues with type byte {nxt}")
        if tag == _PST_UNIFORM_VECTOR:
            uvi, n, npad = self.unpack(_UV_HEADER)
            dtype = _UVI_DTYPES.get(uvi & 0x7F)
            if dtype is None:
                raise PmtError(f"unknown uniform-vector type {uvi}")
            self.take(npad)
            raw = self.take(n * np.dtype(dtype).itemsize)
            return np.frombuffer(raw, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))
        raise PmtError(f"unknown PMT type byte {tag}")


def pmt_deserialize(data: bytes) -> Any:
    """bytes of one serialised PMT -> Python value (inverse of :func:`pmt_serialize`).

    Uniform vectors come back as native-endian ndarrays, pairs as :class:`PmtPair`, dicts as
    dict, symbols as str, uint64 as ``np.uint64`` (so that it serialises back as uint64).
    Raises :class:`PmtError` on malformed or trailing input.
    """
    reader = PmtReader(memoryview(data))
    value = reader.read()
    if reader.pos != len(reader.buf):
        raise PmtError(f"{len(reader.buf) - reader.pos} trailing bytes after the PMT")
    return value
