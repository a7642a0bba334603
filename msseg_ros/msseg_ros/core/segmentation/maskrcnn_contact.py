"""Mask R-CNN's mask loss, weighted where two instances meet (training only).

In a bin pile an object often lies draped over a neighbour; the part lying on the
neighbour is the object's, yet its edge there reads to a mask head like the neighbour's.
The bin model learnt to leave that part out, and the grasp selector's depth cover test
then takes the raised part for a cover ("Bin picks: why free objects look covered",
docs/models.md). Here the pixels within ``px`` of where two ground-truth instances meet,
on either side, count ``1 + weight`` times in the mask loss instead of once: the idea of
U-Net's border weights between touching cells (Ronneberger et al. 2015, eq. 2), applied to
the 28 x 28 mask targets of Mask R-CNN.

The loss reads the training forward pass through hooks and never changes it:
``net.transform`` (the targets as resized for the network), ``mask_roi_pool`` (the
positive proposals, per image) and ``mask_predictor`` (their logits). Each positive
proposal's ground truth is the instance it overlaps most (IoU), as torchvision's matcher
assigns it.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.roi_heads import project_masks_on_boxes
from torchvision.ops import box_iou


def contact_bands(masks: torch.Tensor, px: int) -> torch.Tensor:
    """Where instances meet: for each instance, its own pixels within ``px`` of another
    instance's and the other instances' pixels within ``px`` of its own.

    Args:
        masks: (N, H, W), nonzero = the instance's pixels.
        px: band half-width, px (Chebyshev distance), >= 1.
    Returns:
        (N, H, W) bool.
    """
    if px < 1:
        raise ValueError(f"contact band width must be >= 1 px, got {px}")
    own = masks > 0
    if len(masks) < 2:
        return torch.zeros_like(own)
    m = own.float()
    grown = F.max_pool2d(m[None], 2 * px + 1, stride=1, padding=px)[0]  # (N, H, W)
    others = (m.sum(0)[None] - m) > 0  # another instance's pixel
    near_others = (grown.sum(0)[None] - grown) > 0  # within px of another instance
    return (own & near_others) | (others & (grown > 0))


class MaskContactLoss:
    """The extra mask loss of one Mask R-CNN (see the module docstring).

    Call :meth:`loss` after each training forward pass of ``net``; it is added to the
    network's own losses as ``loss_mask_contact``. With torchvision's mask loss (the mean
    binary cross-entropy over every positive proposal's 28 x 28 pixels) the sum weighs each
    band pixel ``1 + weight`` times.

    Args:
        net: the Mask R-CNN being trained.
        weight: extra weight of a band pixel, > 0.
        px: band half-width in the network's input pixels (after its resize), >= 1.
    """

    def __init__(self, net: MaskRCNN, weight: float, px: int) -> None:
        if weight <= 0:
            raise ValueError(f"contact weight must be > 0, got {weight}")
        if px < 1:
            raise ValueError(f"contact band width must be >= 1 px, got {px}")
        self.weight, self.px = float(weight), int(px)
        self._seen: dict[str, Any] = {}
        heads = net.roi_heads
        self._handles = [
            net.transform.register_forward_hook(self._on_transform),
            heads.mask_roi_pool.register_forward_hook(self._on_mask_pool),
            heads.mask_predictor.register_forward_hook(self._on_logits),
        ]

    def _on_transform(self, module: nn.Module, args: Any, output: Any) -> None:
        self._seen = {"targets": output[1]}  # a new forward pass: forget the last one

    def _on_mask_pool(self, module: nn.Module, args: Any, output: Any) -> None:
        self._seen["proposals"] = args[1]

    def _on_logits(self, module: nn.Module, args: Any, output: Any) -> None:
        self._seen["logits"] = output

    def loss(self) -> torch.Tensor:
        """The weighted sum over the band pixels of the last training forward pass,
        over all mask-loss pixels. Raises RuntimeError before a training forward pass."""
        seen, self._seen = self._seen, {}
        if seen.get("targets") is None or "logits" not in seen:
            raise RuntimeError("MaskContactLoss.loss() before a training forward pass of the model")
        logits = seen["logits"]
        size = logits.shape[-1]
        picked, truths, weights = [], [], []
        start = 0
        for target, boxes in zip(seen["targets"], seen["proposals"], strict=True):
            n = len(boxes)
            if n == 0:
                continue
            rows = logits[start:start + n]
            start += n
            if len(target["boxes"]) == 0:
                continue
            matched = box_iou(boxes, target["boxes"]).argmax(1)
            labels = target["labels"][matched]
            picked.append(rows[torch.arange(n, device=rows.device), labels])
            truths.append(project_masks_on_boxes(target["masks"], boxes, matched, size))
            bands = contact_bands(target["masks"], self.px)
            weights.append((project_masks_on_boxes(bands, boxes, matched, size) >= 0.5).to(rows.dtype))
        if not picked:
            return logits.sum() * 0.0
        x = torch.cat(picked)
        bce = F.binary_cross_entropy_with_logits(x, torch.cat(truths).to(x.dtype), weight=torch.cat(weights),
                                                 reduction="sum")
        return self.weight * bce / x.numel()

    def close(self) -> None:
        """Remove the hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []
