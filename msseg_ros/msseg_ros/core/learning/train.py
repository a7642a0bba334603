"""``msseg train``: one entry for every model type.

A training config (YAML) has four sections; ``--set section.key=value`` overrides any key::

    model: {type: TYPE, ...model config...}            # TYPE: a registered model type
    data:  {train: path/annotations/learning.json, val: path/annotations/validation.json,
            image_root: optional folder of the images (COCO's usual separate folder),
            rehearsal: optional COCO file mixed into every epoch (e.g. the pretraining data),
            rehearsal_fraction: its share of each epoch's frames, default 0.5}
    train: {epochs, batch_size, lr, weight_decay, seed, device, eval_every, augment, ...}
    out:   runs/NAME

The trainer knows no model type: the type's class (the plugin contract in
``segmentation.base``) makes each batch of training targets and returns its own losses,
or, for a fitted type, fits itself. The ``train`` options are
:class:`~msseg_ros.core.learning.options.TrainOptions`.

Defaults follow the seeds: Adam, lr 1e-4, weight decay 1e-4 (seed 000 Table 7.6, seed 001
§4.1.3); bicameral trains on random crops (256 x 256 in the seed). ``in_channels``,
``classes`` and ``image_mean``/``image_std`` ("auto") come from the training set.

OUT receives ``model.safetensors`` (+ ``.yaml``; the best by the validation metric),
``last.safetensors`` (model and optimizer tensors, for ``--resume``), ``state.json``
(epoch, step, history) and ``history.png``. A seed makes a CPU run repeatable.
"""
from __future__ import annotations

import functools
import json
import math
import operator
import random
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from msseg_ros.core.errors import ConfigError, MssegError
from msseg_ros.core.learning.data import CocoFrames, DatasetError, Frames, MixedFrames
from msseg_ros.core.learning.options import TrainingContext, TrainOptions
from msseg_ros.core.paths import packaged
from msseg_ros.core.segmentation.base import SEGMENTERS, Segmenter, resolve_device
from msseg_ros.core.segmentation.checkpoint import load_checkpoint, save_checkpoint
from msseg_ros.core.segmentation.class_head import split_arrays

if TYPE_CHECKING:
    import torch

    from msseg_ros.core.segmentation.torch_base import Adversary, TorchSegmenter

@dataclass(frozen=True)
class TrainConfig:
    """A validated training config.

    Attributes:
        model: the model config (``type`` and the type's keys; validated by the type when
            the model is built, after ``auto`` values are filled from the training set).
        train_file: the training set's COCO annotation file.
        val_file: the validation set's, or None.
        image_root: the folder image paths are relative to (None: the dataset's root).
        rehearsal_file: a COCO file whose frames are mixed into every epoch (None: none);
            its images are found from its own folder, not ``image_root``.
        rehearsal_fraction: the share of each epoch's frames drawn from it, 0 < f <= 0.95.
        options: the ``train`` section.
        out: the run folder.
    """

    model: dict[str, Any]
    train_file: str
    val_file: str | None
    options: TrainOptions
    out: Path
    image_root: str | None = None
    rehearsal_file: str | None = None
    rehearsal_fraction: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "data": {"train": self.train_file, "val": self.val_file,
                                              "image_root": self.image_root, "rehearsal": self.rehearsal_file,
                                              "rehearsal_fraction": self.rehearsal_fraction},
                "train": self.options.as_dict(), "out": str(self.out)}


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    *path, leaf = key.split(".")
    for p in path:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {p!r} is not a section")
    node[leaf] = value


