"""A cell's robots as one typed value: robots, speeds, geometry and class -> bin.

Built from the node parameters by ``msseg_ros.ros.robot_config`` (the ROS side builds core
dataclasses from the schema; core takes no parameter views)."""
from __future__ import annotations

from dataclasses import dataclass

from msseg_ros.core.robots.cell import RobotSpec, Speeds
from msseg_ros.core.robots.kinematics import DeltaGeometry, Vec3


@dataclass(frozen=True)
class CellRobots:
    """The robots of one cell and what the bridge and the simulator need about them.

    Attributes:
        robots: the robots, sorted by reach window start.
        speeds: motion timing.
        geometry: delta geometry (the sorting line), or None.
        class_bins: class id -> bin (absent: not sorted).
        class_values: class id -> value for the scheduler.
        classes: class names by class id - 1.
        place_positions: FANUC: bin -> world (x, y, z), m.
        max_in_flight: picks a robot may have queued.
    """

    robots: list[RobotSpec]
    speeds: Speeds
    geometry: DeltaGeometry | None
    class_bins: dict[int, int]  # class_id -> bin (absent: not sorted)
    class_values: dict[int, float]
    classes: list[str]
    place_positions: dict[int, Vec3]
    max_in_flight: int

    def bin_of(self, class_id: int) -> int:
        return self.class_bins.get(int(class_id), 0)
