"""Runtimes: each shipped torch model's predict time on torch and on ONNX Runtime.

    python benchmarks/runtimes.py [--frames 6] [--repeats 3]

The same weights, frames and threads, interleaved in one run; frames are generated for
each model's cell (the sorting line's 250 x 274 x 11, the bin camera's 256 x 256 RGB).
ratio = torch / onnxruntime (> 1: ONNX Runtime faster). The first ONNX call of a model
exports it (cached); that is not timed.
"""
import argparse
import tempfile

import numpy as np
import torch

from msseg_ros.bench import add_json_argument, emit, median_time
from msseg_ros.core.segmentation.loading import load_segmenter, shipped_models
from msseg_ros.core.sim.bin_pile import BinPileConfig, BinPileWorld
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld


def _frames(cell: str, n: int) -> list[np.ndarray]:
    if cell == "sorting_line":
        return [SortingLineWorld(SortingLineConfig(feed_rate=12.0, seed=s)).render(0, 250).image for s in range(n)]
    world = BinPileWorld(BinPileConfig(seed=3, width=256, height=256))
    return [world.scene(k).render()["rgb"].astype(np.float32) for k in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    add_json_argument(ap)
    args = ap.parse_args()
    ratios, figures = {}, {}
    with tempfile.TemporaryDirectory() as cache:
        import os

        os.environ["MSSEG_CACHE"] = cache
        for name in shipped_models():
            torch_seg = load_segmenter(name)
            if torch_seg.type_name == "classic":
                continue
            onnx_seg = load_segmenter(name, runtime="onnxruntime")
            frames = _frames(name.split("_" + torch_seg.type_name)[0], args.frames)
            onnx_seg(frames[0])
            t_torch, t_onnx = [], []
            for f in frames:
                t_torch.append(median_time(lambda f=f, s=torch_seg: s(f), args.repeats, warmup=1))
                t_onnx.append(median_time(lambda f=f, s=onnx_seg: s(f), args.repeats, warmup=1))
            a, b = 1e3 * float(np.median(t_torch)), 1e3 * float(np.median(t_onnx))
            ratios[f"{name}_torch_over_onnxruntime"] = a / b
            figures[name] = {"torch_ms": round(a, 1), "onnxruntime_ms": round(b, 1), "frame_shape": list(frames[0].shape)}
            print(f"{name}: torch {a:.1f} ms, onnxruntime {b:.1f} ms per frame (predict, median)")
    figures["threads"] = torch.get_num_threads()
    emit("runtimes", ratios, figures, args.json)


if __name__ == "__main__":
    main()
