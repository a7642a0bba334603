"""Model speed: our inference path against a naive eager torchvision call, same input.

    python msseg_ros/benchmarks/model_speed.py [--frames 8] [--repeats 5] [--breakdown]
        [--runtimes torch onnxruntime openvino]

The shipped sorting-line Mask R-CNN on sim frames of the demo's size (250 x 274 x 11).
"naive" is what a quick script does: the same weights in torchvision's default test-time
settings (1000 proposals before and after the RPN's NMS, box score threshold 0.05, 100
detections; fixed, so that changes to our settings count), ``net.eval(); net([tensor])``
with autograd on. "ours" is ``Segmenter.predict``: ``torch.inference_mode``, and the masks turned into the
instance image the nodes publish (so it does more work, not less). "ours, BatchNorm
unfolded" is the same path on the live module (what a model in training runs), to show
what folding BatchNorm into the convolutions gives. All run in this process,
interleaved, on the same frames and threads; ratio = naive / ours (> 1: ours faster).
``--runtimes``: ours also on these runtimes (``model.runtime``: the same weights exported;
pre- and post-processing as ever), each its own ratio ``naive_over_ours_RUNTIME``; a runtime
not installed is left out, with its reason.

``--breakdown`` also profiles ours (torch.profiler, after the timing) and prints where a
frame's time goes: the operators' own CPU time grouped (convolutions, RoIAlign, NMS, ...),
and the rest of the wall time, which is Python: torchvision's glue and our numpy
post-processing. The profiler's own overhead makes the total a little longer than the
timed median.
"""
import argparse

import numpy as np
import torch

from msseg_ros.bench import add_json_argument, emit, median_time
from msseg_ros.core.errors import MssegError
from msseg_ros.core.segmentation.base import SEGMENTERS
from msseg_ros.core.segmentation.checkpoint import load_checkpoint
from msseg_ros.core.segmentation.class_head import split_arrays
from msseg_ros.core.segmentation.loading import load_segmenter, resolve_weights
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld

#: operator name fragments -> the group a breakdown reports them in (first match wins)
OP_GROUPS = (("convolution", ("conv",)), ("RoIAlign", ("roi_align",)), ("NMS", ("nms",)),
             ("linear layers", ("addmm", "linear", "matmul", "mm")),
             ("resize / interpolate", ("upsample", "interpolate", "grid_sampler")),
             ("sort / top-k", ("sort", "topk")),
             ("memory: copy, cat, fill, index", ("copy", "cat", "fill", "empty", "index", "clone", "stack")),
             ("elementwise", ("add", "sub", "mul", "div", "clamp", "gt", "lt", "exp", "log", "hardswish",
                              "relu", "sigmoid", "where")))


def breakdown(seg, frames: list[np.ndarray]) -> dict[str, float]:
    """ms per frame of ``seg.predict`` by operator group (own CPU time), plus ``python``
    (the wall time no operator accounts for) and ``total``."""
    import time

    from torch.profiler import ProfilerActivity, profile

    seg.predict(frames[0])  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for f in frames:
            seg.predict(f)
        wall = time.perf_counter() - t0
    groups: dict[str, float] = {}
    for ev in prof.key_averages():
        name = ev.key.lower()
        group = next((g for g, keys in OP_GROUPS if any(k in name for k in keys)), "other operators")
        groups[group] = groups.get(group, 0.0) + ev.self_cpu_time_total / 1e3  # us -> ms
    n = len(frames)
    out = {g: v / n for g, v in sorted(groups.items(), key=lambda kv: -kv[1])}
    out["python"] = max(0.0, 1e3 * wall / n - sum(out.values()))
    out["total"] = 1e3 * wall / n
    return out


#: torchvision's MaskRCNN test-time defaults, as our config keys
TORCHVISION_TEST_DEFAULTS = {"rpn_pre_nms_top_n_test": 1000, "rpn_post_nms_top_n_test": 1000,
                             "score_threshold": 0.05, "detections_per_image": 100}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sorting_line_maskrcnn")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--breakdown", action="store_true", help="profile ours: where a frame's time goes")
    ap.add_argument("--runtimes", nargs="+", default=["torch"], metavar="RUNTIME",
                    help="ours on these runtimes too (torch is always measured)")
    add_json_argument(ap)
    args = ap.parse_args()
    seg = load_segmenter(args.model)
    others = {}
    for name in dict.fromkeys(r for r in args.runtimes if r != "torch"):
        try:
            others[name] = load_segmenter(args.model, runtime=name)
        except MssegError as exc:
            print(f"runtime {name} left out: {exc}")
    arrays, cfg = load_checkpoint(resolve_weights(args.model))
    arrays, _ = split_arrays(arrays)  # the network's own tensors (a class head runs after predict)
    unfolded = SEGMENTERS.get(cfg["type"]).from_config(cfg, arrays)  # no runtime chosen: the live module
    naive_net = load_segmenter(args.model, overrides=TORCHVISION_TEST_DEFAULTS).net.eval()
    frames = [SortingLineWorld(SortingLineConfig(feed_rate=12.0, seed=s)).render(0, 250).image
              for s in range(args.frames)]
    net = naive_net
    tensors = [torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))) for f in frames]
    naive, ours, live = [], [], []
    on_runtime: dict[str, list[float]] = {name: [] for name in others}
    for f, x in zip(frames, tensors, strict=True):
        naive.append(median_time(lambda x=x: net([x]), args.repeats, warmup=1))
        ours.append(median_time(lambda f=f: seg.predict(f), args.repeats, warmup=1))
        live.append(median_time(lambda f=f: unfolded.predict(f), args.repeats, warmup=1))
        for name, other in others.items():
            on_runtime[name].append(median_time(lambda f=f, m=other: m.predict(f), args.repeats, warmup=1))
    n_ms, o_ms, u_ms = (1e3 * float(np.median(t)) for t in (naive, ours, live))
    r_ms = {name: 1e3 * float(np.median(t)) for name, t in on_runtime.items()}
    print(f"{args.model} on {len(frames)} frames {frames[0].shape}, {torch.get_num_threads()} threads:")
    print(f"naive eager torchvision call:      {n_ms:.1f} ms median")
    print(f"ours, BatchNorm unfolded:          {u_ms:.1f} ms median")
    print(f"our inference path (predict):      {o_ms:.1f} ms median")
    for name, ms in r_ms.items():
        print(f"ours on {name + ':':<27}{ms:.1f} ms median (naive / ours {n_ms / ms:.2f})")
    figures = {"naive_ms": round(n_ms, 1), "ours_ms": round(o_ms, 1), "unfolded_ms": round(u_ms, 1),
               "threads": torch.get_num_threads(),
               "ours_settings": {k: seg.config[k] for k in TORCHVISION_TEST_DEFAULTS},
               "frame_shape": list(frames[0].shape), "runtimes_ms": {k: round(v, 1) for k, v in r_ms.items()}}
    if args.breakdown:
        parts = breakdown(seg, frames)
        print("where ours goes (torch.profiler, ms per frame):")
        for group, ms in parts.items():
            print(f"    {group:<32} {ms:6.1f}")
        figures["breakdown_ms"] = {k: round(v, 2) for k, v in parts.items()}
    ratios = {"naive_over_ours": n_ms / o_ms, "unfolded_over_folded": u_ms / o_ms}
    ratios.update({f"naive_over_ours_{name}": n_ms / ms for name, ms in r_ms.items()})
    emit("model_speed", ratios, figures, args.json)


if __name__ == "__main__":
    main()
