"""Property-based tests (hypothesis): hostile bytes and values given to the decoders and
parsers either decode or raise the package's own, specific error; nothing else escapes.
No timing is asserted (deadline off)."""
import socket
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msseg_ros.core.errors import ConfigError, MssegError
from msseg_ros.core.learning.options import TrainOptions
from msseg_ros.core.robots import modbus_map as mm
from msseg_ros.core.robots.errors import ConnectionLost, ControllerError
from msseg_ros.core.robots.rmi import LineReader

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

ENCODINGS = st.sampled_from(["mono8", "mono16", "rgb8", "bgr8", "rgba8", "32FC1", "32FC11", "16UC3", "8SC2",
                             "64FC1", "bayer_rggb8", "", "32FC0", "32FC999", "nonsense"])


@SETTINGS
@given(encoding=ENCODINGS, height=st.integers(0, 9), width=st.integers(0, 9), step=st.integers(0, 200),
       data=st.binary(max_size=600), bigendian=st.booleans())
def test_image_decoder_decodes_or_names_the_problem(encoding, height, width, step, data, bigendian):
    from msseg_ros.ros.image_codec import ImageCodecError, image_to_array

    msg = SimpleNamespace(encoding=encoding, height=height, width=width, step=step, data=data,
                          is_bigendian=int(bigendian))
    try:
        arr = image_to_array(msg)
    except ImageCodecError:
        return
    assert arr.shape[:2] == (height, width)


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)


@SETTINGS
@given(ids=st.lists(st.integers(0, 0xFFFF), max_size=6), geometry=st.lists(FLOATS, min_size=6, max_size=6),
       size=st.tuples(st.integers(0, 4000), st.integers(0, 4000)), status=st.integers(0, 255),
       position=st.lists(FLOATS, min_size=3, max_size=3))
def test_result_messages_decode_or_name_the_fault(ids, geometry, size, status, position):
    from msseg_interfaces.msg import (
        Instance,
        InstanceArray,
        PickCandidate,
        PickCandidateArray,
        PickResult,
        PickResultArray,
    )
    from msseg_ros.ros.result_messages import (
        ResultMessageError,
        msg_to_candidates,
        msg_to_detections,
        msg_to_results,
    )

    u, v, x0, y0, x1, y1 = geometry
    det = InstanceArray(height=size[0], width=size[1],
                        instances=[Instance(id=i, u=u, v=v, x0=x0, y0=y0, x1=x1, y1=y1) for i in ids])
    cand = PickCandidateArray(candidates=[PickCandidate()])
    cand.candidates[0].pose.position.x, cand.candidates[0].pose.position.y, cand.candidates[0].pose.position.z = position
    res = PickResultArray(results=[PickResult(status=status)])
    for decode, msg, n in ((msg_to_detections, det, len(ids)), (msg_to_candidates, cand, 1), (msg_to_results, res, 1)):
        try:
            out = decode(msg)
        except ResultMessageError:
            continue
        assert len(out) == n
        floats = [f for f in ("u", "v", "x0", "y0", "x1", "y1", "x", "y", "z") if f in out.dtype.names]
        assert all(np.isfinite(out[f]).all() for f in floats)  # nothing impossible gets through


@SETTINGS
@given(st.lists(st.integers(0, 0xFFFF), max_size=80))
def test_modbus_status_block_decodes_or_is_refused(regs):
    try:
        s = mm.Status.decode(regs)
    except ValueError as exc:
        assert "status block needs" in str(exc)
        return
    assert len(regs) >= mm.STATUS_COUNT and all(pid for pid, _ in s.results) and all(s.queue)


@SETTINGS
@given(st.lists(st.binary(max_size=60), max_size=4))
def test_rmi_reader_gives_packets_or_a_controller_error(chunks):
    a, b = socket.socketpair()
    try:
        payload = b"\r\n".join(chunks) + b"\r\n"
        a.sendall(payload)
        a.close()
        reader = LineReader(b)
        for _ in range(len(chunks) + 2):
            try:
                packet = reader.read(0.5)
            except ControllerError:
                continue  # this line was not a JSON object: named, the next one is read
            except ConnectionLost:
                return  # the stream ended
            assert packet is None or isinstance(packet, dict)
    finally:
        b.close()


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True)
                       | st.text(max_size=8), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c,
                                                                                                     max_size=3),
                       max_leaves=6)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["epochs", "batch_size", "lr", "seed", "device", "lr_schedule", "crop",
                                        "augment", "max_minutes", "save_dtype", "bogus"]), JSONISH, max_size=5))
def test_training_options_validate_or_name_the_option(values):
    try:
        opts = TrainOptions.from_mapping(values)
    except ConfigError as exc:
        assert "train." in str(exc) or "option" in str(exc)
        return
    assert opts.epochs >= 1 and opts.batch_size >= 1 and opts.lr_schedule in ("constant", "cosine")


@SETTINGS
@given(st.one_of(st.text(max_size=200), JSONISH.map(lambda v: __import__("yaml").safe_dump(v))))
def test_camera_info_yaml_reads_or_is_refused(tmp_path_factory, text):
    from msseg_ros.core.geometry.camera import CameraModel

    path = tmp_path_factory.mktemp("cam") / "camera.yaml"
    path.write_text(text)
    try:
        cam = CameraModel.from_yaml(path)
    except MssegError:
        return
    assert cam.K.shape == (3, 3)


@SETTINGS
@given(st.one_of(st.text(max_size=300), JSONISH.map(lambda v: __import__("yaml").safe_dump(
    {"rosbag2_bagfile_information": v}))))
def test_bag_metadata_opens_or_is_refused(tmp_path_factory, text):
    from msseg_ros.core.replay import BagError, BagPlayback

    folder = tmp_path_factory.mktemp("bag")
    (folder / "metadata.yaml").write_text(text)
    with pytest.raises(BagError):  # nothing here is a readable bag: refused, by name
        BagPlayback(folder)


def test_the_properties_can_fail():
    """A decoder that let another exception escape would fail the checks above."""
    from msseg_ros.ros.image_codec import ImageCodecError

    assert not issubclass(ValueError, ImageCodecError) and np.dtype("u1").itemsize == 1
