"""`msseg run` starts the graph's console_scripts as processes and stops them cleanly."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import yaml

from msseg_ros.cli.runner import GraphRunner, NodeDiedError, node_command, parse_sets
from msseg_ros.core.errors import ConfigError
from msseg_ros.graph import dds_environment, describe

from conftest import ROOT, spin_until, wait_until

MSSEG = [sys.executable, "-m", "msseg_ros.cli.main"]


def test_node_command_has_name_namespace_params_and_remaps():
    spec = describe("sorting_line", namespace="line2")
    cmd = node_command(spec.node("cell_sim"), spec, "/tmp/o.yaml")
    i = cmd.index("--ros-args")
    assert cmd[i:] == [
        "--ros-args", "-r", "__node:=cell_sim", "-r", "__ns:=/line2",
        "--params-file", spec.params_files[0], "--params-file", "/tmp/o.yaml",
    ]
    assert Path(cmd[0]).name in ("cell_sim", "python", "python3") or cmd[0] == sys.executable


def test_parse_sets_types_and_errors():
    spec = describe("sorting_line")
    assert parse_sets(["cell_sim.belt.speed=1", "cell_sim.diagnostics_period=0.5"], spec) == {
        "cell_sim": {"belt.speed": 1.0, "diagnostics_period": 0.5}}
    for item, msg in [
        ("cell_sim.belt.speed", "expected NODE.PARAM=VALUE"),
        ("nobody.x=1", "no node 'nobody' in this graph"),
        ("cell_sim.colour=1", "node 'cell_sim' has no parameter 'colour'"),
        ("cell_sim.belt.speed=fast", "'belt.speed': value 'fast' refused: expected float"),
        ("cell_sim.belt.speed=[1", "value is not valid YAML"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            parse_sets([item], spec)


def test_set_on_segmenter_reaches_every_shard():
    spec = describe("sorting_line", shards=2)
    sets = parse_sets(["segmenter.model.score_threshold=0.3", "segmenter_1.overlay_max_rate=1"], spec)
    assert sets == {"segmenter_0": {"model.score_threshold": 0.3},
                    "segmenter_1": {"model.score_threshold": 0.3, "overlay_max_rate": 1.0}}
    with pytest.raises(ConfigError, match="node 'segmenter_0' has no parameter 'colour'"):
        parse_sets(["segmenter.colour=1"], spec)


def test_report_header_names_the_model_type_the_segmenters_ran():
    """A run's report says which segmenter model type ran: the graph's, or the one a
    ``--set segmenter.model.type=...`` put over it (on every shard)."""
    from msseg_ros.cli.graph_commands import _report_header

    spec = describe("bin_picking")
    assert _report_header(spec, {}, False, {})["segmenter"] == "maskrcnn"
    header = _report_header(spec, parse_sets(["segmenter.model.type=bicameral"], spec), True, {"camera": 1})
    assert header["segmenter"] == "bicameral" and header["one_process"] and header["restarts"] == {"camera": 1}
    sharded = describe("sorting_line", shards=2)
    assert _report_header(sharded, parse_sets(["segmenter.model.type=classic"], sharded), False, {})[
        "segmenter"] == "classic"


def test_dds_profile_respects_the_users_choice():
    assert dds_environment({"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == {}
    env = dds_environment({})
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("config/dds/fastdds_large_frames.xml")


def test_graph_runs_publishes_and_stops(ros_context):
    """The runner's cell_sim is reached over DDS; --set reaches the node; logs carry names."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from msseg_ros.ros.qos import sensor_qos

    lines = []
    spec = describe("sorting_line")
    sets = parse_sets(["cell_sim.belt.speed=2.0"], spec)
    runner = GraphRunner(spec, sets, log=lambda n, line: lines.append((n, line)))
    node = rclpy.create_node("runner_probe", context=ros_context)
    got = []
    node.create_subscription(JointState, "conveyor/joint_states", got.append, sensor_qos(10))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    with runner:
        assert [rn.spec.name for rn in runner.nodes] == [n.name for n in spec.runnable]
        assert "cell_sim" in [rn.spec.name for rn in runner.nodes]
        assert spin_until(ex, lambda: len(got) > 20, timeout=30), "no joint states from the graph"
        assert got[-1].name == ["belt"] and got[-1].velocity[0] == 2.0
        codes = runner.stop()
    assert codes == {n.name: 0 for n in spec.runnable}
    for n in spec.runnable:  # each node's log is forwarded under its own name
        assert any(name == n.name and f"[{n.name}]: shutting down" in line for name, line in lines), n.name
    ex.shutdown()
    node.destroy_node()


def test_overrides_file_keeps_exact_types(tmp_path):
    spec = describe("sorting_line")
    runner = GraphRunner(spec, {"cell_sim": {"belt.speed": 1.0}})
    from msseg_ros.cli.runner import overrides_yaml

    doc = yaml.safe_load(yaml.safe_dump(overrides_yaml(spec, runner.sets)))
    assert doc["/**/cell_sim"]["ros__parameters"] == {"cell": "sorting_line", "belt.speed": 1.0}
    assert isinstance(doc["/**/cell_sim"]["ros__parameters"]["belt.speed"], float)


