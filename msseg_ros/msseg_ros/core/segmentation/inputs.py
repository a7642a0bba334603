"""Derived input channels: physics a network should not have to learn from raw counts.

The dual-energy X-ray ratio. With transmissions ``T = F * exp(-(mu/rho) * rho * t)`` at two
energies (``F`` the full-scale count), ``R = ln(T_low / F) / ln(T_high / F)`` is the ratio
of the material's mass attenuation coefficients at the two energies: it does not depend on
the object's thickness, only on what it is made of. It is how dual-energy X-ray sorters
tell metals apart (seed 000 §2.1; the sim's materials, ``core/sim/materials.py``, give
Ni 3.23, Cu 3.47, Zn 3.56, Al 1.63 from the NIST XCOM coefficients). A convolutional
network fed linear counts normalised per channel has to approximate a quotient of two
logarithms to see it, and the shipped line Mask R-CNN did not: its main confusions were
laminated zinc against nickel and paint against copper, pairs whose VNIR spectra are alike
and whose ratios differ by 0.1-0.3 (docs/models.md).

:class:`DerivedInputConv` is a model's first convolution that computes the ratio from its
own (normalised) input and convolves it as one more channel, so that the exported graph,
every runtime and every caller still take the raw C-channel frame.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import nn

from msseg_ros.core.segmentation.base import ModelConfigError

#: defaults of a model config's ``dual_energy_ratio`` block (the sorting line's channels)
DUAL_ENERGY_DEFAULTS: dict[str, Any] = {
    "low": 1,  # channel index of the low-energy transmission, counts
    "high": 2,  # channel index of the high-energy transmission, counts
    "full_scale": 65535.0,  # counts of full transmission (seed 000 Fig. 5.1)
    # below this attenuation -ln(T_high / F) there is no object: the belt reads 0.007
    # with noise ~0.0023 (sim: 150 counts); 0.5 mm of aluminium reads 0.023. Ratio 0 there
    "min_attenuation": 0.02,
    # below this transmission T_low / F the low channel is noise (a thick object): ratio 0
    "min_transmission": 0.005,
    # the network sees (R - centre) * gain, clipped to +-clip (null: not clipped); 0 where
    # there is no ratio. The defaults spread the metals (Ni 3.23, Cu 3.47, Zn 3.56) over
    # -1.7 ... 1.6 and clip the light materials (1.1-1.9) to -3: a first convolution with
    # zero weights for the channel learns from it in a few hundred steps only when the
    # metals' 0.1-0.3 differences are that large (centre 2.4, gain 2, no clip: its weights
    # stayed at a tenth of the others' after 450 steps, docs/models.md)
    "centre": 3.4,
    "gain": 10.0,
    "clip": 3.0,
}


def validate_dual_energy(block: Any, channels: int) -> dict[str, Any] | None:
    """A model config's ``dual_energy_ratio`` block with its defaults filled in; None
    (the key absent or null): no derived channel."""
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise ModelConfigError(f"model config 'dual_energy_ratio' must be a mapping or null, got {block!r}")
    unknown = set(block) - set(DUAL_ENERGY_DEFAULTS)
    if unknown:
        raise ModelConfigError(f"model config 'dual_energy_ratio' has unknown key(s) {sorted(unknown)}; "
                               f"known: {', '.join(DUAL_ENERGY_DEFAULTS)}")
    out = {**DUAL_ENERGY_DEFAULTS, **block}
    for key in ("low", "high"):
        if not isinstance(out[key], int) or not 0 <= out[key] < channels:
            raise ModelConfigError(f"model config 'dual_energy_ratio.{key}' must be a channel index in "
                                   f"[0, {channels - 1}], got {out[key]!r}")
    if out["low"] == out["high"]:
        raise ModelConfigError("model config 'dual_energy_ratio': 'low' and 'high' are the same channel")
    for key in ("full_scale", "min_attenuation", "min_transmission", "gain"):
        v = out[key]
        if not isinstance(v, (int, float)) or not (v > 0 and np.isfinite(v)):
            raise ModelConfigError(f"model config 'dual_energy_ratio.{key}' must be > 0, got {v!r}")
    if not isinstance(out["centre"], (int, float)) or not np.isfinite(out["centre"]):
        raise ModelConfigError(f"model config 'dual_energy_ratio.centre' must be a number, got {out['centre']!r}")
    clip = out["clip"]
    if clip is not None and (not isinstance(clip, (int, float)) or not (clip > 0 and np.isfinite(clip))):
        raise ModelConfigError(f"model config 'dual_energy_ratio.clip' must be > 0 or null, got {clip!r}")
    return out


Array = TypeVar("Array", torch.Tensor, np.ndarray)


def dual_energy_ratio(low: Array, high: Array, full_scale: float, min_attenuation: float,
                      min_transmission: float) -> Array:
    """``ln(T_low / F) / ln(T_high / F)`` per pixel, in float32; 0 where the high energy is
    attenuated by less than ``min_attenuation`` (no object) or the low energy transmits less
    than ``min_transmission`` (the count is noise).

    Args:
        low, high: transmissions, counts, any equal shapes; torch tensors inside a network,
            numpy arrays elsewhere (torch's thread pool, woken beside a runtime's spinning
            threads, took 3 ms for the class head's 15,000 pixels).
    """
    on_torch = isinstance(low, torch.Tensor)
    ops: tuple[Any, Any, Any, Any] = ((torch.log, torch.where, torch.clamp, torch.zeros_like) if on_torch
                                      else (np.log, np.where, np.clip, np.zeros_like))
    log, where, clip, zeros_like = ops

    def transmission(counts: Any) -> Any:
        return clip((counts.float() if on_torch else counts.astype(np.float32)) / full_scale, 1e-6, 1.0)

    t_low, t_high = transmission(low), transmission(high)
    att_low, att_high = -log(t_low), -log(t_high)
    valid = (att_high >= min_attenuation) & (t_low >= min_transmission)
    return cast(Array, where(valid, att_low / clip(att_high, min_attenuation, None), zeros_like(att_low)))


class DerivedInputConv(nn.Conv2d):
    """A network's first convolution over its C normalised input channels plus the
    dual-energy ratio, ``(R - centre) * gain`` clipped to ``+-clip``, as channel C.

    Its input is what the convolution it replaces took: ``(x - mean) / std`` per channel;
    ``mean`` and ``std`` of the two X-ray channels (buffers, not saved: they come from the
    model config) undo that before the ratio. ``in_channels`` is C + 1.
    """

    xray_mean: torch.Tensor
    xray_std: torch.Tensor

    def __init__(self, conv: nn.Conv2d, ratio: Mapping[str, Any], image_mean: list[float],
                 image_std: list[float]) -> None:
        pair = tuple[int, int]
        super().__init__(conv.in_channels + 1, conv.out_channels, cast(pair, conv.kernel_size),
                         cast(pair, conv.stride), cast(pair, conv.padding), cast(pair, conv.dilation),
                         conv.groups, conv.bias is not None, conv.padding_mode)
        self.low, self.high = int(ratio["low"]), int(ratio["high"])
        self.ratio = {k: float(ratio[k]) for k in ("full_scale", "min_attenuation", "min_transmission",
                                                    "centre", "gain")}
        self.clip = None if ratio.get("clip") is None else float(ratio["clip"])
        idx = [self.low, self.high]
        self.register_buffer("xray_mean", torch.tensor([image_mean[i] for i in idx]).view(1, 2, 1, 1),
                             persistent=False)
        self.register_buffer("xray_std", torch.tensor([image_std[i] for i in idx]).view(1, 2, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, out, H', W')
        counts = x[:, [self.low, self.high]] * self.xray_std + self.xray_mean
        r = self.ratio
        ratio = dual_energy_ratio(counts[:, :1], counts[:, 1:], r["full_scale"], r["min_attenuation"],
                                  r["min_transmission"])
        code = (ratio - r["centre"]) * r["gain"]
        if self.clip is not None:
            code = code.clamp(-self.clip, self.clip)
        derived = torch.where(ratio > 0, code, torch.zeros_like(ratio))
        return super().forward(torch.cat([x, derived.to(x.dtype)], dim=1))


def widen_input_weight(weight: np.ndarray, channels: int) -> np.ndarray:
    """A first convolution's weight (out, C, kh, kw) widened to ``channels`` inputs with
    zeros: the new inputs start unused, so the widened network computes exactly what the
    checkpoint did until training changes them."""
    extra = channels - weight.shape[1]
    if extra <= 0:
        return weight
    pad = np.zeros((weight.shape[0], extra, *weight.shape[2:]), weight.dtype)
    return np.concatenate([weight, pad], axis=1)
