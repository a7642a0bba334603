"""Runtimes: each shipped torch model's predict time on torch, ONNX Runtime and OpenVINO.

    python msseg_ros/benchmarks/runtimes.py [--frames 6] [--repeats 3]

The same weights, frames and threads, interleaved in one run; frames are generated for
each model's cell (the sorting line's 250 x 274 x 11, the bin camera's 256 x 256 RGB).
ratio = torch / runtime (> 1: that runtime faster). The first call of a model on an
exported runtime exports it (cached); that is not timed. A runtime that is not installed
is left out, with its reason.
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
        from msseg_ros.core.segmentation.base import RUNTIMES

        exported = []
        for rt in ("onnxruntime", "openvino"):
            reason = RUNTIMES.get(rt).unavailable_reason()
            if reason:
                print(f"{rt}: left out ({reason})")
            else:
                exported.append(rt)
        for name in shipped_models():
            torch_seg = load_segmenter(name)
            if torch_seg.type_name == "classic":
                continue
            others = {rt: load_segmenter(name, runtime=rt) for rt in exported}
            frames = _frames(name.split("_" + torch_seg.type_name)[0], args.frames)
            for seg in others.values():
                seg(frames[0])
            times: dict[str, list[float]] = {"torch": [], **{rt: [] for rt in others}}
            for f in frames:  # interleaved per frame
                times["torch"].append(median_time(lambda f=f, s=torch_seg: s(f), args.repeats, warmup=1))
                for rt, seg in others.items():
                    times[rt].append(median_time(lambda f=f, s=seg: s(f), args.repeats, warmup=1))
            ms = {rt: 1e3 * float(np.median(v)) for rt, v in times.items()}
            for rt in others:
                ratios[f"{name}_torch_over_{rt}"] = ms["torch"] / ms[rt]
            figures[name] = {**{f"{rt}_ms": round(v, 1) for rt, v in ms.items()}, "frame_shape": list(frames[0].shape)}
            print(f"{name}: " + ", ".join(f"{rt} {v:.1f} ms" for rt, v in ms.items()) + " per frame (predict, median)")
    figures["threads"] = torch.get_num_threads()
    emit("runtimes", ratios, figures, args.json)


if __name__ == "__main__":
    main()
