"""The typed tables of the contract (shared/design/CONTRACT.md), as numpy structured dtypes.

Core produces rows of these tables; ``msseg_ros.ros.result_messages`` carries them as
msseg_interfaces messages (InstanceArray, PickCandidateArray, PickResultArray).
"""
from __future__ import annotations

import numpy as np

#: segmentation/detections: one row per instance, pixel units. Each row also carries the
#: frame's size and whether the instance reaches the frame's last row (a line-scan frame:
#: still being scanned), so a consumer needs nothing but this table.
DETECTIONS = np.dtype(
    [
        ("instance", np.uint16),  # value in the instances image (1-based)
        ("class_id", np.uint16),
        ("score", np.float32),
        ("u", np.float32),  # pick pixel column, px: on the mask (Instances.pick_points)
        ("v", np.float32),  # pick pixel row, px
        ("x0", np.float32),  # box, px
        ("y0", np.float32),
        ("x1", np.float32),
        ("y1", np.float32),
        ("area", np.uint32),  # px
        ("affordance", np.float32),  # NaN when the model gives none
        ("frame_width", np.uint32),  # px, of the segmented frame
        ("frame_height", np.uint32),  # px
        ("touches_last_row", np.uint8),  # 1: the mask reaches row frame_height - 1
    ]
)

#: grasps/candidates: one row per pick candidate, frame ``world``, metres; best first.
CANDIDATES = np.dtype(
    [
        ("x", np.float32),
        ("y", np.float32),
        ("z", np.float32),
        ("pick_id", np.uint32),
        ("class_id", np.uint16),
        ("score", np.float32),
        ("affordance", np.float32),
        ("instance", np.uint16),
        ("belt_position", np.float64),  # belt travel at header.stamp, m; NaN off the line
    ]
)

#: robot/pick_results: one row per finished pick attempt.
PICK_RESULTS = np.dtype(
    [
        ("x", np.float32),
        ("y", np.float32),
        ("z", np.float32),
        ("pick_id", np.uint32),
        ("robot", np.uint16),
        ("class_id", np.uint16),
        ("bin", np.uint16),
        ("status", np.uint8),  # see PickStatus
    ]
)


class PickStatus:
    """Values of ``PICK_RESULTS['status']``."""

    DONE = 0
    MISSED = 1  # left the reach window
    FAILED = 2  # controller error
    REJECTED = 3  # safety / workspace
    SKIPPED = 4  # class not sorted


TABLES = {"detections": DETECTIONS, "candidates": CANDIDATES, "pick_results": PICK_RESULTS}


def empty(dtype: np.dtype, n: int = 0) -> np.ndarray:
    """A table of ``n`` rows, floats NaN and integers 0."""
    out = np.zeros(n, dtype=dtype)
    for name in dtype.names or ():
        if dtype[name].kind == "f":
            out[name] = np.nan
    return out
