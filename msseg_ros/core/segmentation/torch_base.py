"""What the torch models share: building the network, loading weights, the device."""
from __future__ import annotations

import numpy as np
import torch

from msseg_ros.core.segmentation.base import ModelConfigError, Segmenter, require, resolve_device
from msseg_ros.core.segmentation.checkpoint import check_matches


def require_normalisation(cfg: dict, channels: int) -> None:
    """``image_mean`` and ``image_std`` have one value per input channel; std > 0."""
    for key in ("image_mean", "image_std"):
        v = require(cfg, key, list)
        if len(v) != channels:
            raise ModelConfigError(f"model config {key!r} has {len(v)} values for {channels} input channels")
    if any(s <= 0 for s in cfg["image_std"]):
        raise ModelConfigError("model config 'image_std' values must be > 0")


class TorchSegmenter(Segmenter):
    """A segmenter around ``net`` (a torch module). Subclasses define ``validate_config``,
    ``build_net`` and ``describe``; NaN pixels are filled with ``image_mean``."""

    def __init__(self, config: dict, net: torch.nn.Module, device: str) -> None:
        super().__init__(config, fill_values=np.asarray(config["image_mean"], np.float32))
        self.net = net.to(device).eval()
        self._device = device

    @property
    def device(self) -> str:
        return self._device

    @classmethod
    def describe(cls, cfg: dict) -> str:
        """A short name for error messages, e.g. "(bicameral F25)"."""
        return f"({cls.type_name})"

    @classmethod
    def from_config(cls, config: dict, weights: dict | None = None, device: str = "cpu"):
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
