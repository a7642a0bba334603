"""``msseg train``: one entry for the three models.

A training config (YAML) has four sections; ``--set section.key=value`` overrides any key::

    model: {type: maskrcnn|bicameral|classic, ...model config...}
    data:  {train: path/annotations/learning.json, val: path/annotations/validation.json}
    train: {epochs, batch_size, lr, weight_decay, seed, device, eval_every, augment, ...}
    out:   runs/NAME

Defaults follow the seeds: Adam, lr 1e-4, weight decay 1e-4 (seed 000 Table 7.6, seed 001
§4.1.3); bicameral trains on random crops (256 x 256 in the seed). ``in_channels``,
``classes`` and ``image_mean``/``image_std`` ("auto") come from the training set.

OUT receives ``model.safetensors`` (+ ``.yaml``; the best by the validation metric),
``last.safetensors`` (model and optimizer tensors, for ``--resume``), ``state.json``
(epoch, step, history) and ``history.png``. A seed makes a CPU run repeatable.
"""
from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.learning import augment as aug
from msseg_ros.core.learning.data import CocoFrames, DatasetError
from msseg_ros.core.segmentation import loading as _registers_models  # noqa: F401
from msseg_ros.core.segmentation.base import SEGMENTERS, resolve_device
from msseg_ros.core.segmentation.checkpoint import load_checkpoint, save_checkpoint

TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 4,
    "lr": 1e-4,
    "weight_decay": 1e-4,
    "seed": 0,
    "device": "auto",
    "eval_every": 1,
    "max_steps": 0,  # 0: no limit
    "max_minutes": 0.0,  # wall-clock budget; 0: no limit (the last eval and save still happen)
    "init": "",  # a checkpoint to start from (fine-tuning); its normalisation is kept
    "lr_schedule": "constant",  # or "cosine": 2 % linear warm-up, cosine to 5 % of lr
    "threads": 0,  # 0: torch's default
    "crop": 0,  # bicameral: random square crops of this size (0: whole images)
    "save_dtype": "float32",  # or float16, for small shipped checkpoints
    "pixels_per_class": 4000,  # classic
    "augment": {"hflip": 0.5, "vflip": 0.5, "affine": 0.0, "patchwork": 0.0},
    "eval_images": 0,  # 0: the whole validation set
}


def set_dotted(tree: dict, key: str, value: Any) -> None:
    node = tree
    *path, leaf = key.split(".")
    for p in path:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {p!r} is not a section")
    node[leaf] = value


def load_train_config(path: str | Path | None, sets: dict[str, Any]) -> dict:
    import yaml

    cfg: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"training config {str(p)!r} does not exist")
        cfg = yaml.safe_load(p.read_text()) or {}
    for k, v in sets.items():
        set_dotted(cfg, k, list(v) if isinstance(v, tuple) else v)
    for section in ("model", "data"):
        if not isinstance(cfg.get(section), dict):
            raise ConfigError(f"training config lacks the {section!r} section")
    if "type" not in cfg["model"]:
        raise ConfigError("training config lacks model.type (maskrcnn, bicameral or classic)")
    if cfg["model"]["type"] not in SEGMENTERS:
        raise ConfigError(f"unknown model.type {cfg['model']['type']!r}; choose {', '.join(SEGMENTERS.names())}")
    if "train" not in cfg["data"]:
        raise ConfigError("training config lacks data.train (a COCO annotation file)")
    train = copy.deepcopy(TRAIN_DEFAULTS)
    for k, v in (cfg.get("train") or {}).items():
        if k not in train:
            raise ConfigError(f"unknown train option {k!r}; options: {', '.join(sorted(train))}")
        if k == "augment":
            unknown = set(v) - set(train["augment"])
            if unknown:
                raise ConfigError(f"unknown augment option(s) {sorted(unknown)}")
            train["augment"].update(v)
        else:
            train[k] = v
    cfg["train"] = train
    if train["lr_schedule"] not in ("constant", "cosine"):
        raise ConfigError(f"train.lr_schedule must be constant or cosine, got {train['lr_schedule']!r}")
    if float(train["max_minutes"]) < 0:
        raise ConfigError(f"train.max_minutes must be >= 0, got {train['max_minutes']}")
    if not cfg.get("out"):
        raise ConfigError("training config lacks out (the run folder)")
    return cfg


