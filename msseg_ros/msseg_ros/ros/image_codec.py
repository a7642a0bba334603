"""sensor_msgs/Image <-> numpy, for the encodings cv_bridge knows (no cv_bridge needed).

Arrays are ``(H, W)`` for one channel and ``(H, W, C)`` otherwise, in the encoding's
native dtype. Decoding honours ``step`` (row padding) and ``is_bigendian`` and returns a
view of the message buffer whenever numpy allows (no padding, native byte order); pass
``copy=True`` for an array that owns its memory.

Supported: mono8, mono16, rgb8, bgr8, rgba8, bgra8, rgb16, bgr16, rgba16, bgra16, and the
generic ``{8U,8S,16U,16S,32S,32F,64F}C{n}`` with 1 <= n <= 512 (``8UC3`` etc.).
The sorting line's 11-channel frames are ``32FC11``.
"""
from __future__ import annotations

import array
import re
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from msseg_ros.core.errors import MssegError


class ImageCodecError(MssegError, ValueError):
    """An Image message and an array or encoding do not agree; the message names the values."""


class UnsupportedEncodingError(ImageCodecError):
    """The encoding string is not one this codec knows."""


MAX_CHANNELS = 512

_NAMED: dict[str, tuple[str, int]] = {
    "mono8": ("u1", 1),
    "mono16": ("u2", 1),
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "rgb16": ("u2", 3),
    "bgr16": ("u2", 3),
    "rgba16": ("u2", 4),
    "bgra16": ("u2", 4),
}
_DEPTHS = {"8U": "u1", "8S": "i1", "16U": "u2", "16S": "i2", "32S": "i4", "32F": "f4", "64F": "f8"}
_GENERIC = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)C(\d+)$")
_DTYPE_TO_DEPTH = {v: k for k, v in _DEPTHS.items()}


@dataclass(frozen=True)
class EncodingInfo:
    """What an encoding means: element dtype (native order) and channel count."""

    encoding: str
    dtype: np.dtype
    channels: int


def parse_encoding(encoding: str) -> EncodingInfo:
    """Parse an encoding string.

    Raises:
        UnsupportedEncodingError: for unknown strings or channel counts outside 1..512.
    """
    if encoding in _NAMED:
        code, channels = _NAMED[encoding]
    else:
        m = _GENERIC.match(encoding)
        if not m:
            raise UnsupportedEncodingError(
                f"unsupported image encoding {encoding!r}; expected one of "
                f"{', '.join(_NAMED)} or {{8U,8S,16U,16S,32S,32F,64F}}C{{n}}"
            )
        code, channels = _DEPTHS[m.group(1)], int(m.group(2))
        if not 1 <= channels <= MAX_CHANNELS:
            raise UnsupportedEncodingError(
                f"encoding {encoding!r} has {channels} channels; supported 1..{MAX_CHANNELS}"
            )
    return EncodingInfo(encoding, np.dtype(code), channels)


