"""The contract's result tables (``core.tables``) <-> their msseg_interfaces messages.

Core works on numpy structured arrays; the topics carry typed messages:

* segmentation/detections: ``DETECTIONS`` <-> ``msseg_interfaces/InstanceArray``;
* grasps/candidates: ``CANDIDATES`` <-> ``msseg_interfaces/PickCandidateArray``;
* robot/pick_results: ``PICK_RESULTS`` <-> ``msseg_interfaces/PickResultArray``.

Decoding checks what the message types cannot: finite pick positions, instance ids >= 1,
a frame size; a message that fails raises :class:`ResultMessageError` naming the item
and field, and the node counts and drops it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, Pose

from msseg_interfaces.msg import (
    Instance,
    InstanceArray,
    PickCandidate,
    PickCandidateArray,
    PickResult,
    PickResultArray,
)
from msseg_ros.core import tables
from msseg_ros.core.errors import MssegError

#: the message type of each result topic
TOPIC_TYPES = {"segmentation/detections": InstanceArray, "grasps/candidates": PickCandidateArray,
               "robot/pick_results": PickResultArray}


class ResultMessageError(MssegError, ValueError):
    """A result message holds values no table row can have; the message names them."""


def _class_name(names: Sequence[str], class_id: int) -> str:
    return names[class_id - 1] if 1 <= class_id <= len(names) else ""


# ---- segmentation/detections ----------------------------------------------------------
def detections_to_msg(det: np.ndarray, header: Any, class_names: Sequence[str] = (),
                      size: tuple[int, int] | None = None) -> InstanceArray:
    """A ``DETECTIONS`` table as an InstanceArray. ``size`` (height, width) px of the
    frame; taken from the rows when None (an empty table then gives 0 x 0)."""
    if size is None:
        size = (int(det["frame_height"][0]), int(det["frame_width"][0])) if len(det) else (0, 0)
    msg = InstanceArray(header=header, height=int(size[0]), width=int(size[1]))
    for row in det:
        cid = int(row["class_id"])
        msg.instances.append(Instance(
            id=int(row["instance"]), class_id=cid, class_name=_class_name(class_names, cid),
            score=float(row["score"]), x0=float(row["x0"]), y0=float(row["y0"]), x1=float(row["x1"]),
            y1=float(row["y1"]), u=float(row["u"]), v=float(row["v"]), area=int(row["area"]),
            affordance=float(row["affordance"]), touches_last_row=bool(row["touches_last_row"])))
    return msg


def msg_to_detections(msg: InstanceArray) -> np.ndarray:
    """An InstanceArray as a ``DETECTIONS`` table.

    Raises:
        ResultMessageError: an instance id 0, a non-finite pick pixel or box, or instances
            in a frame of size 0.
    """
    out = tables.empty(tables.DETECTIONS, len(msg.instances))
    if len(msg.instances) and (msg.width == 0 or msg.height == 0):
        raise ResultMessageError(f"{len(msg.instances)} instances in a frame of {msg.width} x {msg.height} px")
    for k, inst in enumerate(msg.instances):
        if inst.id == 0:
            raise ResultMessageError(f"instance {k}: id 0 (ids start at 1; 0 is background)")
        geometry = (inst.u, inst.v, inst.x0, inst.y0, inst.x1, inst.y1)
        if not all(math.isfinite(g) for g in geometry):
            raise ResultMessageError(f"instance {k} (id {inst.id}): pick pixel or box is not finite: {geometry}")
        out[k] = (inst.id, inst.class_id, inst.score, inst.u, inst.v, inst.x0, inst.y0, inst.x1, inst.y1,
                  inst.area, inst.affordance, msg.width, msg.height, int(inst.touches_last_row))
    return out


# ---- grasps/candidates ----------------------------------------------------------------
def _tool_down_pose(x: float, y: float, z: float) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = x, y, z
    pose.orientation.x, pose.orientation.w = 1.0, 0.0  # tool z down: 180 deg about x
    return pose


def candidates_to_msg(cand: np.ndarray, header: Any) -> PickCandidateArray:
    """A ``CANDIDATES`` table as a PickCandidateArray (poses tool z down)."""
    msg = PickCandidateArray(header=header)
    for row in cand:
        msg.candidates.append(PickCandidate(
            pose=_tool_down_pose(float(row["x"]), float(row["y"]), float(row["z"])),
            pick_id=int(row["pick_id"]), class_id=int(row["class_id"]), score=float(row["score"]),
            affordance=float(row["affordance"]), instance=int(row["instance"]),
            belt_position=float(row["belt_position"])))
    return msg


def msg_to_candidates(msg: PickCandidateArray) -> np.ndarray:
    """A PickCandidateArray as a ``CANDIDATES`` table.

    Raises:
        ResultMessageError: a pick position that is not finite.
    """
    out = tables.empty(tables.CANDIDATES, len(msg.candidates))
    for k, c in enumerate(msg.candidates):
        p = c.pose.position
        if not all(math.isfinite(v) for v in (p.x, p.y, p.z)):
            raise ResultMessageError(f"candidate {k} (pick_id {c.pick_id}): position is not finite: "
                                     f"({p.x}, {p.y}, {p.z})")
        out[k] = (p.x, p.y, p.z, c.pick_id, c.class_id, c.score, c.affordance, c.instance, c.belt_position)
    return out


# ---- robot/pick_results ---------------------------------------------------------------
def results_to_msg(res: np.ndarray, header: Any) -> PickResultArray:
    """A ``PICK_RESULTS`` table as a PickResultArray."""
    msg = PickResultArray(header=header)
    for row in res:
        msg.results.append(PickResult(
            position=Point(x=float(row["x"]), y=float(row["y"]), z=float(row["z"])),
            pick_id=int(row["pick_id"]), robot=int(row["robot"]), class_id=int(row["class_id"]),
            bin=int(row["bin"]), status=int(row["status"])))
    return msg


def msg_to_results(msg: PickResultArray) -> np.ndarray:
    """A PickResultArray as a ``PICK_RESULTS`` table.

    Raises:
        ResultMessageError: a status that is none of PickResult's constants.
    """
    out = tables.empty(tables.PICK_RESULTS, len(msg.results))
    for k, r in enumerate(msg.results):
        if r.status > PickResult.SKIPPED:
            raise ResultMessageError(f"result {k} (pick_id {r.pick_id}): unknown status {r.status}")
        p = r.position
        out[k] = (p.x, p.y, p.z, r.pick_id, r.robot, r.class_id, r.bin, r.status)
    return out
