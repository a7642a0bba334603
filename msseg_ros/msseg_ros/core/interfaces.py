"""msseg_interfaces' message definitions for rosbags (pure Python, no ROS): bags record
the typed result topics with their definitions, as ``ros2 bag record`` does, and any
reader can decode them."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

PACKAGE = "msseg_interfaces"


def msg_dir() -> Path | None:
    """The folder of msseg_interfaces' .msg files: the source tree beside this package
    (the repository holds both),
    the venv prefix (tools/build_interfaces.sh), or a prefix on AMENT_PREFIX_PATH
    (colcon); None when none has them."""
    prefixes = [Path(sys.prefix), *(Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p)]
    candidates = [Path(__file__).resolve().parents[3] / PACKAGE / "msg",
                  *(p / "share" / PACKAGE / "msg" for p in prefixes)]
    return next((c for c in candidates if any(c.glob("*.msg"))), None)


def typestore() -> Typestore:
    """The ROS 2 Kilted typestore with msseg_interfaces' messages registered (when their
    definitions are found, see :func:`msg_dir`)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    folder = msg_dir()
    if folder is not None:
        types = {}
        for path in sorted(folder.glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
        store.register(types)
    return store