def load_train_config(path: str | Path | None, sets: dict[str, Any]) -> TrainConfig:
    """Read a training config (YAML) and apply ``--set`` overrides (dotted keys)."""
    import yaml

    cfg: dict[str, Any] = {}
    if path is not None:
        p = packaged(path)
        if not p.is_file():
            raise ConfigError(f"training config {str(p)!r} does not exist")
        try:
            cfg = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"training config {str(p)!r} is not valid YAML: {exc}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"training config {str(p)!r} is not a mapping of sections")
    for k, v in sets.items():
        set_dotted(cfg, k, list(v) if isinstance(v, tuple) else v)
    for section in ("model", "data"):
        if not isinstance(cfg.get(section), dict):
            raise ConfigError(f"training config lacks the {section!r} section")
    if "type" not in cfg["model"]:
        raise ConfigError(f"training config lacks model.type ({', '.join(SEGMENTERS.names())})")
    if cfg["model"]["type"] not in SEGMENTERS:
        raise ConfigError(f"unknown model.type {cfg['model']['type']!r}; choose {', '.join(SEGMENTERS.names())}")
    if "train" not in cfg["data"]:
        raise ConfigError("training config lacks data.train (a COCO annotation file)")
    data_keys = ("image_root", "rehearsal", "rehearsal_fraction", "train", "val")
    unknown = sorted(set(cfg["data"]) - set(data_keys))
    if unknown:
        raise ConfigError(f"unknown data option {unknown[0]!r}; options: {', '.join(data_keys)}")
    fraction = cfg["data"].get("rehearsal_fraction", 0.5)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 0.95:
        raise ConfigError(f"data.rehearsal_fraction must be a number in (0, 0.95], got {fraction!r}")
    options = TrainOptions.from_mapping(cfg.get("train"))
    if not cfg.get("out"):
        raise ConfigError("training config lacks out (the run folder)")
    return TrainConfig(model=dict(cfg["model"]), train_file=str(cfg["data"]["train"]),
                       val_file=str(cfg["data"]["val"]) if cfg["data"].get("val") else None,
                       image_root=str(cfg["data"]["image_root"]) if cfg["data"].get("image_root") else None,
                       rehearsal_file=str(cfg["data"]["rehearsal"]) if cfg["data"].get("rehearsal") else None,
                       rehearsal_fraction=float(fraction), options=options, out=Path(cfg["out"]))


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
    s: np.ndarray | None = None
    s2: np.ndarray | None = None
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
    if s is None or s2 is None:
        raise ConfigError("the training set has no images to take statistics of")
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 1e-12))
    return mean.tolist(), std.tolist(), np.median(np.array(bg), axis=0).tolist()


def complete_model_config(model_cfg: dict[str, Any], ds: CocoFrames) -> dict[str, Any]:
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


def seed_everything(seed: int, deterministic: bool = True) -> np.random.Generator:
    """Seeds Python, numpy and torch; ``deterministic`` switches torch's deterministic
    algorithms on (warnings only where an op has none) or off. Returns the run's generator."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------
def train(cfg: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a training config (see the module docstring); returns the final state
    (``epoch``, ``step``, ``history``, ``best``)."""
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    t = cfg.options
    plugin = SEGMENTERS.get(cfg.model["type"])
    if cfg.rehearsal_file and plugin.trained_by == "fit":
        raise ConfigError(f"data.rehearsal mixes frames into gradient-trained epochs; {plugin.type_name} is "
                          "fitted in one pass: put the frames in data.train instead")
    try:
        own = CocoFrames(cfg.train_file, cfg.image_root)
        val_ds = CocoFrames(cfg.val_file, cfg.image_root) if cfg.val_file else None
        if len(own) == 0:
            raise ConfigError(f"training set {cfg.train_file!r} has no images")
        train_ds: Frames = MixedFrames(own, CocoFrames(packaged(cfg.rehearsal_file))) if cfg.rehearsal_file else own
    except DatasetError as exc:
        raise ConfigError(str(exc)) from None
    model_cfg = cfg.model
    if t.init:
        model_cfg = _inherit_normalisation(model_cfg, packaged(t.init))
    model_cfg = complete_model_config(model_cfg, own)
    cls = SEGMENTERS.get(model_cfg["type"])
    model_cfg = cls.validate_config(model_cfg)
    (out / "train_config.json").write_text(json.dumps({**cfg.as_dict(), "model": model_cfg}, indent=1))
    if cls.trained_by == "fit":
        return _fit(cls, model_cfg, cfg, train_ds, val_ds, log)
    return _train_gradient(cls, model_cfg, cfg, train_ds, val_ds, resume, log)