def lr_factor(schedule: str, progress: float) -> float:
    """The learning-rate multiplier at ``progress`` in [0, 1] of the run."""
    if schedule == "constant":
        return 1.0
    progress = min(max(progress, 0.0), 1.0)
    if progress < 0.02:
        return max(progress / 0.02, 0.01)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * (progress - 0.02) / 0.98))


def dataset_statistics(ds: CocoFrames, limit: int = 64) -> tuple[list[float], list[float], list[float]]:
    """Per-channel mean and std over (up to ``limit``) images, and the background median
    (the empty belt / bin bottom: the fill value for augmentations and NaN)."""
    s = s2 = None
    n = 0
    bg = []
    for i in range(min(len(ds), limit)):
        frame, tgt = ds[i]
        x = frame.reshape(-1, frame.shape[2]).astype(np.float64)
        s = x.sum(0) if s is None else s + x.sum(0)
        s2 = (x * x).sum(0) if s2 is None else s2 + (x * x).sum(0)
        n += len(x)
        free = ~tgt["masks"].any(0) if len(tgt["masks"]) else np.ones(frame.shape[:2], bool)
        bg.append(np.median(frame[free], axis=0) if free.any() else np.median(x, axis=0))
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 1e-12))
    return mean.tolist(), std.tolist(), np.median(np.array(bg), axis=0).tolist()


def complete_model_config(model_cfg: dict, ds: CocoFrames) -> dict:
    """Fill in_channels, classes and normalisation ("auto") from the training set."""
    cfg = dict(model_cfg)
    frame, _ = ds[0]
    cfg.setdefault("in_channels", int(frame.shape[2]))
    if cfg["in_channels"] != frame.shape[2]:
        raise ConfigError(f"model.in_channels = {cfg['in_channels']} but the training images have {frame.shape[2]}")
    cfg.setdefault("classes", ds.class_names)
    mean, std, bg = dataset_statistics(ds)
    if cfg.get("image_mean", "auto") == "auto":
        cfg["image_mean"] = [round(v, 4) for v in mean]
    if cfg.get("image_std", "auto") == "auto":
        cfg["image_std"] = [round(v, 4) for v in std]
    if cfg.get("fill_values", "auto") in ("auto", None):
        cfg["fill_values"] = [round(v, 4) for v in bg]
    return cfg


def seed_everything(seed: int) -> np.random.Generator:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------
def train(cfg: dict, resume: bool = False, log: Callable[[str], None] = print) -> dict:
    """Run a training config (see the module docstring); returns the final state."""
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    t = cfg["train"]
    try:
        train_ds = CocoFrames(cfg["data"]["train"])
        val_ds = CocoFrames(cfg["data"]["val"]) if cfg["data"].get("val") else None
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None
    if len(train_ds) == 0:
        raise ConfigError(f"training set {cfg['data']['train']!r} has no images")
    model_cfg = cfg["model"]
    if t["init"]:
        model_cfg = _inherit_normalisation(model_cfg, Path(t["init"]))
    model_cfg = complete_model_config(model_cfg, train_ds)
    kind = model_cfg["type"]
    (out / "train_config.json").write_text(json.dumps({**cfg, "model": model_cfg}, indent=1))
    if kind == "classic":
        from msseg_ros.core.learning.train_classic import fit_classic

        rng = np.random.default_rng(t["seed"])
        model = fit_classic(model_cfg, train_ds, rng, t["pixels_per_class"], log=log)
        save_checkpoint(out / "model.safetensors", model.state_dict(), model.config)
        state = {"epoch": 1, "step": 1, "history": [], "model": str(out / "model.safetensors")}
        if val_ds is not None:
            from msseg_ros.core.learning.evaluate import evaluate

            metrics = evaluate(model, val_ds, limit=t["eval_images"] or None)
            state["history"].append({"epoch": 1, "val": metrics["summary"]})
        (out / "state.json").write_text(json.dumps(state, indent=1))
        return state
    return _train_torch(cfg, model_cfg, train_ds, val_ds, resume, log)


_KEY_METRICS = ("segm_AP", "bbox_AP", "accuracy", "missed_pct", "boundary_ODS", "occlusion_ODS")


def _batches(n: int, batch: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, batch):
        yield order[i:i + batch]


