"""What the torch models share: building the network, loading weights, the device, and
the hooks of gradient training."""
from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from msseg_ros.core.segmentation.base import (
    ExportError,
    ModelConfigError,
    Segmenter,
    require,
    resolve_device,
)
from msseg_ros.core.segmentation.checkpoint import check_matches
from msseg_ros.core.segmentation.runtimes import Engine, ModuleEngine

if TYPE_CHECKING:
    from msseg_ros.core.learning.options import Adversarial, TrainingContext


#: rows copied at a time by :func:`channels_first` (a band of a line frame stays in cache)
CHW_BAND_ROWS = 16


def channels_first(frame: np.ndarray) -> torch.Tensor:
    """(H, W, C) array -> (C, H, W) contiguous tensor, same dtype. Copied a band of rows at
    a time: numpy's whole-frame transpose strides across all of memory (250 x 274 x 11
    float32: 1.2 ms against 0.4)."""
    H = frame.shape[0]
    out = np.empty((frame.shape[2], H, frame.shape[1]), frame.dtype)
    for r in range(0, H, CHW_BAND_ROWS):
        out[:, r:r + CHW_BAND_ROWS] = frame[r:r + CHW_BAND_ROWS].transpose(2, 0, 1)
    return torch.from_numpy(out)


def require_normalisation(cfg: dict[str, Any], channels: int) -> None:
    """``image_mean`` and ``image_std`` have one value per input channel; std > 0."""
    for key in ("image_mean", "image_std"):
        v = require(cfg, key, list)
        if len(v) != channels:
            raise ModelConfigError(f"model config {key!r} has {len(v)} values for {channels} input channels")
    if any(s <= 0 for s in cfg["image_std"]):
        raise ModelConfigError("model config 'image_std' values must be > 0")


