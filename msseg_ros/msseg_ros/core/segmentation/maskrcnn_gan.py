"""Adversarial training of Mask R-CNN's box and mask heads (seed 002, Chapter 3).

The heads are the generators; two critics, used only in training, judge their outputs
on the FPN features of the image:

* **Box critic** (seed §3.2.1): the FPN features inside a box, pooled to 28 x 28, give a
  probability that the box is a ground-truth box. Fake samples are the boxes the box head
  predicts for the foreground proposals (its regression applied to the proposal, for the
  proposal's true class); real samples are the ground-truth boxes those proposals match.
  The seed pools with Precise RoI Pooling so that the critic's verdict reaches the box
  *coordinates*; here bilinear sampling (``grid_sample``, 2 x 2 points per bin) does the
  same: it is differentiable in the sampling positions. Generator loss eq 3.2
  (-log D(fake)), critic loss eq 3.3 (binary cross-entropy).
* **Mask critic** (seed §3.2.2): the RoI features (28 x 28, those of the positive
  proposals) multiplied by the predicted mask probability (fake) or by the ground-truth
  mask target (real). The features of all five critic layers, concatenated, are compared
  by a mean L1 distance, eq 3.4; the generator minimises it, the critic maximises it.

Choices where the seed is silent (stated in docs/models.md):

* critic layers: 5 convolutions, 3 x 3, stride 2 (28 -> 14 -> 7 -> 4 -> 2 -> 1), widths
  64-128-256-256, each with BatchNorm and LeakyReLU(0.2) as the seed draws them; the box
  critic's last layer gives one logit. Real and fake samples pass as one batch, so that
  BatchNorm's batch statistics do not tell them apart.
* the FPN features are detached: the adversarial losses train the heads (the box head
  through the coordinates, the mask head through the mask), not the backbone.
* the mask critic's maximised L1 is unbounded; its parameters are clipped to +-0.05
  after each step, as in SegAN (Xue et al. 2018), whose multi-scale L1 loss eq 3.4 is.
* the critics' optimiser: Adam, the model's learning rate, betas (0.5, 0.999) (DCGAN's);
  one critic step per model step.
* each critic judges at most ``MAX_SAMPLES`` RoIs per step, drawn at random (from the
  adversary's own generator) among the foreground ones: the seed's N is "the mini-batch
  size"; all 512 of a batch of 4 cost several plain steps.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.roi_heads import project_masks_on_boxes
from torchvision.ops import MultiScaleRoIAlign

from msseg_ros.core.segmentation.torch_base import Adversary

#: the side of the RoI features the critics see, px (the seed's 28 x 28)
ROI_SIZE = 28
#: bilinear samples per bin and axis when pooling a box (torchvision's sampling_ratio 2)
SAMPLES_PER_BIN = 2
#: the mask critic's parameters are clipped to +- this after each step (SegAN)
MASK_CRITIC_CLIP = 0.05
#: each critic judges at most this many RoIs per step (a random subset of the foreground
#: ones): a batch of 4 has up to 512, which made a step several times the plain one
MAX_SAMPLES = 64
CRITIC_WIDTHS = (64, 128, 256, 256)


def _critic_layers(in_channels: int) -> nn.ModuleList:
    """Four stride-2 3 x 3 convolutions with BatchNorm and LeakyReLU: 28 -> 2 px."""
    layers = []
    c = in_channels
    for w in CRITIC_WIDTHS:
        layers.append(nn.Sequential(nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False),
                                    nn.BatchNorm2d(w), nn.LeakyReLU(0.2)))
        c = w
    return nn.ModuleList(layers)


class BoxCritic(nn.Module):
    """(N, C, 28, 28) RoI features -> (N,) logits of "a ground-truth box"."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.layers = _critic_layers(in_channels)
        self.head = nn.Conv2d(CRITIC_WIDTHS[-1], 1, 2)  # the fifth layer: 2 x 2 -> 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(x).flatten()