def _fit(cls: type[Segmenter], model_cfg: dict[str, Any], cfg: TrainConfig, train_ds: Frames,
         val_ds: CocoFrames | None, log: Callable[[str], None]) -> dict[str, Any]:
    """A model fitted in one pass (``trained_by == "fit"``), then evaluated once."""
    t = cfg.options
    rng = np.random.default_rng(t.seed)
    fill = np.asarray(model_cfg.get("fill_values") or np.zeros(model_cfg["in_channels"]), np.float32)
    model = cls.fit(model_cfg, TrainingContext(train_ds, t, rng, fill), log)
    save_checkpoint(cfg.out / "model.safetensors", model.state_dict(), model.config)
    state: dict[str, Any] = {"epoch": 1, "step": 1, "history": [], "model": str(cfg.out / "model.safetensors")}
    if val_ds is not None:
        from msseg_ros.core.learning.evaluate import evaluate

        metrics = evaluate(model, val_ds, limit=t.eval_images or None)
        state["history"].append({"epoch": 1, "val": metrics["summary"]})
    (cfg.out / "state.json").write_text(json.dumps(state, indent=1))
    return state


_KEY_METRICS = ("segm_AP", "bbox_AP", "accuracy", "missed_pct", "boundary_ODS", "occlusion_ODS")


def own_frames(ds: Frames) -> CocoFrames:
    """The training set proper, without rehearsal frames."""
    return ds.primary if isinstance(ds, MixedFrames) else ds


def epoch_size(ds: Frames, rehearsal_fraction: float) -> int:
    """Frames one epoch visits: all of the training set's, plus rehearsal frames making up
    ``rehearsal_fraction`` of the epoch (at least one, at most all of them)."""
    n = len(own_frames(ds))
    if not isinstance(ds, MixedFrames):
        return n
    extra = round(n * rehearsal_fraction / (1.0 - rehearsal_fraction))
    return n + min(max(extra, 1), len(ds.rehearsal))