class NormalisedModule(torch.nn.Module):
    """Base of the modules a model exports: ``net`` behind the per-channel normalisation
    (``mean``, ``std``: (1, C, 1, 1) buffers), so that the exported graph takes raw frames."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: torch.nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Adversary(torch.nn.Module, abc.ABC):
    """Training-only critics of a model's outputs (``train.adversarial``; seed 002).

    The trainer calls, per step: the model's ``training_losses`` (the adversary sees its
    intermediate tensors through hooks), then :meth:`generator_losses` (added to the
    model's losses, weighted), then, after the model's optimiser step,
    :meth:`critic_loss` (the critics' own loss, on detached inputs; the trainer steps the
    critics' optimiser) and :meth:`after_critic_step`. The critics never reach a
    model checkpoint: a model trained with them loads and runs like any other.
    """

    @abc.abstractmethod
    def generator_losses(self) -> dict[str, torch.Tensor]:
        """Named, weighted adversarial losses of the last ``training_losses`` call, with
        gradients into the model's heads."""

    @abc.abstractmethod
    def critic_loss(self) -> torch.Tensor:
        """The critics' loss on the inputs of the last :meth:`generator_losses` (detached)."""

    def after_critic_step(self) -> None:
        """Called after each critic optimiser step (e.g. weight clipping)."""

    def close(self) -> None:
        """Remove the hooks from the model."""


class TorchSegmenter(Segmenter):
    """A segmenter around ``net`` (a torch module). Subclasses define ``validate_config``,
    ``build_net``, ``describe`` and the two training hooks; NaN pixels are filled with
    ``image_mean``.

    Training (``msseg train``): ``training_batch`` turns the COCO samples ``indices`` into
    one batch of CPU tensors (inputs and targets; it runs in a prefetch thread and alone
    draws from ``context.rng``), and ``training_losses`` runs the network in training mode
    on that batch and returns its named losses, which the trainer sums.
    """

    def __init__(self, config: dict[str, Any], net: torch.nn.Module, device: str) -> None:
        super().__init__(config, fill_values=np.asarray(config["image_mean"], np.float32))
        self.net = net.to(device).eval()
        self._device = device
        self._runtime = "torch"
        self._engine: Engine | None = None

    @property
    def runtime(self) -> str:
        return self._runtime

    @property
    def engine(self) -> Engine:
        """The exported forward pass on the runtime in use. Until :meth:`use_runtime`,
        the live module (it follows training); after it, a snapshot of the weights of
        that moment (``load_segmenter`` takes one for every runtime, torch included)."""
        if self._engine is None:
            self._engine = ModuleEngine(self.export_spec().module)
        return self._engine

    def use_runtime(self, name: str, cache_dir: Path | None = None) -> None:
        """Run the exported forward pass on runtime ``name`` (``RUNTIMES``), built from the
        weights as they are now (later changes to ``net`` do not reach it); other
        runtimes than torch run on the CPU. Exported files are cached in ``cache_dir`` (default:
        the user cache), keyed by the config and weights.

        Raises:
            RuntimeUnavailableError: the runtime is not installed, or not for this device.
            ExportError: this model cannot be exported to it.
        """
        from msseg_ros.core.segmentation.base import RUNTIMES
        from msseg_ros.core.segmentation.runtimes import RuntimeUnavailableError, user_cache_dir

        if name not in RUNTIMES:
            raise ModelConfigError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES.names())}")
        cls = RUNTIMES.get(name)
        reason = cls.unavailable_reason()
        if reason:
            raise RuntimeUnavailableError(f"runtime {name!r} is not available: {reason}")
        if name != "torch" and self._device != "cpu":
            raise RuntimeUnavailableError(f"runtime {name!r} runs on the CPU here; the model is on {self._device}")
        if name == "torch":
            try:
                self._engine = cls().build(self.export_spec())
            except ExportError:
                self._engine = None  # no export hook: the model's predict runs its own net
            self._runtime = name
            return
        spec = self.export_spec()
        self._engine = cls().build(spec, self.export_key(), cache_dir or user_cache_dir() / "runtimes")
        self._runtime = name

    def export_key(self) -> str:
        """Names this model's exported files: its type and a hash of config and weights."""
        from msseg_ros.core.segmentation.runtimes import model_key

        return f"{self.type_name}-{model_key(self.config, self.state_dict())}"

    def engine_inputs(self, frames: Iterable[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
        """What the exported forward pass receives for each (H, W, C) frame, as ``predict``
        prepares it (NaN fill, padding): int8 calibration data."""
        recorded: list[tuple[np.ndarray, ...]] = []
        engine = self.engine

        def record(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            recorded.append(tuple(np.array(x.detach().cpu().numpy()) for x in inputs))
            return engine(*inputs)

        self._engine = record
        try:
            for frame in frames:
                self(frame)
        finally:
            self._engine = engine
        return recorded

    def quantize_int8(self, frames: Iterable[np.ndarray], cache_dir: Path | None = None) -> Path:
        """Calibrate and write the int8 model of runtime ``onnxruntime_int8`` on ``frames``
        (``runtimes.quantize``); returns its path. ``cache_dir`` as for :meth:`use_runtime`."""
        from msseg_ros.core.segmentation.runtimes import quantize, user_cache_dir

        calibration = self.engine_inputs(frames)
        return quantize(self.export_spec(), self.export_key(), cache_dir or user_cache_dir() / "runtimes",
                        calibration)

    @property
    def device(self) -> str:
        return self._device

    @classmethod
    @abc.abstractmethod
    def build_net(cls, cfg: dict[str, Any]) -> torch.nn.Module:
        """The network of a validated config, with fresh weights."""

    @classmethod
    def describe(cls, cfg: dict[str, Any]) -> str:
        """A short name for error messages, e.g. "(bicameral F25)"."""
        return f"({cls.type_name})"

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: dict[str, Any] | None = None,
                    device: str = "cpu") -> TorchSegmenter:
        cfg = cls.validate_config(config)
        net = cls.build_net(cfg)
        if weights is not None:
            expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
            check_matches(expected, weights, cls.describe(cfg))
            # float16 checkpoints (the shipped ones) load as float32
            net.load_state_dict({k: torch.as_tensor(np.asarray(v, np.float32) if v.dtype == np.float16 else v)
                                 for k, v in weights.items()})
        return cls(cfg, net, resolve_device(device))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    def adapt_init(self, arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
        """A ``train.init`` checkpoint's arrays fitted to this network where the network
        grew on purpose: a first convolution that now also takes derived input channels
        (:class:`~msseg_ros.core.segmentation.inputs.DerivedInputConv`) gets zero weights
        for them. Returns the arrays and what was changed (names), for the log."""
        from msseg_ros.core.segmentation.inputs import DerivedInputConv, widen_input_weight

        changed = []
        for name, module in self.net.named_modules():
            key = f"{name}.weight"
            if isinstance(module, DerivedInputConv) and key in arrays \
                    and arrays[key].shape[1] < module.in_channels:
                arrays = {**arrays, key: widen_input_weight(arrays[key], module.in_channels)}
                changed.append(key)
        return arrays, changed

    def parameter_counts(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.net.parameters())
        return total, sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    @abc.abstractmethod
    def training_batch(self, indices: Sequence[int], context: TrainingContext) -> Any:
        """Samples ``indices`` of ``context.dataset`` as one batch of CPU tensors."""

    @abc.abstractmethod
    def training_losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """Named scalar losses of ``batch`` (moved to the model's device here)."""

    def end_training(self) -> None:
        """Undo what ``training_losses`` attached to the network (hooks); the trainer
        calls it once training stops. Training may start again after it."""

    def adversary(self, weights: Adversarial, seed: int) -> Adversary:
        """Critics for adversarial training with loss ``weights``, initialised from
        ``seed`` (not from torch's global generator, so that the model's own draws are
        those of plain training).

        Raises:
            ModelConfigError: this model type has no adversarial training.
        """
        raise ModelConfigError(f"train.adversarial: model type {self.type_name!r} has no adversarial "
                               "training (maskrcnn has)")
