"""Double picks per model: the sim sorting line with each line model, objects picked twice.

    python msseg_ros/benchmarks/double_picks.py [--minutes 10] [--models classic,maskrcnn,embeddings]

Not run by `msseg bench` without its name (it takes minutes per model). For each model
with a shipped sorting-line checkpoint: one `msseg run sorting_line --mode sim` of the
given length; its report gives the objects scored, recovery, purity, double picks (an
object gripped after some robot already picked it) and the pick-id audit (an id seen on
two objects, an id that ended twice). Each double pick has its cause
(core/sim/scoring.py DOUBLE_PICK_CAUSES: one frame's two detections of an object, the
tracker missing it across frames, a grip point on a neighbour).

Ratios: ``{model}_double_picks_per_100_picks`` (target 0) for each model.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from msseg_ros.bench import add_json_argument, emit
from msseg_ros.core.segmentation.loading import shipped_models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--models", default="classic,maskrcnn,embeddings")
    add_json_argument(ap)
    args = ap.parse_args()
    ratios, figures = {}, {}
    for model in args.models.split(","):
        if f"sorting_line_{model}" not in shipped_models():
            print(f"{model}: no shipped sorting-line model, skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "msseg_ros.cli.main", "run", "sorting_line", "--mode", "sim",
                   "--segmenter", model, "--duration", str(int(args.minutes * 60)), "--report", tmp]
            code = subprocess.call(cmd, stdout=subprocess.DEVNULL)
            report = json.loads((Path(tmp) / "report.json").read_text())
        s, ids = report["score"], report.get("pick_ids", {})
        picks = sum(int(v) for v in report.get("picks_by_robot", {}).values())
        figures[model] = {"exit_code": code, "objects_scored": s.get("objects_scored"),
                          "recovery": s.get("recovery"), "purity": s.get("purity"),
                          "double_picks": s.get("double_picks"), "double_pick_causes": s.get("double_pick_causes"),
                          "double_pick_separations_mm": s.get("double_pick_separations_mm"),
                          "picks": picks, "pick_ids": ids,
                          "restarts": report.get("restarts", {})}
        ratios[f"{model}_double_picks_per_100_picks"] = 100.0 * float(s.get("double_picks", 0)) / max(picks, 1)
        print(f"{model}: {s.get('double_picks')} double picks in {picks} picks (causes {s.get('double_pick_causes')}), "
              f"{s.get('objects_scored')} objects, "
              f"recovery {s.get('recovery')}, purity {s.get('purity')}, pick ids {ids}")
    figures["minutes"] = args.minutes
    emit("double_picks", ratios, figures, args.json)


if __name__ == "__main__":
    main()
