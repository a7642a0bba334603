"""msseg_ros: from multi-sensor frames to robot picks.

Layers:
    msseg_ros.core   plain Python, numpy and torch; never imports ROS.
    msseg_ros.ros    thin rclpy adapters: nodes, message codecs, parameters, QoS.
    msseg_ros.cli    the ``msseg`` command.
    msseg_ros.graph  the node graph of each cell, shared by the launch files and ``msseg run``.
"""
import os as _os
import signal as _signal
import threading as _threading

__version__ = "0.1.0"

#: Set by SIGINT/SIGTERM. In node processes (MSSEG_NODE_PROCESS=1, set by `msseg run`)
#: the handler is installed here, before the heavy imports, so that a stop requested
#: while a node is still starting is honoured cleanly instead of raising mid-import.
STOP_REQUESTED = _threading.Event()

if _os.environ.get("MSSEG_NODE_PROCESS") == "1":
    for _sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(_sig, lambda *_: STOP_REQUESTED.set())
    # A node outlives nothing: if `msseg run` is killed (SIGKILL leaves it no chance to
    # stop its nodes), the kernel sends this process SIGTERM (Linux PR_SET_PDEATHSIG), and
    # it stops as on Ctrl-C, instead of holding its ports and DDS resources forever.
    try:
        import ctypes as _ctypes

        _ctypes.CDLL(None, use_errno=True).prctl(1, int(_signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the runner's own stop still applies
        pass
    _parent = _os.environ.get("MSSEG_PARENT_PID")
    if _parent and _parent.isdigit() and _os.getppid() != int(_parent):  # died before prctl
        STOP_REQUESTED.set()
