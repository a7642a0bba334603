"""Segmenter shards: frames segmented per second with 1 and 2 segmenters on an overloaded line.

    python msseg_ros/benchmarks/shards.py [--duration 60] [--speed 1.5] [--segmenter maskrcnn]

Runs ``msseg run sorting_line --mode sim`` with the belt at ``--speed`` m/s (design 0.5:
the line scanner then sends frames faster than one segmenter keeps up with), once with
one segmenter and once with ``--shards 2``, and reads from each run's report how many
frames the segmenters segmented and skipped (a segmenter keeps only the newest frame).
On 2 CPU cores two shards share the same cores, so expect well under 2x.

Ratios: ``shards2_over_shards1`` (frames segmented per second, 2 shards / 1), and
``segmented_share_{1,2}`` (segmented / frames offered to the segmenters).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from msseg_ros.bench import add_json_argument, emit

ROOT = Path(__file__).resolve().parents[1]


def run(shards: int, args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, "-m", "msseg_ros.cli.main", "run", "sorting_line", "--mode", "sim", "--segmenter",
           args.segmenter, "--shards", str(shards), "--duration", str(args.duration), "--quiet", "--report",
           str(out), "--set", f"cell_sim.belt.speed={args.speed}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.duration + 300)
    if done.returncode != 0:
        raise SystemExit(f"msseg run failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    names = ["segmenter"] if shards == 1 else [f"segmenter_{k}" for k in range(shards)]
    diag = [report["nodes"].get(n, {}) for n in names]
    segmented = sum(int(d.get("frames", 0)) for d in diag)
    skipped = sum(int(d.get("frames_skipped", 0)) for d in diag)
    return {"segmented": segmented, "skipped": skipped, "per_s": segmented / args.duration,
            "share": segmented / max(segmented + skipped, 1), "recovery": report["score"].get("recovery")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--speed", type=float, default=1.5, help="belt speed, m/s")
    ap.add_argument("--segmenter", default="maskrcnn")
    add_json_argument(ap)
    args = ap.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shards in (1, 2):
            figures[shards] = run(shards, args, Path(tmp) / str(shards))
            f = figures[shards]
            print(f"{shards} shard(s): {f['segmented']} frames segmented ({f['per_s']:.2f}/s), {f['skipped']} "
                  f"skipped, recovery {f['recovery']}", flush=True)
    ratios = {"shards2_over_shards1": figures[2]["per_s"] / max(figures[1]["per_s"], 1e-9),
              "segmented_share_1": figures[1]["share"], "segmented_share_2": figures[2]["share"]}
    emit("shards", ratios, {str(k): v for k, v in figures.items()}, args.json)


if __name__ == "__main__":
    main()