def _batches(ds: Frames, per_epoch: int, batch: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """One epoch's index batches: every training frame once and, with rehearsal, a fresh
    draw of rehearsal frames (without repeats), shuffled together."""
    n = len(own_frames(ds))
    order = np.arange(n)
    if per_epoch > n:
        order = np.concatenate([order, n + rng.choice(len(ds) - n, per_epoch - n, replace=False)])
    order = rng.permutation(order)
    for i in range(0, len(order), batch):
        yield order[i:i + batch]


def _prefetch(prepare: Callable[[Any], Any], items: Iterable[Any], depth: int = 3) -> Generator[Any, None, None]:
    """``prepare(item)`` for each item, computed ``depth`` ahead in one background thread
    (one thread: the order of random draws, hence a seeded run, is unchanged)."""
    import queue
    import threading

    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work() -> None:
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

    def gen() -> Generator[Any, None, None]:
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


def _train_gradient(cls: type[Segmenter], model_cfg: dict[str, Any], cfg: TrainConfig, train_ds: Frames,
                    val_ds: CocoFrames | None, resume: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Adam on the sum of the model's own losses; the model type makes the batches."""
    import torch
    from tqdm import tqdm

    from msseg_ros.core.segmentation.torch_base import TorchSegmenter

    t = cfg.options
    out = cfg.out
    device = resolve_device(t.device)
    rng = seed_everything(t.seed, t.deterministic_on(device))
    if t.threads:
        torch.set_num_threads(t.threads)
    seg = cls.from_config(model_cfg, device=device)
    if not isinstance(seg, TorchSegmenter):
        raise ConfigError(f"{cls.type_name} is trained by gradient steps but is no TorchSegmenter")
    net = seg.net
    held = freeze_parameters(net, t.freeze)
    if held:
        log(f"train.freeze: {held} parameters held at their starting values")
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=t.lr, weight_decay=t.weight_decay)
    # seed 002's critics, training only (train.adversarial; none when both weights are 0)
    adversary = seg.adversary(t.adversarial, t.seed) if t.adversarial.enabled else None
    critic_opt = torch.optim.Adam(adversary.parameters(), lr=t.lr, betas=(0.5, 0.999)) if adversary else None
    trained: list[tuple[str, torch.nn.Module, torch.optim.Optimizer]] = [("", net, opt)]
    if adversary is not None and critic_opt is not None:
        trained.append(("critic", adversary, critic_opt))
    state: dict[str, Any] = {"epoch": 0, "step": 0, "history": [], "best": None}
    if resume:
        state = _load_state(out, trained, log)
    elif t.init:
        _load_init(packaged(t.init), seg, log)
    fill = np.asarray(model_cfg.get("fill_values") or model_cfg["image_mean"], np.float32)
    # copy-paste and patchwork draw from the training set proper, not the rehearsal frames
    own = own_frames(train_ds)
    pool = [own[i] for i in range(min(len(own), 32))] if t.augment.patchwork or t.augment.copy_paste else []
    context = TrainingContext(train_ds, t, rng, fill, pool)
    per_epoch = epoch_size(train_ds, cfg.rehearsal_fraction)
    if per_epoch > len(own):
        log(f"data.rehearsal: {per_epoch - len(own)} frames of {len(train_ds) - len(own)} in {cfg.rehearsal_file} "
            f"join the {len(own)} training frames each epoch")
    n_batches = math.ceil(per_epoch / t.batch_size)
    planned = t.epochs * n_batches
    if t.max_steps:
        planned = min(planned, t.max_steps)
    budget_s = t.max_minutes * 60.0
    started = time.monotonic()

    def progress() -> float:
        p = state["step"] / max(planned, 1)
        return max(p, (time.monotonic() - started) / budget_s) if budget_s else p

    def out_of_budget() -> bool:
        return bool((t.max_steps and state["step"] >= t.max_steps)
                    or (budget_s and time.monotonic() - started >= budget_s))

    def prepare(indices: np.ndarray) -> Any:
        # runs in the prefetch thread, which alone draws from rng
        return seg.training_batch([int(i) for i in indices], context)

    bad_streak = 0  # non-finite steps in a row, across epochs
    for epoch in range(state["epoch"], t.epochs):
        net.train()
        losses, critic_losses = [], []
        batches = _prefetch(prepare, _batches(train_ds, per_epoch, t.batch_size, rng))
        bar = tqdm(batches, total=n_batches, desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch", leave=False)
        for batch in bar:
            if out_of_budget():
                break
            for _, _, optimizer in trained:
                for group in optimizer.param_groups:
                    group["lr"] = t.lr * lr_factor(t.lr_schedule, progress())
            try:
                loss, critic_loss = gradient_step(seg, batch, opt, t.precision, adversary, critic_opt,
                                                  t.clip_grad_norm)
            except NonFiniteStepError as exc:
                state["skipped_steps"] = state.get("skipped_steps", 0) + 1
                bad_streak += 1
                log(f"step {state['step'] + 1} skipped: {exc} ({state['skipped_steps']} skipped so far)")
                if bad_streak >= MAX_NONFINITE_STREAK:
                    bar.close()
                    batches.close()  # the prefetch thread
                    raise TrainingDivergedError(
                        f"training diverged: {bad_streak} steps in a row were not finite ({exc}); the "
                        f"last good weights are in {out / 'last.safetensors'} if an epoch ended. Lower "
                        f"train.lr, set train.clip_grad_norm (e.g. 10), or use train.precision=fp32") from None
                continue
            bad_streak = 0
            if critic_loss is not None:
                critic_losses.append(critic_loss)
            state["step"] += 1
            losses.append(loss)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        bar.close()
        batches.close()
        entry = {"epoch": epoch + 1, "step": state["step"], "train_loss": float(np.mean(losses)) if losses else None,
                 "lr": opt.param_groups[0]["lr"], "minutes": round((time.monotonic() - started) / 60, 2)}
        if critic_losses:
            entry["critic_loss"] = float(np.mean(critic_losses))
        if state.get("skipped_steps"):
            entry["skipped_steps"] = state["skipped_steps"]
        last_epoch = epoch + 1 == t.epochs or out_of_budget()
        if val_ds is not None and ((epoch + 1) % t.eval_every == 0 or last_epoch):
            from msseg_ros.core.learning.evaluate import evaluate

            net.eval()
            metrics = evaluate(seg, val_ds, limit=t.eval_images or None, timing=False)
            entry["val"] = metrics["summary"]
            score = metrics["summary"].get("segm_AP") or 0.0
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
        _save_state(out, trained, state)
        if out_of_budget():
            break
    if adversary is not None:
        adversary.close()
    seg.end_training()
    if not (out / "model.safetensors").exists():
        _save_model(out, seg, model_cfg, t)
    _plot_history(out, state["history"])
    return state


def freeze_parameters(net: Any, prefixes: str) -> int:
    """Hold the parameters whose names start with one of the comma-separated ``prefixes``
    (``backbone.body``: a Mask R-CNN's feature extractor) out of training; returns how many
    numbers are held. Raises ConfigError for a prefix that names no parameter, listing the
    network's top-level parts. Batch-norm statistics still follow the new data."""
    wanted = [w.strip() for w in prefixes.split(",") if w.strip()]
    named = dict(net.named_parameters())
    held = 0
    for prefix in wanted:
        hits = [n for n in named if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            parts = sorted({n.split(".")[0] for n in named})
            raise ConfigError(f"train.freeze {prefix!r} names no parameter; the network's parts: {', '.join(parts)}")
        for n in hits:
            if named[n].requires_grad:
                named[n].requires_grad_(False)
                held += named[n].numel()
    return held


#: steps in a row whose loss or gradient is not finite before a training stops
MAX_NONFINITE_STREAK = 10


class NonFiniteStepError(MssegError, ArithmeticError):
    """A step's loss or gradient was NaN or infinite; the step was not taken."""


class TrainingDivergedError(MssegError, ArithmeticError):
    """:data:`MAX_NONFINITE_STREAK` steps in a row were not finite."""


def gradient_step(seg: TorchSegmenter, batch: Any, opt: torch.optim.Optimizer, precision: str = "fp32",
                  adversary: Adversary | None = None, critic_opt: torch.optim.Optimizer | None = None,
                  clip_grad_norm: float = 0.0) -> tuple[float, float | None]:
    """One optimiser step on the sum of the model's losses (plus the adversary's
    generator losses), then, with an adversary, one step of its critics. ``precision``
    ``bf16`` runs the forward pass under bfloat16 autocast; ``clip_grad_norm`` > 0 caps
    the gradients' global L2 norm. Returns (loss, critic loss).

    Raises:
        NonFiniteStepError: the loss (naming its non-finite parts) or the gradient's norm
            is NaN or infinite; the weights are left as they were.
    """
    import torch

    with torch.autocast(seg.device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16"):
        parts = seg.training_losses(batch)
    if adversary is not None:
        parts.update(adversary.generator_losses())
    loss = functools.reduce(operator.add, (v.float() for v in parts.values()))  # sum() without 0 +
    opt.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        bad = {k: float(v.detach()) for k, v in parts.items() if not torch.isfinite(v)}
        raise NonFiniteStepError("loss " + ", ".join(f"{k}={v}" for k, v in bad.items()))
    loss.backward()
    params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, clip_grad_norm if clip_grad_norm > 0 else math.inf)
    if not torch.isfinite(norm):
        opt.zero_grad(set_to_none=True)
        raise NonFiniteStepError(f"gradient norm {float(norm)} (loss {loss.item():.4g})")
    opt.step()
    if adversary is None or critic_opt is None:
        return loss.item(), None
    critic_loss = adversary.critic_loss()
    critic_opt.zero_grad(set_to_none=True)
    critic_loss.backward()
    critic_opt.step()
    adversary.after_critic_step()
    return loss.item(), critic_loss.item()


def _save_model(out: Path, seg: TorchSegmenter, model_cfg: dict[str, Any], t: TrainOptions) -> None:
    sd = seg.net.state_dict()
    if t.save_dtype == "float16":
        sd = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    save_checkpoint(out / "model.safetensors", {k: v.detach().cpu() for k, v in sd.items()}, model_cfg)


def _save_state(out: Path, trained: list[tuple[str, torch.nn.Module, torch.optim.Optimizer]],
                state: dict[str, Any]) -> None:
    """``last.safetensors``: each trained module's tensors and its optimiser's state,
    under the module's prefix ("" for the model: ``model.*``, ``opt.*``; "critic":
    ``critic.model.*``, ``critic.opt.*``)."""
    tensors: dict[str, Any] = {}
    meta: dict[str, Any] = {"type": "training-state"}
    for prefix, module, optimizer in trained:
        p = f"{prefix}." if prefix else ""
        tensors.update({f"{p}model.{k}": v.detach().cpu() for k, v in module.state_dict().items()})
        osd = optimizer.state_dict()
        for idx, st in osd["state"].items():
            for name, v in st.items():
                tensors[f"{p}opt.{idx}.{name}"] = v.detach().cpu().reshape(-1) if v.ndim == 0 else v.detach().cpu()
        meta[f"{p}param_groups"] = osd["param_groups"]
    save_checkpoint(out / "last.safetensors", tensors, meta)
    (out / "state.json").write_text(json.dumps(state, indent=1))


def _inherit_normalisation(model_cfg: dict[str, Any], init: Path) -> dict[str, Any]:
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


def _read_init(init: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from msseg_ros.core.segmentation.checkpoint import CheckpointError

    try:
        return load_checkpoint(init)
    except CheckpointError as exc:
        raise ConfigError(f"train.init: {exc}") from None


def _load_init(init: Path, seg: TorchSegmenter, log: Callable[[str], None]) -> None:
    import torch

    from msseg_ros.core.segmentation.checkpoint import CheckpointError, check_matches

    arrays, head = split_arrays(_read_init(init)[0])
    if head:
        log("train.init: its class head is not carried over (refit it: msseg fit-class-head)")
    arrays, widened = seg.adapt_init(arrays)
    for key in widened:
        log(f"train.init: {key} widened with zero weights for the derived input channels")
    net = seg.net
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    try:
        check_matches(expected, arrays, f"train.init {str(init)!r}")
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    net.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32) if v.dtype == np.float16 else np.array(v))
                         for k, v in arrays.items()})
    log(f"initialised from {init}")


