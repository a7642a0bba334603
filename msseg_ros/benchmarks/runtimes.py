"""Runtimes: each shipped torch model's predict time on torch, ONNX Runtime, OpenVINO (f32 and bf16) and int8.

    python msseg_ros/benchmarks/runtimes.py [--frames 6] [--repeats 3] [--bin-size 256] [--no-int8]

The same weights, frames and threads, interleaved in one run; frames are generated for
each model's cell (the sorting line's 250 x 274 x 11, the bin camera's ``--bin-size``
square RGB). ratio = torch / runtime (> 1: that runtime faster). The first call of a model
on an exported runtime exports it (cached); that is not timed. ``onnxruntime_int8`` is
calibrated first (``msseg quantize``'s path) on as many frames of other seeds. A runtime
that is not installed, or not for this CPU (``openvino_bf16`` without bf16 instructions),
is left out, with its reason.
"""
import argparse
import tempfile

import numpy as np
import torch

from msseg_ros.bench import add_json_argument, emit, median_time
from msseg_ros.core.segmentation.loading import load_segmenter, resolve_weights, shipped_models
from msseg_ros.core.segmentation.runtimes import engine_cache_dir
from msseg_ros.core.sim.bin_pile import BinPileConfig, BinPileWorld
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld


def _frames(cell: str, n: int, bin_size: int, seed: int = 0) -> list[np.ndarray]:
    if cell == "sorting_line":
        return [SortingLineWorld(SortingLineConfig(feed_rate=12.0, seed=seed + s)).render(0, 250).image
                for s in range(n)]
    world = BinPileWorld(BinPileConfig(seed=3 + seed, width=bin_size, height=bin_size))
    return [world.scene(k).render()["rgb"].astype(np.float32) for k in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bin-size", type=int, default=256, help="bin camera frames: side, px")
    ap.add_argument("--no-int8", action="store_true", help="leave out onnxruntime_int8 (calibration takes a while)")
    add_json_argument(ap)
    args = ap.parse_args()
    ratios, figures = {}, {}
    with tempfile.TemporaryDirectory() as cache:
        import os

        os.environ["MSSEG_CACHE"] = cache
        from msseg_ros.core.segmentation.base import RUNTIMES

        exported = []
        for rt in ("onnxruntime", "openvino", "openvino_bf16") + (() if args.no_int8 else ("onnxruntime_int8",)):
            reason = RUNTIMES.get(rt).unavailable_reason()
            if reason:
                print(f"{rt}: left out ({reason})")
            else:
                exported.append(rt)
        for name in shipped_models():
            torch_seg = load_segmenter(name)
            if torch_seg.type_name == "classic":
                continue
            cell = name.split("_" + torch_seg.type_name)[0]
            if "onnxruntime_int8" in exported:
                torch_seg.quantize_int8(_frames(cell, args.frames, args.bin_size, seed=100),
                                        engine_cache_dir(resolve_weights(name)))
            others = {rt: load_segmenter(name, runtime=rt) for rt in exported}
            frames = _frames(cell, args.frames, args.bin_size)
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