def _prefetch(prepare: Callable, items, depth: int = 3):
    """``prepare(item)`` for each item, computed ``depth`` ahead in one background thread
    (one thread: the order of random draws, hence a seeded run, is unchanged)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((True, prepare(item)))
        except Exception as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put((False, exc))
            return
        q.put((True, done))

    thread = threading.Thread(target=work, name="batch-prefetch", daemon=True)
    thread.start()

    def gen():
        try:
            while True:
                ok, value = q.get()
                if not ok:
                    raise value
                if value is done:
                    return
                yield value
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(0.05)

    return gen()


def _augment(frame, tgt, t, rng, fill, pool):
    a = t["augment"]
    masks, labels = tgt["masks"], tgt["labels"]
    if a.get("patchwork", 0) and rng.random() < a["patchwork"]:
        samples = [pool[int(rng.integers(len(pool)))] for _ in range(6)]
        frame, masks, labels = aug.patchwork(samples, frame.shape[:2], fill, rng)
    if rng.random() < a.get("hflip", 0):
        frame, masks = aug.flip(frame, masks, horizontal=True)
    if rng.random() < a.get("vflip", 0):
        frame, masks = aug.flip(frame, masks, horizontal=False)
    if a.get("affine", 0) and rng.random() < a["affine"]:
        frame, masks = aug.affine(frame, masks, rng, fill)
    keep = masks.reshape(len(masks), -1).sum(1) >= 4 if len(masks) else np.zeros(0, bool)
    return frame, masks[keep], labels[keep]


def _maps_for(ds: CocoFrames, i: int, tgt: dict, shape) -> tuple[np.ndarray, np.ndarray]:
    """Boundary and occlusion maps of image i: the dataset's files (msseg sim-data
    bin_picking writes them) or, with a depth file, computed by seed 001's procedure."""
    import cv2

    from msseg_ros.core.sim.bin_pile import boundaries, occlusion_map

    im = ds.images[i]
    if "boundaries_file" in im and "occlusions_file" in im:
        Y = cv2.imread(str(ds.root / im["boundaries_file"]), cv2.IMREAD_GRAYSCALE) > 0
        Z = cv2.imread(str(ds.root / im["occlusions_file"]), cv2.IMREAD_GRAYSCALE) > 0
        return Y.astype(np.float32), Z.astype(np.float32)
    if "depth_file" in im:
        labels = np.zeros(shape, np.int32)
        for k, m in enumerate(tgt["masks"], start=1):
            labels[m] = k
        z = -np.load(ds.root / im["depth_file"], allow_pickle=False)
        Y = boundaries(labels)
        return Y.astype(np.float32), occlusion_map(labels, z, Y, 5).astype(np.float32)
    raise ConfigError(f"bicameral training needs boundary and occlusion maps; image {im['file_name']!r} "
                      "has neither boundaries_file/occlusions_file nor depth_file")


