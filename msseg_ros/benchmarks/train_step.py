"""Training step: where the time of one step goes, per torch model, and what settings gain.

    python msseg_ros/benchmarks/train_step.py [--models embeddings,maskrcnn,bicameral] [--steps 4] [--device cpu]

For each model (the shipped training configs' architecture and batch size, on generated
frames of the cell's size): one step is profiled (torch.profiler; self CPU time grouped
as convolution, batch norm, RoI/box ops, loss, optimiser, other) beside the batch
preparation (augmentation and targets, done in a background thread by ``msseg train``).
Then steps/s with each setting (channels_last memory format, bf16 autocast) against the
default fp32 step, interleaved in this one run: ratio > 1 means the setting is faster.
``--device cuda``: the same on a GPU (steps timed to the GPU's end with a synchronise);
the profile then also gives ``gpu_busy``, the GPU kernels' time over the step's: well
under 1 means the step waits on the CPU (Python, kernel launches, small per-instance
work), not on the GPU. For Mask R-CNN also the adversarial step (seed 002's critics, the weights of
config/training/sorting_line_maskrcnn_gan.yaml): ``maskrcnn_adversarial_step_time_ratio``
is its time over the plain step's (> 1: slower).
"""
import argparse
import collections
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from msseg_ros.bench import add_json_argument, emit
from msseg_ros.core.learning.data import CocoFrames
from msseg_ros.core.learning.options import Adversarial, Augment, TrainingContext, TrainOptions
from msseg_ros.core.learning.train import complete_model_config, gradient_step
from msseg_ros.core.segmentation.base import SEGMENTERS
from msseg_ros.core.sim.dataset import generate

#: model -> (cell, model config, train options), after config/training/*.yaml
MODELS = {
    "embeddings": ("sorting_line", {"type": "embeddings", "width": 100, "sigma_axes": 2}, {"batch_size": 4}),
    "maskrcnn": ("sorting_line", {"type": "maskrcnn", "backbone": "mobilenet_v3_large", "fpn_channels": 64,
                                  "box_representation": 256, "mask_channels": 64, "min_size": 256,
                                  "max_size": 512}, {"batch_size": 4}),
    "bicameral": ("bin_picking", {"type": "bicameral", "width": 25}, {"batch_size": 4, "crop": 256}),
}

GROUPS = (("convolution", ("conv", "mkldnn")), ("batch norm", ("batch_norm",)),
          ("RoI/box ops", ("roi", "nms", "box")), ("loss", ("sort", "loss", "cumsum", "sigmoid", "log")),
          ("optimiser", ("adam", "_foreach", "lerp", "addcdiv")))


def _group(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def _setup(kind: str, data: Path, frames: int, device: str = "cpu"):
    cell, cfg, opts = MODELS[kind]
    generate(cell, data / kind, frames, 5, split=(1, 0, 0), previews=0)
    ds = CocoFrames(data / kind / "annotations" / "learning.json")
    cfg = complete_model_config(cfg, ds)
    seg = SEGMENTERS.get(kind).from_config(cfg, device=device)
    mean = cfg["image_mean"]
    options = TrainOptions(augment=Augment(hflip=0.5, vflip=0.5), **opts)
    ctx = TrainingContext(ds, options, np.random.default_rng(0), np.asarray(mean, np.float32))
    return seg, ctx, options


def _step(seg, batch, opt, channels_last: bool, bf16: bool, adversary=None, critic_opt=None) -> float:
    t0 = time.perf_counter()
    if channels_last:
        batch = tuple(b.contiguous(memory_format=torch.channels_last) if isinstance(b, torch.Tensor) and b.dim() == 4
                      else b for b in batch) if isinstance(batch, tuple) else batch
    gradient_step(seg, batch, opt, "bf16" if bf16 else "fp32", adversary, critic_opt)
    if seg.device.startswith("cuda"):
        torch.cuda.synchronize()  # the GPU's work, not just its launch
    return time.perf_counter() - t0


#: the adversarial weights timed (config/training/sorting_line_maskrcnn_gan.yaml)
GAN_WEIGHTS = Adversarial(box=0.1, mask=1.0)


def _adversarial_ratio(seg, batch, opt, steps: int) -> tuple[float, float]:
    """(adversarial / plain step time, plain step s), interleaved."""
    adversary = seg.adversary(GAN_WEIGHTS, seed=0)
    critic_opt = torch.optim.Adam(adversary.parameters(), lr=1e-5, betas=(0.5, 0.999))
    plain, gan = [], []
    _step(seg, batch, opt, False, False, adversary, critic_opt)  # warm-up
    for _ in range(steps):
        gan.append(_step(seg, batch, opt, False, False, adversary, critic_opt))
        adversary.close()
        plain.append(_step(seg, batch, opt, False, False))
        adversary = seg.adversary(GAN_WEIGHTS, seed=0)
        critic_opt = torch.optim.Adam(adversary.parameters(), lr=1e-5, betas=(0.5, 0.999))
    adversary.close()
    return float(np.median(gan) / np.median(plain)), float(np.median(plain))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="embeddings,maskrcnn,bicameral")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per setting (after one warm-up)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (a GPU)")
    add_json_argument(ap)
    args = ap.parse_args()
    ratios: dict[str, float] = {}
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models.split(","):
            seg, ctx, options = _setup(kind, Path(tmp), args.frames, args.device)
            seg.net.train()
            opt = torch.optim.Adam(seg.net.parameters(), lr=1e-5)
            idx = list(range(options.batch_size))
            t0 = time.perf_counter()
            batch = seg.training_batch(idx, ctx)
            prep_s = time.perf_counter() - t0
            _step(seg, batch, opt, False, False)  # warm-up
            activities = [torch.profiler.ProfilerActivity.CPU]
            if args.device.startswith("cuda"):
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=activities) as prof:
                step_s = _step(seg, batch, opt, False, False)
            by_group: collections.Counter = collections.Counter()
            gpu_us = 0.0
            for ev in prof.key_averages():
                by_group[_group(ev.key)] += ev.self_cpu_time_total
                if str(getattr(ev, "device_type", "")).endswith("CUDA"):  # the kernels' own rows
                    gpu_us += ev.self_device_time_total
            total = sum(by_group.values()) or 1
            shares = {g: round(v / total, 3) for g, v in by_group.most_common()}
            settings = {"fp32": (False, False), "channels_last": (True, False), "bf16_autocast": (False, True)}
            times: dict[str, list[float]] = {k: [] for k in settings}
            for cl, bf in settings.values():  # one warm-up each (channels_last re-lays weights)
                if cl:
                    seg.net.to(memory_format=torch.channels_last)
                _step(seg, batch, opt, cl, bf)
                seg.net.to(memory_format=torch.contiguous_format)
            for _ in range(args.steps):  # interleaved, so that drift hits every setting alike
                for name, (cl, bf) in settings.items():
                    if cl:
                        seg.net.to(memory_format=torch.channels_last)
                    times[name].append(_step(seg, batch, opt, cl, bf))
                    seg.net.to(memory_format=torch.contiguous_format)
            med = {k: float(np.median(v)) for k, v in times.items()}
            if kind == "maskrcnn":
                ratio, plain_s = _adversarial_ratio(seg, batch, opt, args.steps)
                ratios["maskrcnn_adversarial_step_time_ratio"] = ratio
                print(f"{kind}: adversarial step {ratio:.2f}x the plain one ({plain_s:.2f} s)")
            for name in ("channels_last", "bf16_autocast"):
                ratios[f"{kind}_{name}_speedup"] = med["fp32"] / med[name]
            figures[kind] = {"step_s": round(med["fp32"], 3), "profiled_step_s": round(step_s, 3),
                             "batch_prep_s": round(prep_s, 3), "time_shares": shares,
                             "steps_per_s": {k: round(1 / v, 3) for k, v in med.items()},
                             "batch_size": options.batch_size, "frame_shape": list(ctx.dataset[0][0].shape),
                             "device": args.device}
            if args.device.startswith("cuda"):
                figures[kind]["gpu_busy"] = round(gpu_us / 1e6 / step_s, 3)
                print(f"{kind}: GPU kernels busy {100 * gpu_us / 1e6 / step_s:.0f} % of the profiled step")
            print(f"{kind}: {med['fp32']:.2f} s/step fp32 (batch {options.batch_size}), batch prep {prep_s:.2f} s; "
                  f"time: " + ", ".join(f"{g} {100 * v:.0f} %" for g, v in shares.items()))
            print("  steps/s: " + ", ".join(f"{k} {1 / v:.3f}" for k, v in med.items()))
    figures["threads"] = torch.get_num_threads()
    figures["device"] = args.device
    emit("train_step", ratios, figures, args.json)


if __name__ == "__main__":
    main()