def generic_encoding(dtype: np.dtype | type, channels: int) -> str:
    """The generic encoding for a dtype and channel count, e.g. (float32, 11) -> '32FC11'."""
    dt = np.dtype(dtype)
    code = dt.kind + str(dt.itemsize)
    if code not in _DTYPE_TO_DEPTH:
        raise UnsupportedEncodingError(f"no image encoding for dtype {dt}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise UnsupportedEncodingError(f"{channels} channels; supported 1..{MAX_CHANNELS}")
    return f"{_DTYPE_TO_DEPTH[code]}C{channels}"


def image_to_array(msg, *, copy: bool = False) -> np.ndarray:
    """Decode a sensor_msgs/Image (or anything with its fields) to an array.

    Returns:
        ``(H, W)`` for one channel, ``(H, W, C)`` otherwise, native byte order.

    Raises:
        UnsupportedEncodingError: unknown encoding.
        ImageCodecError: ``step`` shorter than a row or not a multiple of the element
            size, or ``data`` shorter than ``height * step``.
    """
    info = parse_encoding(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = info.dtype.itemsize
    row_bytes = width * info.channels * itemsize
    if step < row_bytes:
        raise ImageCodecError(
            f"step {step} is shorter than one row of {width} px x {info.channels} ch x "
            f"{itemsize} B = {row_bytes} B (encoding {msg.encoding})"
        )
    if step % itemsize:
        raise ImageCodecError(
            f"step {step} is not a multiple of the element size {itemsize} B "
            f"(encoding {msg.encoding})"
        )
    buf = _as_buffer(msg.data)
    need = height * step
    if len(buf) < need:
        raise ImageCodecError(
            f"data has {len(buf)} B but height {height} x step {step} needs {need} B "
            f"(encoding {msg.encoding})"
        )
    dtype = info.dtype.newbyteorder(">" if msg.is_bigendian else "<")
    flat = np.frombuffer(buf, dtype=np.uint8, count=need)
    rows = flat.reshape(height, step)[:, :row_bytes]
    arr = rows.view(dtype) if height and width else np.empty((height, 0), dtype)
    arr = arr.reshape(height, width, info.channels)
    if info.channels == 1:
        arr = arr[:, :, 0]
    if dtype.byteorder not in ("=", "|") and dtype.byteorder != _NATIVE:
        arr = arr.astype(info.dtype)  # byte swap: necessarily a copy
    elif copy:
        arr = arr.copy()
    return arr


_NATIVE = "<" if sys.byteorder == "little" else ">"


def _as_buffer(data: Any) -> memoryview | bytes | bytearray:
    """The message's data as a bytes-like object, without copying when possible."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    if isinstance(data, np.ndarray):
        return data.view(np.uint8).reshape(-1).data
    # rclpy's uint8[] fields are array.array('B') — they support the buffer protocol
    try:
        return memoryview(data).cast("B")
    except TypeError:
        return bytes(data)


def array_to_image(
    image: np.ndarray,
    encoding: str | None = None,
    *,
    header=None,
    msg=None,
):
    """Encode an array into a sensor_msgs/Image.

    Args:
        image: ``(H, W)`` or ``(H, W, C)``; its dtype must match the encoding's.
        encoding: target encoding; by default the generic one for the dtype and channels
            (``mono8``/``mono16`` are not guessed: name them).
        header: a std_msgs/Header to copy in.
        msg: an existing Image to fill (else a new one is created).

    Raises:
        ImageCodecError: the array's dtype or channel count does not match ``encoding``.
    """
    if msg is None:
        from sensor_msgs.msg import Image  # imported here so the decoder works on duck types

        msg = Image()
    arr = np.asarray(image)
    if arr.ndim == 2:
        channels = 1
    elif arr.ndim == 3:
        channels = arr.shape[2]
    else:
        raise ImageCodecError(f"array must be (H, W) or (H, W, C); got shape {arr.shape}")
    if encoding is None:
        encoding = generic_encoding(arr.dtype, channels)
    info = parse_encoding(encoding)
    if info.channels != channels:
        raise ImageCodecError(
            f"encoding {encoding!r} has {info.channels} channel(s) but the array has "
            f"{channels} (shape {arr.shape})"
        )
    if arr.dtype.newbyteorder("=") != info.dtype:
        raise ImageCodecError(
            f"encoding {encoding!r} needs dtype {info.dtype} but the array is {arr.dtype}"
        )
    arr = np.ascontiguousarray(arr, dtype=info.dtype)  # native order, no copy if already so
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = sys.byteorder == "big"
    msg.step = int(arr.shape[1] * channels * info.dtype.itemsize)
    # rclpy accepts array('B') without a per-element check; one copy of the pixels
    data = array.array("B")
    data.frombytes(arr.reshape(-1).data.cast("B") if arr.size else b"")
    msg.data = data
    return msg
