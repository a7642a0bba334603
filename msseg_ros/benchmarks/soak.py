"""Soak and overload: the sim sorting line at twice the design frame rate for 10 minutes.

    python msseg_ros/benchmarks/soak.py [--minutes 10] [--segmenter maskrcnn] [--plot FILE]

Not run by `msseg bench` without its name (it takes the minutes it is given). One
`msseg run sorting_line --mode sim` with the belt at 1.0 m/s (design 0.5: twice the frames
per second), the default model; every minute this process samples each node's resident
memory (/proc/PID/status VmRSS) and the Fast DDS shared memory in /dev/shm. The run's
report gives the frame-to-candidates latency per minute and the segmenter's skipped
frames.

Ratios (targets from the reliability issue):
    p99_last_over_first   p99 latency of the last minute / of the first full minute (<= 1.2)
    rss_growth_max        largest RSS(last) / RSS(after warm-up, minute 2) over the nodes (<= 1.05)
    shm_growth            /dev/shm MB at the end / after warm-up (1.0: no growth)
    crashed               1 if the run did not end cleanly (or a node was restarted)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from msseg_ros.bench import add_json_argument, emit


def _children(pid: int) -> dict[str, int]:
    """Node name -> pid of ``pid``'s child processes (their console script names them)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and len(cmd) > 1:
            out[Path(cmd[1].decode()).name] = int(entry)
    return out


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _shm_mb() -> float:
    total = 0
    for p in Path("/dev/shm").glob("*"):
        try:
            total += p.stat().st_blocks * 512  # allocated, not apparent, size
        except OSError:
            pass
    return total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--segmenter", default="maskrcnn")
    ap.add_argument("--speed", type=float, default=1.0, help="belt speed, m/s (design 0.5)")
    ap.add_argument("--plot", default=None, metavar="FILE", help="write a PNG of the per-minute figures")
    add_json_argument(ap)
    args = ap.parse_args()
    if args.minutes < 3:
        sys.exit("soak: --minutes must be >= 3 (minute 1 warms up; growth is measured after it)")
    samples: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "msseg_ros.cli.main", "run", "sorting_line", "--mode", "sim", "--quiet",
               "--segmenter", args.segmenter, "--duration", str(args.minutes * 60), "--report", tmp,
               "--no-respawn", "--set", f"cell_sim.belt.speed={args.speed}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        next_sample = time.monotonic() + 60.0
        minute = 0
        while proc.poll() is None:
            time.sleep(min(max(next_sample - time.monotonic(), 0.1), 5.0))
            if time.monotonic() >= next_sample and minute < int(args.minutes) and proc.poll() is None:
                minute += 1
                next_sample += 60.0
                nodes = _children(proc.pid)
                samples.append({"minute": minute, "shm_mb": round(_shm_mb(), 1),
                                "rss_mb": {n: round(v, 1) for n, pid in nodes.items()
                                           if (v := _rss_mb(pid)) is not None}})
                print(f"soak: minute {minute}: {samples[-1]}", file=sys.stderr, flush=True)
        stderr = proc.stderr.read() if proc.stderr else ""
        code = proc.returncode
        report_path = Path(tmp) / "report.json"
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    by_minute = report.get("pipeline_latency", {}).get("by_minute", [])
    full = [m for m in by_minute if m["frames"] >= 5 and m["minute"] < int(args.minutes)]
    p99_ratio = full[-1]["p99_ms"] / full[1]["p99_ms"] if len(full) >= 3 else float("nan")
    warm = next((s for s in samples if s["minute"] == 2), samples[0] if samples else None)
    last = samples[-1] if samples else None
    growth = {n: round(last["rss_mb"][n] / warm["rss_mb"][n], 3) for n in (warm or {}).get("rss_mb", {})
              if last and n in last["rss_mb"] and warm["rss_mb"][n]}
    seg = report.get("nodes", {}).get("segmenter", {})
    result = {
        "minutes": args.minutes, "belt_speed": args.speed, "exit_code": code,
        "latency_by_minute": by_minute, "samples": samples, "rss_growth": growth,
        "skipped_frames": seg.get("frames_skipped"), "frames": seg.get("frames"),
        "score": {k: report.get("score", {}).get(k) for k in ("objects_scored", "recovery", "purity", "double_picks",
                                                                "double_pick_causes", "double_pick_separations_mm")},
        "stderr_tail": stderr[-1500:] if code else "",
    }
    ratios = {
        "p99_last_over_first": round(p99_ratio, 3),
        "rss_growth_max": max(growth.values()) if growth else float("nan"),
        "shm_growth": round(last["shm_mb"] / warm["shm_mb"], 3) if warm and last and warm["shm_mb"] else float("nan"),
        "crashed": float(code != 0),
    }
    if args.plot:
        _plot(Path(args.plot), by_minute, samples)
    emit("soak", ratios, result, args.json)


def _plot(path: Path, by_minute: list[dict], samples: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_minute = [m for m in by_minute if m["frames"] >= 5]  # a last, partial minute says little
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot([m["minute"] + 1 for m in by_minute], [m["p50_ms"] for m in by_minute], "o-", label="p50")
    a1.plot([m["minute"] + 1 for m in by_minute], [m["p99_ms"] for m in by_minute], "s-", label="p99")
    a1.set_xlabel("minute")
    a1.set_ylabel("frame -> candidates, ms")
    a1.legend()
    names = sorted({n for s in samples for n in s["rss_mb"]})
    for n in names:
        a2.plot([s["minute"] for s in samples], [s["rss_mb"].get(n) for s in samples], "o-", label=n)
    a2.plot([s["minute"] for s in samples], [s["shm_mb"] for s in samples], "k--", label="/dev/shm")
    a2.set_xlabel("minute")
    a2.set_ylabel("MB")
    a2.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
