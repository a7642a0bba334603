"""Mask R-CNN's mask loss with more weight on chosen pixels (training only).

In a bin pile an object often lies draped over a neighbour; the part lying on the
neighbour is the object's, yet to a mask head it reads like the neighbour's. The bin model
learnt to leave that part out (its masks hold 46 % of such pixels against 93 % of the
others), and the grasp selector's depth cover test then takes the raised part for a cover
("Bin picks: why free objects look covered", docs/models.md). Two weights, each 0 = off:

* ``contact``: pixels within ``contact_px`` of where two ground-truth instances meet, on
  either side, as U-Net weighs the borders between touching cells (Ronneberger et al.
  2015, eq. 2);
* ``draped``: an instance's own pixels that lie draped over another, from the dataset's
  per-image map (``draped_file``, written by ``msseg sim-data bin_picking``; the target's
  ``draped`` key).

A pixel's extra weight is the sum of those that apply: it counts ``1 + extra`` times in
the mask loss instead of once. The loss reads the training forward pass through hooks and
never changes it: ``net.transform`` (the targets as resized for the network),
``mask_roi_pool`` (the positive proposals, per image) and ``mask_predictor`` (their
logits). Each positive proposal's ground truth is the instance it overlaps most (IoU), as
torchvision's matcher assigns it.
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


class MaskPixelWeights:
    """The extra mask loss of one Mask R-CNN (see the module docstring).

    Call :meth:`loss` after each training forward pass of ``net``; it is added to the
    network's own losses as ``loss_mask_weighted``. With torchvision's mask loss (the mean
    binary cross-entropy over every positive proposal's 28 x 28 pixels) the sum weighs each
    chosen pixel ``1 + extra`` times.

    Args:
        net: the Mask R-CNN being trained.
        contact: extra weight of a pixel where two instances meet, >= 0.
        contact_px: that band's half-width in the network's input pixels (after its
            resize), >= 1.
        draped: extra weight of a pixel of an instance draped over another, >= 0.
    """

    def __init__(self, net: MaskRCNN, contact: float, contact_px: int, draped: float = 0.0) -> None:
        if contact < 0 or draped < 0 or contact + draped <= 0:
            raise ValueError(f"mask pixel weights must be >= 0 and one > 0, got contact {contact}, draped {draped}")
        if contact_px < 1:
            raise ValueError(f"contact band width must be >= 1 px, got {contact_px}")
        self.contact, self.px, self.draped = float(contact), int(contact_px), float(draped)
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
        """The extra-weighted sum of the last training forward pass's mask-loss terms,
        over all mask-loss pixels. Raises RuntimeError before a training forward pass."""
        seen, self._seen = self._seen, {}
        if seen.get("targets") is None or "logits" not in seen:
            raise RuntimeError("MaskPixelWeights.loss() before a training forward pass of the model")
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
            weights.append(project_masks_on_boxes(self._extra(target), boxes, matched, size).to(rows.dtype))
        if not picked:
            return logits.sum() * 0.0
        x = torch.cat(picked)
        bce = F.binary_cross_entropy_with_logits(x, torch.cat(truths).to(x.dtype), weight=torch.cat(weights),
                                                 reduction="sum")
        return bce / x.numel()

    def _extra(self, target: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N, H, W) float: each instance's extra weight per pixel, before resampling to
        its proposals (where a proposal's 28 x 28 cell straddles, the weight is averaged)."""
        masks = target["masks"]
        extra = torch.zeros(masks.shape, dtype=torch.float32, device=masks.device)
        if self.contact > 0:
            extra += self.contact * contact_bands(masks, self.px)
        draped = target.get("draped")
        if self.draped > 0 and draped is not None:
            if draped.shape[-2:] != masks.shape[-2:]:  # the network's transform resized the masks only
                draped = F.interpolate(draped[None, None].float(), size=masks.shape[-2:], mode="nearest")[0, 0]
            extra += self.draped * ((masks > 0) & (draped > 0))
        return extra

    def close(self) -> None:
        """Remove the hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []
