"""How hard is the simulated sorting line? Prints the two calibration figures.

    python msseg_ros/benchmarks/sim_difficulty.py [--seeds 1 2 3 4] [--frames 10]

1. object-level accuracy of a per-pixel RBF SVM on the 10 spectral + X-ray features with a
   majority vote per object (seed 000 §2.2; the seed's SVM reached 81 % on the real line);
2. recall of plain height-blob segmentation on isolated vs touching objects.
"""
import argparse
import statistics

from msseg_ros.core.sim.difficulty import measure
from msseg_ros.core.sim.sorting_line import SortingLineConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--frames", type=int, default=10, help="train and test frames per seed")
    ap.add_argument("--feed-rate", type=float, default=12.0)
    args = ap.parse_args()
    rows = []
    print(f"{'seed':>4} {'obj acc':>8} {'pix acc':>8} {'blob iso':>9} {'blob touch':>11} {'objects':>8} {'touching':>9}")
    for s in args.seeds:
        d = measure(SortingLineConfig(seed=s, feed_rate=args.feed_rate), args.frames, args.frames)
        rows.append(d)
        print(f"{s:>4} {d.object_accuracy:>8.3f} {d.pixel_accuracy:>8.3f} {d.blob_recall_isolated:>9.3f} "
              f"{d.blob_recall_touching:>11.3f} {d.n_objects:>8} {d.n_touching:>9}")
    mean = statistics.mean
    print(f"mean {mean(r.object_accuracy for r in rows):>8.3f} {mean(r.pixel_accuracy for r in rows):>8.3f} "
          f"{mean(r.blob_recall_isolated for r in rows):>9.3f} {mean(r.blob_recall_touching for r in rows):>11.3f}")


if __name__ == "__main__":
    main()
