"""numpy structured arrays <-> sensor_msgs/PointCloud2, used as typed tables.

A table of N rows is a cloud of ``height=1, width=N`` points whose fields are the
dtype's fields, packed (``point_step`` = dtype itemsize), little-endian on this host.
Decoding accepts any field order and padding, and checks the fields against an
expected dtype when one is given.
"""
from __future__ import annotations

import array
import sys
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from msseg_ros.core.errors import MssegError


class TableCodecError(MssegError, ValueError):
    """A PointCloud2 does not hold the expected table; the message names the field."""


# sensor_msgs/PointField datatype constants
_DATATYPE_TO_DTYPE: dict[int, np.dtype[Any]] = {
    1: np.dtype("i1"),
    2: np.dtype("u1"),
    3: np.dtype("i2"),
    4: np.dtype("u2"),
    5: np.dtype("i4"),
    6: np.dtype("u4"),
    7: np.dtype("f4"),
    8: np.dtype("f8"),
}
_DTYPE_TO_DATATYPE = {(dt.kind, dt.itemsize): code for code, dt in _DATATYPE_TO_DTYPE.items()}


def _names(dtype: np.dtype[Any]) -> tuple[str, ...]:
    return dtype.names or ()


def table_to_cloud(table: np.ndarray, *, header=None, msg=None):
    """Encode a 1-D structured array as a PointCloud2.

    Raises:
        TableCodecError: not a 1-D structured array, or a field type PointField lacks.
    """
    from sensor_msgs.msg import PointCloud2, PointField

    if table.dtype.names is None or table.ndim != 1:
        raise TableCodecError(
            f"expected a 1-D structured array, got dtype {table.dtype} shape {table.shape}"
        )
    packed = np.dtype([(n, table.dtype[n].newbyteorder("=")) for n in table.dtype.names])
    packed_fields: Mapping[str, Any] = packed.fields or {}
    fields = []
    for name in _names(packed):
        ft = packed[name]
        if ft.subdtype is not None:
            raise TableCodecError(f"field {name!r}: sub-arrays are not supported ({ft})")
        code = _DTYPE_TO_DATATYPE.get((ft.kind, ft.itemsize))
        if code is None:
            raise TableCodecError(f"field {name!r}: dtype {ft} has no PointField type")
        fields.append(PointField(name=name, offset=packed_fields[name][1], datatype=code, count=1))
    rows = np.ascontiguousarray(table.astype(packed, copy=False))
    msg = msg if msg is not None else PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = 1, int(rows.shape[0])
    msg.fields = fields
    msg.is_bigendian = sys.byteorder == "big"
    msg.point_step = packed.itemsize
    msg.row_step = packed.itemsize * msg.width
    data = array.array("B")
    data.frombytes(rows.tobytes())
    msg.data = data
    floats = [n for n in _names(packed) if packed[n].kind == "f"]
    msg.is_dense = bool(all(np.isfinite(rows[n]).all() for n in floats))
    return msg


def cloud_to_table(msg, expected: np.dtype | None = None) -> np.ndarray:
    """Decode a PointCloud2 into a structured array (a copy, in ``expected``'s layout).

    Args:
        msg: the cloud; ``height * width`` rows.
        expected: the table dtype to check against and convert to. Every expected field
            must be present with the same type; extra fields are ignored.

    Raises:
        TableCodecError: a missing field, a type mismatch, or a truncated buffer.
    """
    names, formats, offsets = [], [], []
    order: Literal["<", ">"] = ">" if msg.is_bigendian else "<"
    for f in msg.fields:
        dt = _DATATYPE_TO_DTYPE.get(int(f.datatype))
        if dt is None:
            raise TableCodecError(f"field {f.name!r}: unknown PointField datatype {f.datatype}")
        if int(f.count) != 1:
            raise TableCodecError(f"field {f.name!r}: count {f.count} (only 1 is supported)")
        names.append(f.name)
        formats.append(dt.newbyteorder(order))
        offsets.append(int(f.offset))
    point_step = int(msg.point_step)
    try:  # duplicate names, fields past point_step, overlapping fields
        wire = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    except (ValueError, TypeError) as exc:
        raise TableCodecError(f"fields {names} do not fit a point of {point_step} B: {exc}") from None
    n = int(msg.height) * int(msg.width)
    rows_per_line = int(msg.width)
    need = int(msg.row_step) * (int(msg.height) - 1) + rows_per_line * point_step if n else 0
    buf = memoryview(msg.data).cast("B") if not isinstance(msg.data, bytes) else msg.data
    if len(buf) < need:
        raise TableCodecError(f"data has {len(buf)} B but {n} points need {need} B")
    if n and int(msg.row_step) != rows_per_line * point_step:
        lines = [
            np.frombuffer(buf, wire, count=rows_per_line, offset=i * int(msg.row_step))
            for i in range(int(msg.height))
        ]
        raw = np.concatenate(lines)
    else:
        raw = np.frombuffer(buf, wire, count=n)
    if expected is None:
        native = np.dtype([(nm, wire[nm].newbyteorder("=")) for nm in names])
        return raw.astype(native)
    for name in _names(expected):
        if name not in _names(wire):
            raise TableCodecError(
                f"field {name!r} missing; cloud has {', '.join(names) or 'no fields'}"
            )
        got, want = wire[name].newbyteorder("="), expected[name].newbyteorder("=")
        if got != want:
            raise TableCodecError(f"field {name!r} is {got} but {want} is expected")
    out = np.empty(n, dtype=expected)
    for name in _names(expected):
        out[name] = raw[name]
    return out
