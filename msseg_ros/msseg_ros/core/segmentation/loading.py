"""Build segmenters from a config, a checkpoint path, or a shipped model's name.

Shipped models live in ``config/models/NAME.safetensors`` (with ``NAME.yaml``, and a
model card ``NAME.md``). Model types come from the registry (``base.SEGMENTERS``); a
type's module is imported when a model of that type is first built.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msseg_ros.core.paths import packaged, share_dir
from msseg_ros.core.segmentation.base import (
    SEGMENTERS,
    ModelConfigError,
    Segmenter,
    operating_threshold,
    resolve_device,
)
from msseg_ros.core.segmentation.checkpoint import CheckpointError, load_checkpoint
from msseg_ros.core.segmentation.class_head import ClassHead, split_arrays


@dataclass(frozen=True)
class ModelSelection:
    """The model a segmenter node's parameters select.

    Attributes:
        cell: the cell (names the shipped model ``{cell}_{type}`` when ``weights`` is empty).
        type: a registered model type.
        weights: a checkpoint path or shipped model name; empty: the cell's shipped model.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        score_threshold: instances scoring lower are dropped (by the node, after the model);
            negative: the model's ``operating_threshold``.
        classes: class names that must match the model's (empty: the checkpoint's).
        options: the type's own options (its parameter group, prefix removed).
        runtime: the inference runtime (``RUNTIMES``: torch, onnxruntime).
        merge_touching_px: instances of one class touching along this many pixel edges
            are joined (``base.merge_touching``); 0: off; -1: the checkpoint's setting.
        merge_gap_px: background gap, px, two joined pieces may have between them; -1: the
            checkpoint's setting.
        class_head: run the checkpoint's class head, when it has one; False: the
            network's own classes.
    """

    cell: str
    type: str
    weights: str = ""
    device: str = "cpu"
    score_threshold: float = -1.0
    classes: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    runtime: str = "torch"
    merge_touching_px: int = -1
    merge_gap_px: int = -1
    class_head: bool = True

    @property
    def weights_name(self) -> str:
        return self.weights or f"{self.cell}_{self.type}"

    def model_config(self) -> dict[str, Any]:
        """The config keys this selection sets over the checkpoint's."""
        cls = SEGMENTERS.get(self.type)
        cfg: dict[str, Any] = {"type": self.type, **cls.config_from_parameters(self.options, self.score_threshold)}
        for key, value in (("merge_touching_px", self.merge_touching_px), ("merge_gap_px", self.merge_gap_px)):
            if value >= 0:  # -1: keep the checkpoint's
                cfg[key] = value
        if self.classes:
            cfg["classes"] = list(self.classes)
        if not self.class_head:
            cfg["class_head"] = None
        return cfg


def models_dir() -> Path:
    return share_dir() / "config" / "models"


def shipped_models() -> list[str]:
    d = models_dir()
    return sorted(p.stem for p in d.glob("*.safetensors")) if d.is_dir() else []


def resolve_weights(name_or_path: str) -> Path:
    """A checkpoint path (see :func:`packaged`), or the path of a shipped model called
    ``name_or_path``."""
    p = packaged(name_or_path)
    if p.suffix == ".safetensors" or p.exists():
        return p
    shipped = models_dir() / f"{name_or_path}.safetensors"
    if shipped.exists():
        return shipped
    raise CheckpointError(
        f"no checkpoint {name_or_path!r}: not a file, nor a shipped model "
        f"({', '.join(shipped_models()) or 'none shipped'})"
    )


def load_segmenter(weights: str | None = None, config: dict[str, Any] | None = None, device: str = "cpu",
                   overrides: dict[str, Any] | None = None, runtime: str = "torch") -> Segmenter:
    """A ready segmenter.

    Args:
        weights: checkpoint path or shipped model name; its config is used.
        config: a model config (needed without weights; merged over the checkpoint's).
        overrides: config keys to change at load time (e.g. score_threshold, alpha).
        runtime: the inference runtime (``RUNTIMES``); exported files are cached next to
            the checkpoint (see ``runtimes.engine_cache_dir``).
    """
    from msseg_ros.core.segmentation.base import RUNTIMES

    if runtime not in RUNTIMES:
        raise ModelConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES.names())}")
    arrays = None
    cfg: dict[str, Any] = {}
    path = None
    if weights:
        path = resolve_weights(weights)
        arrays, cfg = load_checkpoint(path)
    if config:
        if cfg and config.get("type", cfg["type"]) != cfg["type"]:
            raise ModelConfigError(
                f"the checkpoint is a {cfg['type']!r} model but the config asks for {config['type']!r}"
            )
        cfg = {**cfg, **config}
    cfg = {**cfg, **(overrides or {})}
    if "type" not in cfg:
        raise ModelConfigError("no model type: give a checkpoint or a config with 'type'")
    head_arrays: dict[str, Any] = {}
    if arrays is not None:
        arrays, head_arrays = split_arrays(arrays)
    cls = SEGMENTERS.get(cfg["type"])
    seg = cls.from_config(cfg, arrays, device)
    if cfg.get("class_head") is not None:  # null (e.g. --set class_head=null): the model's own classes
        seg.class_head = ClassHead.from_arrays(head_arrays, cfg["class_head"], seg.in_channels, len(seg.classes))
    from msseg_ros.core.segmentation.runtimes import engine_cache_dir

    # every runtime, torch too: a frozen engine (torch folds BatchNorm into its convolutions)
    seg.use_runtime(runtime, engine_cache_dir(path))
    return seg


def load_selected(selection: ModelSelection) -> Segmenter:
    """Load the model a node's parameters select, on its runtime (raises a specific
    MssegError)."""
    seg = load_segmenter(selection.weights_name, config=selection.model_config(),
                         device=resolve_device(selection.device), runtime=selection.runtime)
    operating_threshold(seg.config)  # a bad stored value is refused at load
    if selection.classes and len(selection.classes) != len(seg.classes):
        raise ModelConfigError(f"model.classes has {len(selection.classes)} names; the model has {len(seg.classes)}")
    return seg