def test_node_death_is_reported_by_name():
    runner = GraphRunner(describe("sorting_line"), log=lambda n, line: None)
    runner.start()
    try:
        time.sleep(2.0)
        runner.nodes[0].process.kill()
        with pytest.raises(NodeDiedError, match=r"node 'cell_sim' died with exit code -9"):
            runner.wait(duration=30)
    finally:
        runner.stop()


def _run_cli(args, **kw):
    return subprocess.run([*MSSEG, *args], capture_output=True, text=True, cwd=ROOT, **kw)


def test_cli_run_duration_exits_0():
    out = _run_cli(["run", "sorting_line", "--mode", "sim", "--duration", "4"], timeout=120)
    assert out.returncode == 0, out.stderr
    spec = describe("sorting_line")
    assert "started: cell_sim" in out.stderr and f"stopped {len(spec.runnable)} node(s) cleanly" in out.stderr
    if spec.missing:
        assert f"not in this version yet, not started: {spec.missing[0].name}" in out.stderr
    assert "[cell_sim]" in out.stdout


def test_cli_run_sigterm_stops_cleanly():
    proc = subprocess.Popen([*MSSEG, "run", "sorting_line"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    started = threading.Event()
    err = []

    def read():
        for line in proc.stderr:
            err.append(line)
            if "started:" in line:
                started.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert started.wait(60)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    t.join(5)
    assert any("node(s) cleanly" in line for line in err)


def test_segmenter_stopped_while_its_model_loads_exits_0():
    """SIGTERM while the Mask R-CNN loads (torch import and build: seconds): the node
    stops without waiting for the load, exit 0, and says it was shutting down."""
    env = {**os.environ, **dds_environment(), "MSSEG_NODE_PROCESS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "msseg_ros.ros.nodes.segmenter", "--ros-args",
                             "-p", "cell:=sorting_line", "-p", "model.type:=maskrcnn"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "]: ready" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "shutting down" in out and "model sorting_line_maskrcnn" not in out, out


def test_runner_names_a_node_that_ignores_the_stop(tmp_path):
    """A hung node is killed at the end of the grace period and named with what it did."""
    from msseg_ros.cli.runner import RunningNode
    from msseg_ros.graph import NodeSpec

    script = tmp_path / "hung.py"
    script.write_text("import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                      "print('[hung]: ready', flush=True)\nprint('busy with frame 7', flush=True)\n"
                      "time.sleep(60)\n")
    spec = describe("sorting_line")
    lines = []
    runner = GraphRunner(spec, log=lambda n, line: lines.append((n, line)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    rn = RunningNode(NodeSpec("hung", "hung"), proc)
    runner.nodes.append(rn)
    t = threading.Thread(target=runner._forward, args=(rn, proc.stdout), daemon=True)
    t.start()
    assert wait_until(lambda: rn.last_line == "busy with frame 7", 30)
    codes = runner.stop(grace=0.5)
    assert codes == {"hung": -9}
    assert ("hung", "did not stop within 0.5 s (running; last log line: 'busy with frame 7'); killed") in lines
    assert runner.killed == {"hung": "killed after 0.5 s, running; last log line: 'busy with frame 7'"}


def test_cli_run_node_dies_exit_1_naming_it(tmp_path):
    # a parameter file the node refuses: cell_sim exits 2 at start, the runner exits 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/cell_sim:\n  ros__parameters:\n    belt:\n      speed: 99.0\n")
    out = _run_cli(["run", "sorting_line", "--params-file", str(bad), "--duration", "30"],
                   timeout=120)
    assert out.returncode == 1
    assert "node 'cell_sim' died with exit code 2" in out.stderr
    assert "configuration refused" in out.stdout + out.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "kitchen"], "argument cell: invalid choice: 'kitchen'"),
    (["run", "sorting_line", "--mode", "replay"], "replay mode needs a bag"),
    (["run", "sorting_line", "--set", "cell_sim.belt.speed=-1"], "must be >= 0.0"),
    (["run", "sorting_line", "--duration", "0"], "--duration must be > 0 s"),
    (["run", "sorting_line", "--params-file", "/nope.yaml"], "parameter file '/nope.yaml' does not exist"),
    (["params", "nobody"], "unknown node 'nobody'"),
])
def test_cli_usage_errors_are_one_line_exit_2(args, message):
    out = _run_cli(args, timeout=60)
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_cli_help_and_graph():
    out = _run_cli(["--help"], timeout=60)
    assert out.returncode == 0 and "run" in out.stdout and "graph" in out.stdout
    out = _run_cli(["graph", "bin_picking", "--mode", "live", "--json"], timeout=60)
    import json

    g = json.loads(out.stdout)
    assert [n["name"] for n in g["nodes"]] == ["camera", "segmenter", "grasp_selector", "robot_bridge"]
    assert g["robot"] == "fanuc" and g["segmenter"] == "maskrcnn"
    assert os.path.basename(g["params_files"][0]) == "bin_picking.yaml"


def test_nodes_stop_when_msseg_run_is_killed():
    """SIGKILL gives `msseg run` no chance to stop its nodes; they stop on their own
    (parent-death signal) instead of holding ports and DDS resources."""
    proc = subprocess.Popen([*MSSEG, "run", "sorting_line", "--segmenter", "classic"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    for line in proc.stdout:
        if "[robot_bridge]: ready" in line:
            break
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == proc.pid]
    names = {c: _describe(c) for c in children}
    assert len(children) >= 5
    proc.kill()
    proc.wait()
    stopped = wait_until(lambda: not any(_alive(c) for c in children), timeout=60)
    left = {c: f"{names[c]} [{_state(c)}]" for c in children if _alive(c)}
    for c in left:
        os.kill(c, signal.SIGKILL)  # do not leave them to the rest of the suite
    assert stopped, f"still running 60 s after msseg run was killed: {left}"
    from msseg_ros import stuck_report_path

    for c in children:  # a teardown that hung until the watchdog ended it: its stacks, for the cause
        report = Path(stuck_report_path(c))
        if report.exists():
            warnings.warn(f"{names[c]} hung while stopping; ended by its watchdog:\n{report.read_text()}",
                          stacklevel=1)
            report.unlink()


HANGS_IN_TEARDOWN = """
import os, signal, sys, threading
import msseg_ros  # a node process: installs the stop handler and its watchdog
os.kill(os.getpid(), signal.SIGTERM)
assert msseg_ros.STOP_REQUESTED.wait(5)
print("tearing down", os.getpid(), flush=True)
def stuck_in_teardown():
    threading.Event().wait()  # a join that never returns
stuck_in_teardown()
"""


@pytest.mark.parametrize("runner_alive", [True, False])
def test_a_node_whose_stop_hangs_ends_after_the_limit_with_its_stacks(tmp_path, runner_alive):
    """A teardown that hangs ends at MSSEG_TEARDOWN_LIMIT_S with exit code 1, every
    thread's stack written: to stderr (the runner forwards it), or, the runner gone,
    to stuck_report_path(pid)."""
    from msseg_ros import stuck_report_path

    parent = os.getpid() if runner_alive else 1  # 1: not this process's parent
    env = {**os.environ, "MSSEG_NODE_PROCESS": "1", "MSSEG_PARENT_PID": str(parent),
           "MSSEG_TEARDOWN_LIMIT_S": "1"}
    proc = subprocess.run([sys.executable, "-c", HANGS_IN_TEARDOWN], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc
    assert proc.stdout.startswith("tearing down"), proc.stdout
    report = Path(stuck_report_path(int(proc.stdout.split()[-1])))
    stacks = proc.stderr if runner_alive else report.read_text()
    assert "Timeout (0:00:01)!" in stacks and "stuck_in_teardown" in stacks, stacks
    assert report.exists() != runner_alive
    report.unlink(missing_ok=True)


def _describe(pid):
    """The node a process runs (its console script or module) and its command line's end."""
    try:
        args = [a for a in open(f"/proc/{pid}/cmdline").read().split("\0") if a]
    except OSError:
        return "?"
    program = next((os.path.basename(a) for a in args[1:3] if not a.startswith("-")), "?")
    return f"{program}: ... " + " ".join(args)[-80:]


def _state(pid):
    """Run state, wait channel and pending/caught signals of a process, for a failure message."""
    try:
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
        wchan = open(f"/proc/{pid}/wchan").read()
    except OSError:
        return "gone"
    return (f"{status['State'].strip()}, wchan {wchan}, threads {status['Threads'].strip()}, "
            f"pending {status['ShdPnd'].strip()}, caught {status['SigCgt'].strip()}")


def _ppid(pid):
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited


def test_cli_run_one_process(tmp_path):
    """--one-process: the cell's nodes in one process (the sim world in its own): all start,
    report, and stop cleanly, and the line scanner keeps up with the encoder (under rclpy's
    MultiThreadedExecutor it lost ~90 % of its lines: frames of NaN, nothing segmented)."""
    out = _run_cli(["run", "sorting_line", "--segmenter", "classic", "--duration", "30", "--one-process",
                    "--report", str(tmp_path / "r")], timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "started: one_process, cell_sim" in out.stderr and "stopped 2 node(s) cleanly" in out.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["one_process"] is True
    assert {"line_scanner", "segmenter", "grasp_selector", "robot_bridge", "cell_sim"} <= set(report["nodes"])
    assert report["score"].get("double_picks", 0) == 0
    scanner, segmenter = report["nodes"]["line_scanner"], report["nodes"]["segmenter"]
    assert int(scanner.get("gap_lines", 0)) <= 0.1 * int(scanner["lines"]), scanner
    assert int(segmenter.get("frames", 0)) >= 3, segmenter