class MaskCritic(nn.Module):
    """(N, C, 28, 28) masked RoI features -> (N, D): the features of all five layers,
    flattened and concatenated (seed Figure 3-2)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.layers = _critic_layers(in_channels)
        self.last = nn.Sequential(nn.Conv2d(CRITIC_WIDTHS[-1], CRITIC_WIDTHS[-1], 2, bias=False),
                                  nn.BatchNorm2d(CRITIC_WIDTHS[-1]), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for layer in [*self.layers, self.last]:
            x = layer(x)
            feats.append(x.flatten(1))
        return torch.cat(feats, 1)


def pool_boxes(features: list[torch.Tensor], scales: list[float], levels: torch.Tensor, boxes: torch.Tensor,
               image_index: torch.Tensor, size: int = ROI_SIZE) -> torch.Tensor:
    """RoI features by bilinear sampling, differentiable in ``boxes``.

    Args:
        features: FPN levels, each (B, C, H_l, W_l).
        scales: each level's feature px per image px.
        levels: (N,) the level of each box (index into ``features``).
        boxes: (N, 4) x0, y0, x1, y1 in the (transformed) image, px.
        image_index: (N,) the image of each box.
    Returns:
        (N, C, size, size): the mean of ``SAMPLES_PER_BIN``^2 samples per bin.
    """
    n, c = len(boxes), features[0].shape[1]
    out = boxes.new_zeros((n, c, size, size))
    s = size * SAMPLES_PER_BIN
    t = (torch.arange(s, device=boxes.device, dtype=boxes.dtype) + 0.5) / s  # (s,) in (0, 1)
    for lvl, (fmap, scale) in enumerate(zip(features, scales, strict=True)):
        for b in range(fmap.shape[0]):
            pick = torch.nonzero((levels == lvl) & (image_index == b)).flatten()
            if len(pick) == 0:
                continue
            bx = boxes[pick] * scale
            h, w = fmap.shape[-2:]
            xs = bx[:, 0:1] + (bx[:, 2:3] - bx[:, 0:1]) * t  # (k, s) feature px (pixel edges)
            ys = bx[:, 1:2] + (bx[:, 3:4] - bx[:, 1:2]) * t
            gx = (2 * xs / w - 1)[:, None, :].expand(-1, s, -1)
            gy = (2 * ys / h - 1)[:, :, None].expand(-1, -1, s)
            grid = torch.stack([gx, gy], -1).reshape(1, len(pick) * s, s, 2)
            sampled = F.grid_sample(fmap[b:b + 1], grid, mode="bilinear", align_corners=False)
            sampled = sampled.reshape(c, len(pick), s, s).transpose(0, 1)
            out = out.index_put((pick,), F.avg_pool2d(sampled, SAMPLES_PER_BIN))
    return out


class MaskRCNNAdversary(Adversary):
    """The box and mask critics of a torchvision Mask R-CNN (see the module docstring).

    Hooks on ``net.roi_heads`` record, in each training forward pass, the sampled
    proposals and their matches, the box head's regression and the mask head's logits.

    Args:
        net: the Mask R-CNN being trained.
        box_weight: weight of eq 3.2 (0: no box critic).
        mask_weight: weight of eq 3.4 (0: no mask critic).
        seed: initialises the critics.
    """

    def __init__(self, net: MaskRCNN, box_weight: float, mask_weight: float, seed: int) -> None:
        super().__init__()
        if box_weight <= 0 and mask_weight <= 0:
            raise ValueError("an adversary needs a box or a mask weight > 0")
        self.net = [net]  # a list: not a submodule (its parameters are not the critics')
        self.box_weight, self.mask_weight = float(box_weight), float(mask_weight)
        channels = net.backbone.out_channels
        fork = torch.random.fork_rng(devices=[])
        with fork:  # the critics' init leaves torch's global generator as plain training has it
            torch.manual_seed(seed)
            self._draw = torch.Generator().manual_seed(seed + 1)
            self.box_critic = BoxCritic(channels) if box_weight > 0 else None
            self.mask_critic = MaskCritic(channels) if mask_weight > 0 else None
        heads = net.roi_heads
        self.mask_pool = MultiScaleRoIAlign(heads.mask_roi_pool.featmap_names, ROI_SIZE, SAMPLES_PER_BIN)
        self._seen: dict[str, Any] = {}
        self._critic_inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._select = heads.select_training_samples

        def select(proposals: Any, targets: Any) -> Any:
            out = self._select(proposals, targets)
            self._seen["targets"] = targets
            self._seen["proposals"], self._seen["matched"], self._seen["labels"], _ = out
            return out

        heads.select_training_samples = select
        self._handles = [
            heads.box_roi_pool.register_forward_hook(self._on_box_pool),
            heads.box_predictor.register_forward_hook(self._on_output("box_out")),
            heads.mask_roi_pool.register_forward_hook(self._on_mask_pool),
            heads.mask_predictor.register_forward_hook(self._on_output("mask_logits")),
        ]

    def _on_box_pool(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._seen["features"], _, self._seen["image_shapes"] = args

    def _on_mask_pool(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._seen["mask_proposals"] = args[1]

    def _on_output(self, key: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._seen[key] = output
        return hook

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        heads = self.net[0].roi_heads
        if "select_training_samples" in vars(heads):
            del heads.select_training_samples

    # ----------------------------------------------------------------------------------
    def generator_losses(self) -> dict[str, torch.Tensor]:
        seen = self._seen
        if "labels" not in seen or "box_out" not in seen:
            raise RuntimeError("generator_losses() before a training forward pass of the model")
        labels = seen["labels"]
        losses: dict[str, torch.Tensor] = {}
        if self.box_critic is not None:
            real, fake = self._box_samples(labels)
            self._critic_inputs["box"] = (real.detach(), fake.detach())
            if len(fake):
                logits = self.box_critic(torch.cat([real, fake]))[len(real):]
                losses["loss_adv_box"] = self.box_weight * F.binary_cross_entropy_with_logits(
                    logits, torch.ones_like(logits))  # eq 3.2
            else:
                losses["loss_adv_box"] = seen["box_out"][1].sum() * 0.0
        if self.mask_critic is not None:
            real, fake = self._mask_samples(labels)
            self._critic_inputs["mask"] = (real.detach(), fake.detach())
            if len(fake):
                d = self.mask_critic(torch.cat([real, fake]))
                losses["loss_adv_mask"] = self.mask_weight * (d[:len(real)] - d[len(real):]).abs().mean()  # eq 3.4
            else:
                losses["loss_adv_mask"] = seen["mask_logits"].sum() * 0.0
        self._seen = {}
        return losses

    def critic_loss(self) -> torch.Tensor:
        parts = []
        if "box" in self._critic_inputs and self.box_critic is not None:
            real, fake = self._critic_inputs["box"]
            if len(fake):
                logits = self.box_critic(torch.cat([real, fake]))
                truth = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).to(logits)
                parts.append(F.binary_cross_entropy_with_logits(logits, truth))  # eq 3.3
        if "mask" in self._critic_inputs and self.mask_critic is not None:
            real, fake = self._critic_inputs["mask"]
            if len(fake):
                d = self.mask_critic(torch.cat([real, fake]))
                parts.append(-(d[:len(real)] - d[len(real):]).abs().mean())  # maximise eq 3.4
        self._critic_inputs = {}
        if not parts:
            return torch.zeros((), requires_grad=True)
        return torch.stack(parts).sum()

    def after_critic_step(self) -> None:
        if self.mask_critic is not None:
            with torch.no_grad():
                for p in self.mask_critic.parameters():
                    p.clamp_(-MASK_CRITIC_CLIP, MASK_CRITIC_CLIP)

    # ----------------------------------------------------------------------------------
    def _box_samples(self, labels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(real, fake) RoI features of the foreground proposals: (N, C, 28, 28) each."""
        seen = self._seen
        heads = self.net[0].roi_heads
        pool = heads.box_roi_pool
        _, box_regression = seen["box_out"]
        proposals, matched, targets = seen["proposals"], seen["matched"], seen["targets"]
        lab = torch.cat(labels)
        fg = self._subset(torch.nonzero(lab > 0).flatten())
        regression = box_regression.float().reshape(len(lab), -1, 4)[fg, lab[fg]]
        pred = heads.box_coder.decode_single(regression, torch.cat(proposals)[fg].float())
        # an image without objects has no boxes to index (all its proposals are background)
        gt = torch.cat([t["boxes"][m.clamp(min=0)] if len(t["boxes"]) else t["boxes"].new_zeros((len(m), 4))
                        for t, m in zip(targets, matched, strict=True)])[fg].float()
        image_index = torch.cat([torch.full((len(p),), i, device=lab.device) for i, p in enumerate(proposals)])[fg]
        feats = [v.detach().float() for k, v in seen["features"].items() if k in pool.featmap_names]
        levels = pool.map_levels([gt]) if len(gt) else lab.new_zeros(0)
        # each pair in the level of its ground-truth box, so that real and fake differ only
        # in where the box is
        real = pool_boxes(feats, list(pool.scales), levels, gt, image_index)
        fake = pool_boxes(feats, list(pool.scales), levels, pred, image_index)
        return real, fake

    def _mask_samples(self, labels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(real, fake) masked RoI features of the positive proposals: (P, C, 28, 28)."""
        seen = self._seen
        boxes = seen["mask_proposals"]  # per image: its positive proposals, in label order
        pos = [torch.nonzero(lab > 0).flatten() for lab in labels]
        pos_labels = torch.cat([lab[p] for lab, p in zip(labels, pos, strict=True)])
        logits = seen["mask_logits"].float()
        pick = self._subset(torch.arange(len(pos_labels), device=logits.device))
        image_of = torch.cat([torch.full((len(p),), i, device=logits.device) for i, p in enumerate(pos)])[pick]
        offsets = torch.tensor([0, *[len(p) for p in pos]], device=logits.device).cumsum(0)
        keep = [pick[image_of == i] - offsets[i] for i in range(len(pos))]  # per image, local
        chosen = [b[k].float() for b, k in zip(boxes, keep, strict=True)]
        feats = {k: v.detach().float() for k, v in seen["features"].items()}
        rois = self.mask_pool(feats, chosen, seen["image_shapes"])
        pred = torch.sigmoid(logits[pick, pos_labels[pick]])
        truth = torch.cat([
            project_masks_on_boxes(t["masks"], b, m[p][k], ROI_SIZE)
            for t, b, m, p, k in zip(seen["targets"], chosen, seen["matched"], pos, keep, strict=True)
            if len(k)  # an image without objects has no positive proposals
        ]) if len(pick) else pred.new_zeros((0, ROI_SIZE, ROI_SIZE))
        return rois * truth[:, None], rois * pred[:, None]

    def _subset(self, indices: torch.Tensor) -> torch.Tensor:
        """At most ``MAX_SAMPLES`` of ``indices``, drawn at random, in their order."""
        if len(indices) <= MAX_SAMPLES:
            return indices
        draw = torch.randperm(len(indices), generator=self._draw)[:MAX_SAMPLES].sort().values
        return indices[draw.to(indices.device)]
