"""sensor_msgs/Image <-> numpy: round trips, padding, byte order, errors, zero copy."""
import sys

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from msseg_ros.ros.image_codec import (
    ImageCodecError,
    UnsupportedEncodingError,
    array_to_image,
    generic_encoding,
    image_to_array,
    parse_encoding,
)

rng = np.random.default_rng(0)

CASES = [
    ("mono8", np.uint8, 1), ("mono16", np.uint16, 1), ("rgb8", np.uint8, 3),
    ("bgr8", np.uint8, 3), ("rgba8", np.uint8, 4), ("bgra8", np.uint8, 4),
    ("rgb16", np.uint16, 3), ("8UC1", np.uint8, 1), ("8UC3", np.uint8, 3),
    ("8SC2", np.int8, 2), ("16UC1", np.uint16, 1), ("16SC4", np.int16, 4),
    ("32SC1", np.int32, 1), ("32FC1", np.float32, 1), ("32FC11", np.float32, 11),
    ("64FC3", np.float64, 3), ("8UC512", np.uint8, 512),
]


def _random(dtype, shape):
    if np.issubdtype(dtype, np.floating):
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


@pytest.mark.parametrize("encoding, dtype, channels", CASES, ids=[c[0] for c in CASES])
def test_round_trip_through_cdr(encoding, dtype, channels):
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    arr = _random(dtype, shape)
    msg = array_to_image(arr, encoding)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * np.dtype(dtype).itemsize
    wire = deserialize_message(serialize_message(msg), Image)
    out = image_to_array(wire)
    assert out.dtype == np.dtype(dtype) and out.shape == shape
    np.testing.assert_array_equal(out, arr)


def test_eleven_channel_frame_default_encoding():
    frame = _random(np.float32, (40, 64, 11))
    msg = array_to_image(frame)
    assert msg.encoding == "32FC11" and generic_encoding(np.float32, 11) == "32FC11"
    np.testing.assert_array_equal(image_to_array(msg), frame)


def _padded(arr, encoding, pad, bigendian=False):
    """A message with ``pad`` extra bytes per row, built by hand."""
    info = parse_encoding(encoding)
    a = arr.astype(info.dtype.newbyteorder(">" if bigendian else "<"))
    rows = a.reshape(a.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return Image(height=arr.shape[0], width=arr.shape[1], encoding=encoding,
                 is_bigendian=bigendian, step=padded.shape[1], data=padded.tobytes())


def test_padded_step_is_honoured():
    arr = _random(np.float32, (6, 5, 11))
    msg = _padded(arr, "32FC11", pad=12)
    assert msg.step == 5 * 11 * 4 + 12
    np.testing.assert_array_equal(image_to_array(msg), arr)


def test_big_endian_is_swapped():
    arr = _random(np.uint16, (4, 3))
    out = image_to_array(_padded(arr, "mono16", pad=2, bigendian=True))
    assert out.dtype.byteorder in ("=", "<" if sys.byteorder == "little" else ">")
    np.testing.assert_array_equal(out, arr)
    f = _random(np.float32, (3, 4, 2))
    np.testing.assert_array_equal(image_to_array(_padded(f, "32FC2", 0, bigendian=True)), f)


def test_decode_is_zero_copy_when_possible():
    msg = array_to_image(_random(np.float32, (8, 9, 11)))
    out = image_to_array(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))  # a view of the message
    owned = image_to_array(msg, copy=True)
    assert not np.shares_memory(owned, np.frombuffer(msg.data, np.uint8))
    padded = _padded(_random(np.float32, (6, 5, 11)), "32FC11", pad=12)
    assert np.shares_memory(image_to_array(padded), np.frombuffer(padded.data, np.uint8))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"encoding": "yuv422"}, "unsupported image encoding 'yuv422'"),
        ({"encoding": "32FC600"}, "encoding '32FC600' has 600 channels; supported 1..512"),
        ({"step": 10}, "step 10 is shorter than one row of 4 px x 3 ch x 1 B = 12 B"),
        ({"step": 13, "encoding": "16UC1", "width": 2}, "step 13 is not a multiple of the element size 2 B"),
        ({"data": b"\0" * 20}, "data has 20 B but height 3 x step 12 needs 36 B"),
    ],
)
def test_mismatches_name_the_values(fields, message):
    base = {"height": 3, "width": 4, "encoding": "rgb8", "step": 12, "data": b"\0" * 36}
    base.update(fields)
    with pytest.raises(ImageCodecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        image_to_array(Image(**base))


def test_encode_mismatches():
    with pytest.raises(ImageCodecError, match="encoding 'rgb8' has 3 channel\\(s\\) but the array has 11"):
        array_to_image(np.zeros((2, 2, 11), np.uint8), "rgb8")
    with pytest.raises(ImageCodecError, match="encoding 'mono16' needs dtype uint16 but the array is float32"):
        array_to_image(np.zeros((2, 2), np.float32), "mono16")
    with pytest.raises(ImageCodecError, match="got shape \\(2,\\)"):
        array_to_image(np.zeros(2, np.uint8), "mono8")
    with pytest.raises(UnsupportedEncodingError, match="no image encoding for dtype uint64"):
        array_to_image(np.zeros((2, 2), np.uint64))


def test_matches_cv_bridge_where_available():
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge is not installable from PyPI")
    bridge = cv_bridge.CvBridge()
    for encoding, dtype, channels in CASES[:-1]:
        shape = (5, 7) if channels == 1 else (5, 7, channels)
        if channels > 4:
            continue  # OpenCV mats hold at most CV_CN_MAX=512 but cv_bridge limits to 4
        arr = _random(dtype, shape)
        ours = array_to_image(arr, encoding)
        theirs = bridge.cv2_to_imgmsg(arr, encoding)
        assert bytes(ours.data) == bytes(theirs.data) and ours.step == theirs.step
        np.testing.assert_array_equal(image_to_array(theirs), bridge.imgmsg_to_cv2(ours))
