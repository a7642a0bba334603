"""The result tables <-> msseg_interfaces messages, through CDR as on the wire."""
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

from msseg_interfaces.msg import InstanceArray, PickCandidateArray, PickResult, PickResultArray
from msseg_ros.core import tables
from msseg_ros.core.tables import PickStatus
from msseg_ros.ros.result_messages import (
    TOPIC_TYPES,
    ResultMessageError,
    candidates_to_msg,
    detections_to_msg,
    msg_to_candidates,
    msg_to_detections,
    msg_to_results,
    results_to_msg,
)

CODECS = {
    "detections": (detections_to_msg, msg_to_detections, InstanceArray),
    "candidates": (candidates_to_msg, msg_to_candidates, PickCandidateArray),
    "pick_results": (results_to_msg, msg_to_results, PickResultArray),
}


def _table(name, n=4):
    dtype = tables.TABLES[name]
    t = tables.empty(dtype, n)
    for i, field in enumerate(dtype.names):
        t[field] = np.arange(n) + i + 1
    if "affordance" in dtype.names:
        t["affordance"][1:2] = np.nan
    if name == "detections":
        t["frame_width"], t["frame_height"], t["touches_last_row"] = 320, 240, np.arange(n) % 2
    if name == "pick_results":
        t["status"] = [0, 1, 2, 4][:n]
    return t


@pytest.mark.parametrize("name", sorted(CODECS))
def test_tables_round_trip_through_cdr(name):
    encode, decode, kind = CODECS[name]
    t = _table(name)
    header = Header(frame_id="world")
    header.stamp.sec = 12
    msg = encode(t, header)
    back = deserialize_message(serialize_message(msg), kind)
    assert back.header.frame_id == "world" and back.header.stamp.sec == 12
    out = decode(back)
    assert out.dtype == t.dtype and len(out) == 4
    for field in t.dtype.names:
        np.testing.assert_array_equal(out[field], t[field], err_msg=field)  # NaN affordance kept
    empty = decode(deserialize_message(serialize_message(encode(tables.empty(t.dtype), header)), kind))
    assert len(empty) == 0 and empty.dtype == t.dtype


def test_detections_carry_class_names_and_the_frame_size():
    t = _table("detections", 2)
    t["class_id"] = [1, 3]
    msg = detections_to_msg(t, Header(), ["copper", "brass"], size=(240, 320))
    assert (msg.height, msg.width) == (240, 320)
    assert [i.class_name for i in msg.instances] == ["copper", ""]  # 3: no such class
    assert [i.id for i in msg.instances] == [1, 2] and msg.instances[1].touches_last_row


def test_candidates_are_poses_tool_down():
    msg = candidates_to_msg(_table("candidates", 1), Header(frame_id="world"))
    q = msg.candidates[0].pose.orientation
    assert (q.x, q.y, q.z, q.w) == (1.0, 0.0, 0.0, 0.0)


def test_status_constants_are_the_tables():
    assert (PickResult.DONE, PickResult.MISSED, PickResult.FAILED, PickResult.REJECTED, PickResult.SKIPPED) == (
        PickStatus.DONE, PickStatus.MISSED, PickStatus.FAILED, PickStatus.REJECTED, PickStatus.SKIPPED)
    assert {"segmentation/detections", "grasps/candidates", "robot/pick_results"} == set(TOPIC_TYPES)


def test_impossible_values_are_refused_by_name():
    det = detections_to_msg(_table("detections", 2), Header())
    det.instances[1].id = 0
    with pytest.raises(ResultMessageError, match="instance 1: id 0"):
        msg_to_detections(det)
    det = detections_to_msg(_table("detections", 1), Header())
    det.instances[0].u = float("nan")
    with pytest.raises(ResultMessageError, match=r"instance 0 \(id 1\): pick pixel or box is not finite"):
        msg_to_detections(det)
    with pytest.raises(ResultMessageError, match="1 instances in a frame of 0 x 0 px"):
        msg_to_detections(detections_to_msg(_table("detections", 1), Header(), size=(0, 0)))
    cand = candidates_to_msg(_table("candidates", 1), Header())
    cand.candidates[0].pose.position.z = float("inf")
    with pytest.raises(ResultMessageError, match=r"candidate 0 \(pick_id 4\): position is not finite"):
        msg_to_candidates(cand)
    res = results_to_msg(_table("pick_results", 1), Header())
    res.results[0].status = 9
    with pytest.raises(ResultMessageError, match="unknown status 9"):
        msg_to_results(res)
