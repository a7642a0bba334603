"""Stop latency: seconds from Ctrl-C / SIGTERM to exit, for a node loading its model and a whole graph.

    python msseg_ros/benchmarks/stop_latency.py [--repeats 3] [--json PATH]

Not run by `msseg bench` without its name (about a minute per repeat). Scenarios, each
timed from the signal to the process's exit (median of the repeats):

* ``node_loading_sigterm``: a lone segmenter told to load the line Mask R-CNN, SIGTERM as
  soon as it says "ready" (torch is still importing and the model building, on its
  loading thread). Target: exit 0 within 2 s.
* ``run_startup_sigterm``: ``msseg run sorting_line --mode sim``, SIGTERM 1 s after
  "started:" (the nodes are importing their code). Target: exit 0 within 3 s.
* ``run_loading_ctrl_c``: the same graph, SIGINT to its whole process group (what a
  terminal's Ctrl-C sends) when the segmenter says "ready". Target: within 3 s.
* ``run_running_sigterm`` / ``run_running_ctrl_c``: the same graph 5 s after its
  segmenter has loaded the model (frames flowing, robots picking). Target: within 3 s.

The runner's own grace period (``STOP_GRACE_S``, docs/robustness.md) bounds any one node;
a node it had to kill shows as ``clean: false``. Ratios: ``{scenario}_over_target``
(at most 1 meets the issue's target).
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

from msseg_ros.bench import add_json_argument, emit

MSSEG = [sys.executable, "-m", "msseg_ros.cli.main"]
TARGETS_S = {"node_loading_sigterm": 2.0, "run_startup_sigterm": 3.0, "run_loading_ctrl_c": 3.0,
             "run_running_sigterm": 3.0, "run_running_ctrl_c": 3.0}
START_TIMEOUT_S = 300.0  # a cold start on a loaded machine


def _stop_after(cmd: list[str], ready: str, delay_s: float, sig: int, group: bool,
                env: dict[str, str] | None = None) -> dict[str, object]:
    """Start ``cmd``, wait for a line containing ``ready`` plus ``delay_s``, send ``sig``
    (to the process group when ``group``), and time the exit."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=env)
    seen = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if ready in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not seen.wait(START_TIMEOUT_S):
        os.killpg(proc.pid, signal.SIGKILL)
        raise SystemExit(f"stop_latency: {' '.join(cmd[3:])!r} never printed {ready!r}:\n{''.join(lines[-20:])}")
    time.sleep(delay_s)
    t0 = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    code = proc.wait(timeout=120)
    seconds = time.monotonic() - t0
    reader.join(5)
    text = "".join(lines)
    clean = code == 0 and "killed" not in text and "did not stop" not in text
    return {"seconds": round(seconds, 3), "exit_code": code, "clean": clean}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    add_json_argument(ap)
    args = ap.parse_args()
    from msseg_ros.graph import dds_environment

    node_env = {**os.environ, **dds_environment(), "MSSEG_NODE_PROCESS": "1", "PYTHONUNBUFFERED": "1"}
    segmenter = [sys.executable, "-m", "msseg_ros.ros.nodes.segmenter", "--ros-args",
                 "-p", "cell:=sorting_line", "-p", "model.type:=maskrcnn"]
    run = [*MSSEG, "run", "sorting_line", "--mode", "sim"]
    loaded = "model sorting_line_maskrcnn ("
    scenarios = {
        "node_loading_sigterm": lambda: _stop_after(segmenter, "]: ready", 0.0, signal.SIGTERM, False, node_env),
        "run_startup_sigterm": lambda: _stop_after(run, "started:", 1.0, signal.SIGTERM, False),
        "run_loading_ctrl_c": lambda: _stop_after(run, "]: ready", 0.0, signal.SIGINT, True),
        "run_running_sigterm": lambda: _stop_after(run, loaded, 5.0, signal.SIGTERM, False),
        "run_running_ctrl_c": lambda: _stop_after(run, loaded, 5.0, signal.SIGINT, True),
    }
    figures: dict[str, object] = {}
    ratios: dict[str, float] = {}
    for name, fn in scenarios.items():
        runs = [fn() for _ in range(args.repeats)]
        median = statistics.median(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
        figures[name] = {"median_s": median, "target_s": TARGETS_S[name], "runs": runs}
        ratios[f"{name}_over_target"] = median / TARGETS_S[name]
        print(f"{name:22s} median {median:5.2f} s (target {TARGETS_S[name]:g} s); "
              + ", ".join(f"{r['seconds']} s exit {r['exit_code']}{'' if r['clean'] else ' NOT CLEAN'}"
                          for r in runs), flush=True)
    emit("stop_latency", ratios, figures, args.json)


if __name__ == "__main__":
    main()
