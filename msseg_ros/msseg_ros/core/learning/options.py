"""Typed training options: the ``train`` section of a training config, validated once.

A model type's training hooks (see :class:`msseg_ros.core.segmentation.base.Segmenter`)
receive a :class:`TrainingContext`, never the raw config.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from msseg_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from msseg_ros.core.learning.data import Frames


@dataclass(frozen=True)
class Augment:
    """Probabilities of each augmentation per training sample (seed 000 §7.3; copy_paste,
    scale and photometric: Ghiasi et al. 2021 and common practice, see
    core/learning/augment.py)."""

    hflip: float = 0.5
    vflip: float = 0.5
    affine: float = 0.0
    patchwork: float = 0.0
    copy_paste: float = 0.0
    scale: float = 0.0
    photometric: float = 0.0


@dataclass(frozen=True)
class Adversarial:
    """Weights of the adversarial losses (seed 002, Chapter 3) added to the model's own;
    0 turns one off, both 0 (the default) is plain training. Only model types with
    critics accept them (Mask R-CNN: ``box``, eq 3.2, and ``mask``, eq 3.4)."""

    box: float = 0.0
    mask: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.box > 0 or self.mask > 0


@dataclass(frozen=True)
class TrainOptions:
    """The ``train`` section. Defaults follow the seeds: Adam, lr 1e-4, weight decay 1e-4
    (seed 000 Table 7.6, seed 001 §4.1.3).

    Attributes:
        epochs: passes over the training set.
        batch_size: images per optimiser step.
        lr: the peak learning rate.
        weight_decay: Adam's L2 weight decay.
        seed: seeds Python, numpy and torch; a seeded CPU run is repeatable.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        eval_every: evaluate on the validation set every this many epochs.
        max_steps: stop after this many optimiser steps (0: no limit).
        max_minutes: wall-clock budget, minutes (0: none); the last eval and save still happen.
        init: a checkpoint to start from (fine-tuning); its normalisation is kept.
        lr_schedule: ``constant``, or ``cosine`` (2 % linear warm-up, cosine to 5 % of lr).
        threads: torch's intra-op threads (0: torch's default).
        crop: random square crops of this size, px (0: whole images); models that crop.
        save_dtype: ``float32``, or ``float16`` for small shipped checkpoints.
        precision: ``fp32``, or ``bf16``: the forward pass under bfloat16 autocast (losses
            in float32); faster where the CPU has bf16 instructions (AVX512-BF16, AMX) or
            on a GPU; see benchmarks/train_step.py.
        pixels_per_class: pixels sampled per class by models that are fitted (classic).
        augment: augmentation probabilities.
        adversarial: adversarial loss weights (off by default; see :class:`Adversarial`).
        eval_images: validation images per evaluation (0: all).
        freeze: comma-separated parameter-name prefixes held at their starting values
            (``backbone.body``: fine-tune a Mask R-CNN's heads and FPN only); empty: none.
        clip_grad_norm: the gradients' global L2 norm is scaled down to at most this
            before each step (0: no clipping). A step whose loss or gradient is not
            finite is skipped in any case (counted; a run of them stops the training).
        deterministic: ``auto`` (deterministic kernels on the CPU only), ``on`` or ``off``.
            On CUDA, torch's deterministic mode sends torchvision's RoI align to its
            pure-PyTorch fallback, which made a Mask R-CNN step several seconds on an H200
            (docs/models.md); ``auto`` leaves CUDA runs seeded but not bit-repeatable.
    """

    epochs: int = 10
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1
    max_steps: int = 0
    max_minutes: float = 0.0
    init: str = ""
    lr_schedule: str = "constant"
    threads: int = 0
    crop: int = 0
    save_dtype: str = "float32"
    precision: str = "fp32"
    pixels_per_class: int = 4000
    augment: Augment = field(default_factory=Augment)
    adversarial: Adversarial = field(default_factory=Adversarial)
    eval_images: int = 0
    deterministic: str = "auto"
    freeze: str = ""
    clip_grad_norm: float = 0.0

    def deterministic_on(self, device: str) -> bool:
        """Whether torch's deterministic algorithms are on for a run on ``device``."""
        return self.deterministic == "on" or (self.deterministic == "auto" and device.split(":")[0] == "cpu")

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> TrainOptions:
        """Validate a ``train`` section (unknown keys, types and ranges are refused)."""
        values = dict(values or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown train option {unknown[0]!r}; options: {', '.join(sorted(known))}")
        aug = _section("augment", values.pop("augment", None), Augment)
        adv = _section("adversarial", values.pop("adversarial", None), Adversarial)
        typed: dict[str, Any] = {}
        defaults = cls()
        for name, raw in values.items():
            kind = type(getattr(defaults, name))
            typed[name] = _coerce(f"train.{name}", raw, kind)
        augment = Augment(**{k: _coerce(f"train.augment.{k}", v, float) for k, v in aug.items()})
        adversarial = Adversarial(**{k: _coerce(f"train.adversarial.{k}", v, float) for k, v in adv.items()})
        opts = cls(**typed, augment=augment, adversarial=adversarial)
        opts.check()
        return opts

    def check(self) -> None:
        """Ranges and choices; raises ConfigError naming the option."""
        positive: dict[str, float] = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_every": self.eval_every}
        for name, v in positive.items():
            if v < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {v}")
        non_negative = {"lr": self.lr, "weight_decay": self.weight_decay, "max_steps": self.max_steps,
                        "max_minutes": self.max_minutes, "threads": self.threads, "crop": self.crop,
                        "eval_images": self.eval_images, "pixels_per_class": self.pixels_per_class,
                        "clip_grad_norm": self.clip_grad_norm}
        for name, v in non_negative.items():
            if not v >= 0:
                raise ConfigError(f"train.{name} must be >= 0, got {v}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"train.lr_schedule must be constant or cosine, got {self.lr_schedule!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"train.precision must be fp32 or bf16, got {self.precision!r}")
        if self.deterministic not in ("auto", "on", "off"):
            raise ConfigError(f"train.deterministic must be auto, on or off, got {self.deterministic!r}")
        if self.save_dtype not in ("float32", "float16"):
            raise ConfigError(f"train.save_dtype must be float32 or float16, got {self.save_dtype!r}")
        for name in ("hflip", "vflip", "affine", "patchwork", "copy_paste", "scale", "photometric"):
            p = getattr(self.augment, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"train.augment.{name} is a probability in [0, 1], got {p}")
        for name in ("box", "mask"):
            w = getattr(self.adversarial, name)
            if not w >= 0:
                raise ConfigError(f"train.adversarial.{name} is a loss weight >= 0 (0: off), got {w}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _section(name: str, value: Any, kind: type) -> dict[str, Any]:
    """A nested ``train`` section (a mapping of ``kind``'s fields), checked for unknown keys."""
    value = value or {}
    if not isinstance(value, dict):
        raise ConfigError(f"train.{name} must be a mapping, got {value!r}")
    known = {f.name for f in dataclasses.fields(kind)}
    bad = sorted(set(value) - known)
    if bad:
        raise ConfigError(f"unknown train.{name} option {bad[0]!r}; options: {', '.join(sorted(known))}")
    return dict(value)


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):  # YAML reads 1e-4 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{key} must be {kind.__name__}, got {value!r}")
    return value


@dataclass
class TrainingContext:
    """What a model type's ``training_batch`` gets besides the sample indices.

    Attributes:
        dataset: the training set.
        options: the train section.
        rng: the one generator a seeded run draws from (in the batch-preparing thread).
        fill: (C,) the background value of each input channel (augmentations fill with it).
        pool: samples for patchwork and copy-paste augmentation (empty when both are off).
    """

    dataset: Frames
    options: TrainOptions
    rng: np.random.Generator
    fill: np.ndarray
    pool: list[tuple[np.ndarray, dict[str, Any]]] = field(default_factory=list)