def _load_state(out: Path, trained: list[tuple[str, torch.nn.Module, torch.optim.Optimizer]],
                log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    if not (out / "last.safetensors").exists() or not (out / "state.json").exists():
        raise ConfigError(f"nothing to resume in {str(out)!r} (no last.safetensors / state.json)")
    arrays, meta = load_checkpoint(out / "last.safetensors")
    for prefix, module, optimizer in trained:
        p = f"{prefix}." if prefix else ""
        if f"{p}param_groups" not in meta:
            raise ConfigError(f"{str(out / 'last.safetensors')!r} holds no {prefix or 'model'} state to resume "
                              "(was it trained with other train.adversarial weights?)")
        module.load_state_dict({k[len(p) + 6:]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                                if k.startswith(f"{p}model.")})
        opt_state: dict[str, Any] = {}
        for k, v in arrays.items():
            if k.startswith(f"{p}opt."):
                _, idx, name = k[len(p):].split(".", 2)
                tv = torch.from_numpy(np.array(v))
                opt_state.setdefault(str(int(idx)), {})[name] = tv.reshape(()) if name == "step" else tv
        optimizer.load_state_dict({"state": opt_state, "param_groups": meta[f"{p}param_groups"]})
    state = json.loads((out / "state.json").read_text())
    log(f"resumed from epoch {state['epoch']}, step {state['step']}")
    return state


def _plot_history(out: Path, history: list[dict[str, Any]]) -> None:
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
