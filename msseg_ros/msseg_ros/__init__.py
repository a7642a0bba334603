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

#: Seconds a node process (MSSEG_NODE_PROCESS=1) may take to stop once asked; then it
#: writes every thread's stack (:func:`stuck_report_path`) and ends with exit code 1. A
#: clean stop takes a few seconds (the runner itself waits 5 s before SIGKILL), but a
#: node whose runner was SIGKILLed has nobody to kill it if its teardown hangs.
#: Environment override: MSSEG_TEARDOWN_LIMIT_S.
TEARDOWN_LIMIT_S = float(_os.environ.get("MSSEG_TEARDOWN_LIMIT_S", "20"))

_watchdog_file = None  # where the armed watchdog writes: stderr, or its report file
_watchdog_report: str | None = None  # that file's path, None for stderr


def stuck_report_path(pid: int) -> str:
    """Where node process ``pid`` writes its threads' stacks if its stop hangs while its
    runner is gone (with a runner alive, they go to stderr, which the runner forwards)."""
    import tempfile

    return _os.path.join(tempfile.gettempdir(), f"msseg-stuck-stop-{pid}.txt")


def request_stop(*_: object) -> None:
    """The stop signal's handler in node processes: sets :data:`STOP_REQUESTED` and arms
    the teardown watchdog (a C-level timer of :mod:`faulthandler`, which fires even while
    a deadlocked thread holds the interpreter)."""
    global _watchdog_file, _watchdog_report
    STOP_REQUESTED.set()
    if _watchdog_file is not None or _os.environ.get("MSSEG_NODE_PROCESS") != "1":
        return
    import faulthandler
    import sys

    parent = _os.environ.get("MSSEG_PARENT_PID", "")
    if not parent.isdigit() or _os.getppid() == int(parent):
        _watchdog_file = sys.stderr
    else:  # the runner is gone, and with it whoever reads stderr
        _watchdog_report = stuck_report_path(_os.getpid())
        _watchdog_file = open(_watchdog_report, "w")  # kept open: faulthandler writes to its descriptor
        _watchdog_file.write(f"stop asked; still stopping after {TEARDOWN_LIMIT_S:g} s. Threads:\n")
        _watchdog_file.flush()
    faulthandler.dump_traceback_later(TEARDOWN_LIMIT_S, exit=True, file=_watchdog_file)


def stopped_in_time() -> None:
    """Disarm the watchdog at a completed teardown (and drop its unused report file)."""
    if _watchdog_file is None:
        return
    import faulthandler

    faulthandler.cancel_dump_traceback_later()
    if _watchdog_report is not None:
        _watchdog_file.close()
        _os.remove(_watchdog_report)


if _os.environ.get("MSSEG_NODE_PROCESS") == "1":
    for _sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(_sig, request_stop)
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
        request_stop()