def _train_torch(cfg, model_cfg, train_ds, val_ds, resume, log) -> dict:
    import torch
    from tqdm import tqdm

    from msseg_ros.core.segmentation.bicameral import bicameral_loss

    t = cfg["train"]
    out = Path(cfg["out"])
    rng = seed_everything(int(t["seed"]))
    if t["threads"]:
        torch.set_num_threads(int(t["threads"]))
    device = resolve_device(t["device"])
    cls = SEGMENTERS.get(model_cfg["type"])
    model_cfg = cls.validate_config(model_cfg)
    seg = cls.from_config(model_cfg, device=device)
    net = seg.net
    opt = torch.optim.Adam(net.parameters(), lr=float(t["lr"]), weight_decay=float(t["weight_decay"]))
    state = {"epoch": 0, "step": 0, "history": [], "best": None}
    if resume:
        state = _load_state(out, net, opt, log)
    elif t["init"]:
        _load_init(Path(t["init"]), net, log)
    fill = np.asarray(model_cfg.get("fill_values") or model_cfg["image_mean"], np.float32)
    kind = model_cfg["type"]
    pool = [train_ds[i] for i in range(min(len(train_ds), 32))] if t["augment"].get("patchwork") else []
    n_batches = math.ceil(len(train_ds) / int(t["batch_size"]))
    planned = int(t["epochs"]) * n_batches
    if t["max_steps"]:
        planned = min(planned, int(t["max_steps"]))
    budget_s = float(t["max_minutes"]) * 60.0
    started = time.monotonic()

    def progress() -> float:
        p = state["step"] / max(planned, 1)
        return max(p, (time.monotonic() - started) / budget_s) if budget_s else p

    def out_of_budget() -> bool:
        return bool((t["max_steps"] and state["step"] >= t["max_steps"])
                    or (budget_s and time.monotonic() - started >= budget_s))

    def prepare(idx):
        """One batch as CPU tensors; runs in the prefetch thread, which alone draws from rng."""
        if kind == "maskrcnn":
            images, targets = [], []
            for i in idx:
                frame, tgt = train_ds[int(i)]
                frame, masks, labels = _augment(frame, tgt, t, rng, fill, pool)
                images.append(torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))))
                targets.append({
                    "boxes": torch.from_numpy(aug.boxes_from_masks(masks)).reshape(-1, 4),
                    "labels": torch.from_numpy(labels),
                    "masks": torch.from_numpy(masks.astype(np.uint8)),
                })
            return images, targets
        xs, ys, zs = [], [], []
        for i in idx:
            frame, tgt = train_ds[int(i)]
            Y, Z = _maps_for(train_ds, int(i), tgt, frame.shape[:2])
            stack = np.concatenate([frame, Y[..., None], Z[..., None]], axis=2)
            if t["crop"]:
                c = int(t["crop"])
                H, W = stack.shape[:2]
                if H >= c and W >= c:
                    y0, x0 = int(rng.integers(0, H - c + 1)), int(rng.integers(0, W - c + 1))
                    stack = stack[y0:y0 + c, x0:x0 + c]
            if rng.random() < t["augment"].get("hflip", 0):
                stack = stack[:, ::-1]
            if rng.random() < t["augment"].get("vflip", 0):
                stack = stack[::-1]
            H, W = stack.shape[:2]
            stack = np.pad(stack, ((0, (-H) % 16), (0, (-W) % 16), (0, 0)), mode="edge")
            xs.append(stack[..., :-2])
            ys.append(stack[..., -2])
            zs.append(stack[..., -1])
        x = torch.from_numpy(np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2)))
        y = torch.from_numpy(np.ascontiguousarray(np.stack(ys)))[:, None]
        z = torch.from_numpy(np.ascontiguousarray(np.stack(zs)))[:, None]
        return x, y, z

    for epoch in range(state["epoch"], int(t["epochs"])):
        net.train()
        losses = []
        batches = _prefetch(prepare, _batches(len(train_ds), int(t["batch_size"]), rng))
        bar = tqdm(batches, total=n_batches, desc=f"epoch {epoch + 1}/{t['epochs']}", unit="batch", leave=False)
        for batch in bar:
            if out_of_budget():
                break
            for group in opt.param_groups:
                group["lr"] = float(t["lr"]) * lr_factor(t["lr_schedule"], progress())
            if kind == "maskrcnn":
                images, targets = batch
                images = [im.to(device, non_blocking=True) for im in images]
                targets = [{k: v.to(device, non_blocking=True) for k, v in tg.items()} for tg in targets]
                parts = net(images, targets)
                loss = sum(parts.values())
            else:
                x, y, z = (v.to(device, non_blocking=True) for v in batch)
                ly, lz = net(seg.normalise(x))
                lb, lo = bicameral_loss(ly, lz, y, z, float(model_cfg["mu"]))
                loss = lb + lo
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state["step"] += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        bar.close()
        batches.close()
        entry = {"epoch": epoch + 1, "step": state["step"], "train_loss": float(np.mean(losses)) if losses else None,
                 "lr": opt.param_groups[0]["lr"], "minutes": round((time.monotonic() - started) / 60, 2)}
        last_epoch = epoch + 1 == int(t["epochs"]) or out_of_budget()
        if val_ds is not None and ((epoch + 1) % int(t["eval_every"]) == 0 or last_epoch):
            from msseg_ros.core.learning.evaluate import evaluate

            net.eval()
            metrics = evaluate(seg, val_ds, limit=t["eval_images"] or None, timing=False)
            entry["val"] = metrics["summary"]
            score = metrics["summary"].get("segm_AP", metrics["summary"].get("boundary_ODS", 0.0))
            if state["best"] is None or score >= state["best"]:
                state["best"] = score
                _save_model(out, seg, model_cfg, t)
        elif val_ds is None:
            _save_model(out, seg, model_cfg, t)
        state["history"].append(entry)
        state["epoch"] = epoch + 1
        log(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in entry.items() if k != "val")
            + (", val " + ", ".join(f"{k}={entry['val'][k]}" for k in _KEY_METRICS if entry["val"].get(k) is not None)
               if "val" in entry else ""))
        _save_state(out, net, opt, state)
        if out_of_budget():
            break
    if not (out / "model.safetensors").exists():
        _save_model(out, seg, model_cfg, t)
    _plot_history(out, state["history"])
    return state


