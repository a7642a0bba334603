"""line_scanner: encoder-triggered lines assembled into multi-channel frames.

Subscribes conveyor/joint_states (the belt's travel). Every ``line_pitch`` metres a line
is due; due lines are read from the line source as a block at ``block_rate``, calibrated
per channel, and assembled into frames of ``frame_lines`` rows overlapping by
``overlap_lines``. Publishes line_scanner/frames as 32FC{C} (sensor QoS), stamped with the
acquisition time of row 0. Stops, reverse motion and encoder jumps are handled and
counted (see msseg_ros.core.sensing.lines).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import Image, JointState

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.params.nodes import schema_for
from msseg_ros.core.sensing.lines import LINE_SOURCES, LineAssembler, calibrate
from msseg_ros.core.sim.sorting_line import SortingLineConfig
from msseg_ros.ros.image_codec import array_to_image
from msseg_ros.ros.node_base import OK, WARN, MssegNode, run_node
from msseg_ros.ros.qos import sensor_qos
from msseg_ros.ros.stamps import from_seconds, to_seconds


def world_config(p) -> SortingLineConfig:
    """The sorting-line world of the shared ``world.*`` parameters at this line pitch."""
    return SortingLineConfig.from_world(p.world, p.line_pitch)


class LineScannerNode(MssegNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("line_scanner", schema_for("line_scanner"), **kwargs)
        p = self.params
        self.source = LINE_SOURCES.get(p.source)(world_config(p))
        if self.source.channels != len(p.channels):
            raise ConfigError(f"the {p.source} source gives {self.source.channels} channels; "
                             f"`channels` lists {len(p.channels)}")
        self.assembler = LineAssembler(p.line_pitch, p.frame_lines, p.overlap_lines, p.max_gap_lines)
        self.calib = tuple(np.asarray(v, np.float64) for v in
                           (p.calibration.dark, p.calibration.white, p.calibration.scale))
        # dark 0 and white == scale: the source already gives calibrated values
        self.identity = not np.any(self.calib[0]) and np.array_equal(self.calib[1], self.calib[2])
        self.encoding = f"32FC{len(p.channels)}"
        self._due: list[tuple[int, float, bool]] = []
        self._pub = self.create_publisher(Image, "line_scanner/frames", sensor_qos(1))
        self.create_subscription(JointState, "conveyor/joint_states", self._on_joints, sensor_qos(50))
        self.create_timer(1.0 / p.block_rate, self._read_block)
        self.belt_position = float("nan")

    def _on_joints(self, msg: JointState) -> None:
        if "belt" not in msg.name:
            self.counters["joint_states_without_belt"] += 1
            return
        pos = msg.position[msg.name.index("belt")]
        if not np.isfinite(pos):
            self.counters["bad_encoder_values"] += 1
            return
        self.belt_position = pos
        req = self.assembler.feed(to_seconds(msg.header.stamp), float(pos))
        self._due.extend(zip(req.indices.tolist(), req.stamps.tolist(), req.gaps.tolist(), strict=True))

    def _read_block(self) -> None:
        if not self._due:
            return
        due, self._due = self._due, []
        real = [i for i, _, gap in due if not gap]
        lines = self.source.lines(np.array(real, np.int64)) if real else np.zeros((0,))
        if len(real) and not self.identity:
            lines = calibrate(lines, *self.calib)
        k = 0
        for index, stamp, gap in due:
            line = None
            if not gap:
                line, k = lines[k], k + 1
            for frame in self.assembler.add(index, stamp, line):
                msg = array_to_image(frame.image, self.encoding)
                msg.header.stamp = from_seconds(frame.stamp)
                msg.header.frame_id = self.params.frame_id
                if self.fits_transport(len(msg.data), "frame"):
                    self._pub.publish(msg)
                    self.rate.tick()

    def diagnostics_status(self):
        c = self.assembler.counters
        extra = {**c, "belt_position_m": round(self.belt_position, 4), "source": self.params.source}
        if c["gap_lines"]:
            return WARN, f"{c['gap_lines']} lines lost to encoder jumps", extra
        return OK, "scanning" if c["lines"] else "waiting for belt motion", extra


def main(args: list[str] | None = None) -> int:
    return run_node(LineScannerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
