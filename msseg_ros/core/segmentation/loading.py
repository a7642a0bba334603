"""Build segmenters from a config, a checkpoint path, or a shipped model's name.

Shipped models live in ``config/models/NAME.safetensors`` (with ``NAME.yaml``, and a
model card ``NAME.md``). Importing this module registers every model type.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from msseg_ros.core.segmentation import bicameral, classic, maskrcnn  # noqa: F401 - registers the types
from msseg_ros.core.segmentation.base import SEGMENTERS, ModelConfigError, Segmenter
from msseg_ros.core.segmentation.checkpoint import CheckpointError, load_checkpoint

DEFAULTS = {"maskrcnn": maskrcnn.DEFAULT_CONFIG, "bicameral": bicameral.DEFAULT_CONFIG,
            "classic": classic.DEFAULT_CONFIG}


def models_dir() -> Path:
    from msseg_ros.graph import share_dir

    return share_dir() / "config" / "models"


def shipped_models() -> list[str]:
    d = models_dir()
    return sorted(p.stem for p in d.glob("*.safetensors")) if d.is_dir() else []


def resolve_weights(name_or_path: str) -> Path:
    """A checkpoint path, or the path of a shipped model called ``name_or_path``."""
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or p.exists():
        return p
    shipped = models_dir() / f"{name_or_path}.safetensors"
    if shipped.exists():
        return shipped
    raise CheckpointError(
        f"no checkpoint {name_or_path!r}: not a file, nor a shipped model "
        f"({', '.join(shipped_models()) or 'none shipped'})"
    )


def load_segmenter(weights: str | None = None, config: dict | None = None, device: str = "cpu",
                   overrides: dict | None = None) -> Segmenter:
    """A ready segmenter.

    Args:
        weights: checkpoint path or shipped model name; its config is used.
        config: a model config (needed without weights; merged over the checkpoint's).
        overrides: config keys to change at load time (e.g. score_threshold, alpha).
    """
    arrays = None
    cfg: dict = {}
    if weights:
        arrays, cfg = load_checkpoint(resolve_weights(weights))
    if config:
        if cfg and config.get("type", cfg["type"]) != cfg["type"]:
            raise ModelConfigError(
                f"the checkpoint is a {cfg['type']!r} model but the config asks for {config['type']!r}"
            )
        cfg = {**cfg, **config}
    cfg = {**cfg, **(overrides or {})}
    if "type" not in cfg:
        raise ModelConfigError("no model type: give a checkpoint or a config with 'type'")
    cls = SEGMENTERS.get(cfg["type"])
    return cls.from_config(cfg, arrays, device)


def parameter_counts(seg: Segmenter) -> tuple[int, int]:
    """(total, trainable) parameters."""
    net = getattr(seg, "net", None)
    if net is not None:
        total = sum(p.numel() for p in net.parameters())
        return total, sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = int(sum(np.asarray(v).size for v in seg.state_dict().values()))
    return total, total


def config_from_params(p: dict) -> tuple[str, dict]:
    """Node parameters (flat, e.g. ``model.type``) -> (weights, config overrides).

    An empty ``model.weights`` means the shipped model ``{cell}_{model.type}``.
    """
    kind = p["model.type"]
    weights = p["model.weights"] or f"{p['cell']}_{kind}"
    cfg: dict = {"type": kind}
    if p.get("model.classes"):
        cfg["classes"] = list(p["model.classes"])
    if kind == "bicameral":
        cfg.update(alpha=p["bicameral.alpha"], beta=p["bicameral.beta"], patch=p["bicameral.patch"])
    elif kind == "maskrcnn":
        cfg.update(mask_threshold=p["maskrcnn.mask_threshold"],
                   score_threshold=min(p["model.score_threshold"], 0.05))  # filter after, not in the net
    elif kind == "classic":
        cfg.update(height_threshold_mm=p["classic.height_threshold_mm"], min_area_px=p["classic.min_area_px"])
    return weights, cfg


def segmenter_from_params(p: dict) -> Segmenter:
    """Load the model that node parameters describe (raises a specific MssegError)."""
    from msseg_ros.core.segmentation.base import resolve_device

    weights, cfg = config_from_params(p)
    seg = load_segmenter(weights, config=cfg, device=resolve_device(p["model.device"]))
    if p.get("model.classes") and len(p["model.classes"]) != len(seg.classes):
        raise ModelConfigError(f"model.classes has {len(p['model.classes'])} names; the model has {len(seg.classes)}")
    return seg