def _save_model(out: Path, seg, model_cfg: dict, t: dict) -> None:
    sd = seg.net.state_dict()
    if t["save_dtype"] == "float16":
        sd = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    elif t["save_dtype"] != "float32":
        raise ConfigError(f"train.save_dtype must be float32 or float16, got {t['save_dtype']!r}")
    save_checkpoint(out / "model.safetensors", {k: v.detach().cpu() for k, v in sd.items()}, model_cfg)


def _save_state(out: Path, net, opt, state: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu() for k, v in net.state_dict().items()}
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for name, v in st.items():
            tensors[f"opt.{idx}.{name}"] = v.detach().cpu().reshape(-1) if v.ndim == 0 else v.detach().cpu()
    save_checkpoint(out / "last.safetensors", tensors, {"type": "training-state",
                                                         "param_groups": osd["param_groups"]})
    (out / "state.json").write_text(json.dumps(state, indent=1))


def _inherit_normalisation(model_cfg: dict, init: Path) -> dict:
    """A fine-tuned model keeps the normalisation its starting weights were trained with."""
    _, init_cfg = _read_init(init)
    if init_cfg["type"] != model_cfg["type"]:
        raise ConfigError(f"train.init {str(init)!r} is a {init_cfg['type']} checkpoint, "
                          f"the config trains a {model_cfg['type']}")
    cfg = dict(model_cfg)
    for key in ("image_mean", "image_std", "fill_values"):
        if cfg.get(key, "auto") in ("auto", None) and key in init_cfg:
            cfg[key] = init_cfg[key]
    return cfg


def _read_init(init: Path):
    from msseg_ros.core.segmentation.checkpoint import CheckpointError

    try:
        return load_checkpoint(init)
    except CheckpointError as exc:
        raise ConfigError(f"train.init: {exc}") from None


def _load_init(init: Path, net, log) -> None:
    import torch

    from msseg_ros.core.segmentation.checkpoint import CheckpointError, check_matches

    arrays, _ = _read_init(init)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    try:
        check_matches(expected, arrays, f"train.init {str(init)!r}")
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    net.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32) if v.dtype == np.float16 else np.array(v))
                         for k, v in arrays.items()})
    log(f"initialised from {init}")


def _load_state(out: Path, net, opt, log) -> dict:
    import torch

    if not (out / "last.safetensors").exists() or not (out / "state.json").exists():
        raise ConfigError(f"nothing to resume in {str(out)!r} (no last.safetensors / state.json)")
    arrays, meta = load_checkpoint(out / "last.safetensors")
    net.load_state_dict({k[6:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("model.")})
    opt_state: dict = {}
    for k, v in arrays.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            tv = torch.from_numpy(np.array(v))
            opt_state.setdefault(int(idx), {})[name] = tv.reshape(()) if name == "step" else tv
    opt.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    state = json.loads((out / "state.json").read_text())
    log(f"resumed from epoch {state['epoch']}, step {state['step']}")
    return state


def _plot_history(out: Path, history: list[dict]) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h.get("train_loss") or np.nan for h in history], "o-", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    vals = [(h["epoch"], h["val"]) for h in history if "val" in h]
    if vals:
        key = "segm_AP" if "segm_AP" in vals[0][1] else "boundary_ODS"
        ax2 = ax.twinx()
        ax2.plot([e for e, _ in vals], [v.get(key, np.nan) for _, v in vals], "s--", color="C1", label=key)
        ax2.set_ylabel(key)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "history.png", dpi=90)
    plt.close(fig)
