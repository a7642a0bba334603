"""Proposal-free instance segmentation by spatial embeddings (Neven et al. 2019, reviewed
in seed 004 and at the start of seed 000).

Network (``EmbeddingNet``): an ERFNet-style encoder (Romera et al. 2018) shared by two
decoders, for any input channel count.

* Encoder: downsampler (3x3 stride-2 conv concatenated with a 2x2 max-pool) to 16, to 64,
  five non-bottleneck-1D blocks (3x1 and 1x3 factorised convs, residual), downsampler to
  128, then twice the four blocks dilated 2, 4, 8, 16. Output stride 8.
* Decoders, each: transposed conv to 64, two blocks, transposed conv to 16, two blocks,
  a 2x2 transposed conv to the outputs at full resolution.
  - instance decoder: 2 offset channels and 1 (``sigma_axes`` = 1) or 2 sigma channels;
  - seed decoder: one seed map per class.
* Widths scale with ``width`` (percent of ERFNet's 16/64/128). H and W are padded to a
  multiple of 8 by edge values.

Embedding. Pixel ``i`` at (u, v) px has coordinate ``x_i = (u, v) / offset_range_px``
and embedding ``e_i = x_i + tanh(o_i)`` (so an offset reaches ``offset_range_px``). Each
instance k has a centre ``C_k`` (``center: centroid``, the mean coordinate of its pixels,
as the authors' released training does; or ``embedding``, the mean of its embeddings, the
paper's eq. 4) and a margin ``sigma_k = exp(mean of the predicted log-sigma over its
pixels)`` in coordinate units, per axis when ``sigma_axes`` = 2. The Gaussian
``phi_k(e_i) = exp(-sum_axes (e_i - C_k)^2 / (2 sigma_k^2))`` is the probability that
pixel i belongs to instance k.

Losses (the paper's weights: instance 1, smoothness 10, seed 1), per image:

* instance: the Lovász hinge (Berman et al. 2018) of the logits ``2 phi_k - 1`` against
  instance k's mask, averaged over instances;
* smoothness: the variance of the predicted log-sigma over each instance's pixels around
  its (detached) mean, averaged over instances;
* seed: squared error of the seed map of each class, regressed to the (detached)
  ``phi_k`` on instance k's pixels and to 0 elsewhere, averaged over pixels; the
  foreground term is weighted by ``seed_foreground_weight`` (10, as in the authors'
  released training: objects cover a few percent of a frame);
* class (not in the paper; ``class_weight``, 0 = off, the paper's three losses): the
  cross-entropy of the K seed logits at each instance pixel against the instance's class,
  averaged over instance pixels. Regressing each class's seed map to phi alone gives a
  weak signal where classes differ only in their spectra (the sorting line: a model
  trained without it called almost every part pcb or nickel); this term makes the seed
  maps compete for a pixel.

Inference: the foreground is where the best class's seed exceeds ``fg_threshold``. The
best remaining foreground seed above ``seed_threshold`` starts an instance: its embedding
is the centre and its sigma the margin; the instance is the unclustered foreground pixels
whose ``phi`` exceeds 0.5. A proposal smaller than ``min_pixels``, or mostly made of
pixels already clustered, is dropped; its pixels are used up either way. Class: the
class whose seed map is highest on average over the instance; score: the seed pixel's
value in that class's map.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from msseg_ros.core import cells
from msseg_ros.core.segmentation.base import ExportSpec, Instances, ModelConfigError, require
from msseg_ros.core.segmentation.runtimes import fold_conv_bn
from msseg_ros.core.segmentation.torch_base import (
    NormalisedModule,
    TorchSegmenter,
    channels_first,
    require_normalisation,
)

if TYPE_CHECKING:
    from msseg_ros.core.learning.options import TrainingContext

#: ERFNet's widths (encoder stages 1-3; decoder stages 2-1), scaled by ``width`` / 100
ERFNET_WIDTHS = (16, 64, 128)
#: the paper's loss weights
LOSS_WEIGHTS = {"instance": 1.0, "smoothness": 10.0, "seed": 1.0}

DEFAULT_CONFIG = {
    "type": "embeddings",
    "in_channels": 11,
    "classes": list(cells.SORTING_LINE_CLASSES),
    "width": 100,
    "sigma_axes": 2,
    "center": "centroid",
    "offset_range_px": 32.0,
    "initial_sigma_px": 6.0,
    "seed_foreground_weight": 10.0,
    "class_weight": 0.0,
    "fg_threshold": 0.5,
    "seed_threshold": 0.5,
    "min_pixels": 8,
    "detections_per_image": 100,
    "dropout": 0.1,
    "image_mean": list(cells.TABLE_6_1_MEAN),
    "image_std": list(cells.TABLE_6_1_STD),
}


# --------------------------------------------------------------------------- network

class _Downsampler(nn.Module):
    """(B, cin, H, W) -> (B, cout, H/2, W/2): a stride-2 conv beside a max-pool."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pool_channels = cin if cout > cin else 0
        self.conv = nn.Conv2d(cin, cout - self.pool_channels, 3, stride=2, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool_channels:
            y = torch.cat([y, F.max_pool2d(x, 2, 2)], 1)
        return F.relu(self.bn(y))


class _NonBottleneck1d(nn.Module):
    """ERFNet's residual block: 3x1, 1x3, then 3x1, 1x3 dilated; shape kept."""

    def __init__(self, ch: int, dropout: float, dilation: int) -> None:
        super().__init__()
        d = dilation
        self.c1 = nn.Conv2d(ch, ch, (3, 1), padding=(1, 0))
        self.c2 = nn.Conv2d(ch, ch, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(ch, eps=1e-3)
        self.c3 = nn.Conv2d(ch, ch, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.c4 = nn.Conv2d(ch, ch, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(ch, eps=1e-3)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def fold_batchnorm(self) -> int:
        """Fold bn1 into c2 and bn2 into c4 (inference only; see ``runtimes.fold_batchnorm``)."""
        folded = 0
        for conv, bn in (("c2", "bn1"), ("c4", "bn2")):
            fused = fold_conv_bn(getattr(self, conv), getattr(self, bn))
            if fused is not None:
                setattr(self, conv, fused)
                setattr(self, bn, nn.Identity())
                folded += 1
        return folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.c2(F.relu(self.c1(x)))))
        y = self.drop(self.bn2(self.c4(F.relu(self.c3(y)))))
        return F.relu(y + x)


class _Upsampler(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
                         nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU(inplace=True))


class _Decoder(nn.Sequential):
    """(B, w3, H/8, W/8) -> (B, n_out, H, W)."""

    def __init__(self, widths: tuple[int, int, int], n_out: int) -> None:
        w1, w2, w3 = widths
        super().__init__(_Upsampler(w3, w2), _NonBottleneck1d(w2, 0.0, 1), _NonBottleneck1d(w2, 0.0, 1),
                         _Upsampler(w2, w1), _NonBottleneck1d(w1, 0.0, 1), _NonBottleneck1d(w1, 0.0, 1),
                         nn.ConvTranspose2d(w1, n_out, 2, stride=2))


class EmbeddingNet(nn.Module):
    """(B, C, H, W) normalised, H and W multiples of 8 -> (instance (B, 2 + sigma_axes, H, W):
    raw offsets then log-sigma; seeds (B, n_classes, H, W) logits)."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 100, sigma_axes: int = 2,
                 dropout: float = 0.1, initial_log_sigma: float = 0.0) -> None:
        super().__init__()
        w1, w2, w3 = (max(4, c * width // 100) for c in ERFNET_WIDTHS)
        self.encoder = nn.Sequential(
            _Downsampler(in_channels, w1), _Downsampler(w1, w2),
            *(_NonBottleneck1d(w2, dropout / 3, 1) for _ in range(5)),
            _Downsampler(w2, w3),
            *(_NonBottleneck1d(w3, dropout, d) for _ in range(2) for d in (2, 4, 8, 16)))
        self.instance_decoder = _Decoder((w1, w2, w3), 2 + sigma_axes)
        self.seed_decoder = _Decoder((w1, w2, w3), n_classes)
        out = self.instance_decoder[-1]
        assert isinstance(out, nn.ConvTranspose2d) and out.bias is not None
        with torch.no_grad():  # start with zero offsets and the initial margin
            out.weight[:, 2:].zero_()  # (in, out, kH, kW)
            out.bias.zero_()
            out.bias[2:] = initial_log_sigma

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encoder(x)
        return self.instance_decoder(f), self.seed_decoder(f)


# --------------------------------------------------------------------------- losses

def lovasz_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The Lovász hinge of one binary map (Berman et al. 2018, eq. 8 with the Jaccard
    loss's Lovász extension): hinge errors sorted in decreasing order, weighted by the
    increments of the Jaccard loss along that order.

    Args:
        logits: (P,) real scores, > 0 means foreground.
        labels: (P,) {0, 1} float.
    """
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, order = torch.sort(errors, descending=True)
    gt = labels[order]
    total = gt.sum()
    intersection = total - gt.cumsum(0)
    union = total + (1.0 - gt).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(jaccard) > 1:  # increments of the Jaccard loss along the order
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return torch.dot(F.relu(errors_sorted), jaccard)


def coordinate_map(height: int, width: int, scale_px: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """(2, H, W): (u, v) of each pixel divided by ``scale_px``."""
    v = torch.arange(height, dtype=torch.float32, device=device).view(-1, 1).expand(height, width)
    u = torch.arange(width, dtype=torch.float32, device=device).view(1, -1).expand(height, width)
    return torch.stack([u, v]) / float(scale_px)


def embedding_losses(instance_out: torch.Tensor, seed_logits: torch.Tensor, instance_maps: torch.Tensor,
                     instance_classes: Sequence[torch.Tensor], offset_range_px: float,
                     center: str = "centroid", seed_foreground_weight: float = 1.0,
                     class_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """The losses of a batch, each averaged over the batch (see the module docstring):
    instance, smoothness and seed, and class when ``class_weight`` > 0.

    Args:
        instance_out: (B, 2 + S, H, W) raw offsets and log-sigma (S = 1 or 2).
        seed_logits: (B, K, H, W).
        instance_maps: (B, H, W) int64, 0 background, k = instance k (1-based).
        instance_classes: per image, (N_b,) int64 class index (0-based) of instance k at k-1.
    """
    B, _, H, W = instance_out.shape
    xy = coordinate_map(H, W, offset_range_px, instance_out.device)
    emb = xy[None] + torch.tanh(instance_out[:, :2])
    log_sigma = instance_out[:, 2:]
    seeds = torch.sigmoid(seed_logits)
    zero = instance_out.sum() * 0.0
    inst_loss, var_loss, seed_loss, class_loss = zero, zero, zero, zero
    for b in range(B):
        labels = instance_maps[b]
        n = len(instance_classes[b])
        seed_target = torch.zeros_like(seeds[b])
        fg_weight = torch.ones_like(seeds[b])
        if n:
            img_inst, img_var = zero, zero
            e = emb[b].reshape(2, -1)
            flat_labels = labels.reshape(-1)
            for k in range(1, n + 1):
                mask = flat_labels == k
                if not bool(mask.any()):
                    continue
                ls = log_sigma[b].reshape(log_sigma.shape[1], -1)[:, mask]  # (S, P_k)
                ls_mean = ls.mean(1, keepdim=True)
                img_var = img_var + ((ls - ls_mean.detach()) ** 2).mean()
                c = (xy.reshape(2, -1)[:, mask] if center == "centroid" else e[:, mask]).mean(1, keepdim=True)
                sigma = torch.exp(ls_mean)  # (S, 1)
                phi = torch.exp(-(((e - c) ** 2) / (2 * sigma ** 2)).sum(0))  # (H*W,)
                img_inst = img_inst + lovasz_hinge(2 * phi - 1, mask.float())
                cls = int(instance_classes[b][k - 1])
                seed_target[cls].view(-1)[mask] = phi[mask].detach()
                fg_weight[cls].view(-1)[mask] = seed_foreground_weight
            inst_loss = inst_loss + img_inst / n
            var_loss = var_loss + img_var / n
            if class_weight > 0:
                fg = flat_labels > 0
                if bool(fg.any()):
                    pixel_class = instance_classes[b].to(flat_labels.device)[flat_labels[fg] - 1]
                    logits = seed_logits[b].reshape(seed_logits.shape[1], -1)[:, fg].T  # (P, K)
                    class_loss = class_loss + F.cross_entropy(logits, pixel_class)
        seed_loss = seed_loss + (fg_weight * (seeds[b] - seed_target) ** 2).mean()
    losses = {"loss_instance": LOSS_WEIGHTS["instance"] * inst_loss / B,
              "loss_smoothness": LOSS_WEIGHTS["smoothness"] * var_loss / B,
              "loss_seed": LOSS_WEIGHTS["seed"] * seed_loss / B}
    if class_weight > 0:
        losses["loss_class"] = class_weight * class_loss / B
    return losses


# --------------------------------------------------------------------------- inference

def cluster(offsets: torch.Tensor, log_sigma: torch.Tensor, seeds: torch.Tensor, offset_range_px: float,
            fg_threshold: float = 0.5, seed_threshold: float = 0.5, min_pixels: int = 8,
            max_instances: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy clustering of one image's embeddings around its best seeds.

    Args:
        offsets: (2, H, W) tanh offsets, coordinate units.
        log_sigma: (S, H, W).
        seeds: (K, H, W) seed maps in [0, 1].

    Returns:
        (labels (H, W) int32 0..N, class ids (N,) 0-based, scores (N,)).
    """
    K, H, W = seeds.shape
    emb = (coordinate_map(H, W, offset_range_px, seeds.device) + offsets).reshape(2, -1)
    best, _ = seeds.max(0)
    fg = torch.nonzero(best.reshape(-1) > fg_threshold).squeeze(1)
    labels = np.zeros(H * W, np.int32)
    class_ids: list[int] = []
    scores: list[float] = []
    if len(fg) == 0:
        return labels.reshape(H, W), np.zeros(0, np.int64), np.zeros(0, np.float32)
    e_fg = emb[:, fg]
    ls_fg = log_sigma.reshape(log_sigma.shape[0], -1)[:, fg]
    seeds_fg = seeds.reshape(K, -1)[:, fg]
    candidate = best.reshape(-1)[fg].clone()  # seed scores of pixels not used up yet
    unclustered = torch.ones(len(fg), dtype=torch.bool, device=seeds.device)
    for _ in range(4 * max_instances):
        top = int(torch.argmax(candidate))
        if float(candidate[top]) < seed_threshold or len(class_ids) >= max_instances:
            break
        c = e_fg[:, top:top + 1]
        sigma = torch.exp(ls_fg[:, top:top + 1])
        phi = torch.exp(-(((e_fg - c) ** 2) / (2 * sigma ** 2)).sum(0))
        proposal = phi > 0.5
        proposal[top] = True
        n_prop = int(proposal.sum())
        fresh = proposal & unclustered
        candidate[proposal] = -1.0
        if n_prop >= min_pixels and int(fresh.sum()) > 0.5 * n_prop:
            mean_seeds = seeds_fg[:, fresh].mean(1)
            cls = int(torch.argmax(mean_seeds))
            labels[fg[fresh].cpu().numpy()] = len(class_ids) + 1
            class_ids.append(cls)
            scores.append(float(seeds_fg[cls, top]))
            unclustered &= ~proposal
    return labels.reshape(H, W), np.asarray(class_ids, np.int64), np.asarray(scores, np.float32)


class _EmbeddingOutputs(NormalisedModule):
    """Normalisation, the network and the output activations: (1, C, H, W) raw frame, H
    and W multiples of 8 -> (offsets (1, 2, H, W) tanh, log_sigma (1, S, H, W), seeds
    (1, K, H, W) in [0, 1]). What another runtime exports; clustering stays in Python."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inst, seed = self.net(self.normalise(x))
        return torch.tanh(inst[:, :2]), inst[:, 2:], torch.sigmoid(seed)


class EmbeddingSegmenter(TorchSegmenter):
    """Spatial embeddings (Neven et al. 2019) with an ERFNet-style two-decoder network;
    trains on whole frames (or ``train.crop`` crops) with the paper's three losses."""

    type_name = "embeddings"
    default_config = DEFAULT_CONFIG
    param_group = "embeddings"

    def __init__(self, config: dict[str, Any], net: EmbeddingNet, device: str) -> None:
        super().__init__(config, net, device)
        c = config["in_channels"]
        self.outputs = _EmbeddingOutputs(
            net, torch.tensor(config["image_mean"], dtype=torch.float32).view(1, c, 1, 1),
            torch.tensor(config["image_std"], dtype=torch.float32).view(1, c, 1, 1)).to(device)

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = super().validate_config(config)  # in_channels, classes, the shared keys
        c = cfg["in_channels"]
        require(cfg, "width", int, lambda v: 25 <= v <= 400)
        require(cfg, "sigma_axes", int, lambda v: v in (1, 2))
        if cfg["center"] not in ("centroid", "embedding"):
            raise ModelConfigError(f"model config 'center' = {cfg['center']!r}; choose centroid or embedding")
        require(cfg, "offset_range_px", (int, float), lambda v: v > 0)
        require(cfg, "initial_sigma_px", (int, float), lambda v: v > 0)
        require(cfg, "seed_foreground_weight", (int, float), lambda v: v > 0)
        cfg.setdefault("class_weight", 0.0)  # checkpoints from before the class term
        require(cfg, "class_weight", (int, float), lambda v: v >= 0)
        for key in ("fg_threshold", "seed_threshold", "dropout"):
            require(cfg, key, (int, float), lambda v: 0 <= v <= 1)
        require(cfg, "min_pixels", int, lambda v: v >= 1)
        require(cfg, "detections_per_image", int, lambda v: v >= 1)
        require_normalisation(cfg, c)
        return cfg

    @classmethod
    def build_net(cls, cfg: dict[str, Any]) -> EmbeddingNet:
        initial = float(np.log(cfg["initial_sigma_px"] / cfg["offset_range_px"]))
        return EmbeddingNet(cfg["in_channels"], len(cfg["classes"]), cfg["width"], cfg["sigma_axes"],
                            cfg["dropout"], initial)

    @classmethod
    def describe(cls, cfg: dict[str, Any]) -> str:
        return f"(embeddings ERFNet width {cfg['width']})"

    def training_batch(self, indices: Sequence[int], context: TrainingContext
                       ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(x (B, C, H, W) raw frames, instance maps (B, H, W) int64, classes per image
        (N_b,) 0-based): augmented, cropped to ``train.crop`` when set, padded to multiples
        of 8 (frames by edge values, instance maps by background)."""
        from msseg_ros.core.learning.augment import augment_instances

        opts, rng = context.options, context.rng
        frames, maps, classes = [], [], []
        for i in indices:
            frame, tgt = context.dataset[int(i)]
            frame, masks, labels = augment_instances(frame, tgt, context)
            inst = np.zeros(frame.shape[:2], np.int64)
            for k, m in enumerate(masks):  # later instances over earlier ones
                inst[m] = k + 1
            if opts.crop and frame.shape[0] >= opts.crop and frame.shape[1] >= opts.crop:
                c = int(opts.crop)
                y0 = int(rng.integers(0, frame.shape[0] - c + 1))
                x0 = int(rng.integers(0, frame.shape[1] - c + 1))
                frame, inst = frame[y0:y0 + c, x0:x0 + c], inst[y0:y0 + c, x0:x0 + c]
            present = np.unique(inst)
            present = present[present > 0]
            remap = np.zeros(len(masks) + 1, np.int64)
            remap[present] = np.arange(1, len(present) + 1)
            inst = remap[inst]
            H, W = frame.shape[:2]  # inst has the same
            ph, pw = (-H) % 8, (-W) % 8
            frames.append(np.pad(frame, ((0, ph), (0, pw), (0, 0)), mode="edge"))
            maps.append(np.pad(inst, ((0, ph), (0, pw))))
            classes.append(torch.from_numpy(labels[present - 1] - 1))
        shape = max(f.shape[0] for f in frames), max(f.shape[1] for f in frames)
        frames = [np.pad(f, ((0, shape[0] - f.shape[0]), (0, shape[1] - f.shape[1]), (0, 0)), mode="edge")
                  for f in frames]
        maps = [np.pad(m, ((0, shape[0] - m.shape[0]), (0, shape[1] - m.shape[1]))) for m in maps]
        x = torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2)))
        return x, torch.from_numpy(np.stack(maps)), classes

    def training_losses(self, batch: tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]
                        ) -> dict[str, torch.Tensor]:
        x, maps, classes = batch
        dev = self._device
        x = self.outputs.normalise(x.to(dev, non_blocking=True))
        inst, seed = self.net(x)
        cfg = self.config
        # the losses in float32 whatever the forward's precision (sorts and sums over pixels)
        return embedding_losses(inst.float(), seed.float(), maps.to(dev), [c.to(dev) for c in classes],
                                float(cfg["offset_range_px"]), cfg["center"], float(cfg["seed_foreground_weight"]),
                                float(cfg["class_weight"]))

    def export_spec(self) -> ExportSpec:
        example = self.outputs.mean.expand(1, self.in_channels, 256, 256).contiguous()
        hw = {2: "height", 3: "width"}
        return ExportSpec(self.outputs.eval(), (example,), ("frame",), ("offsets", "log_sigma", "seeds"),
                          {"frame": hw, "offsets": hw, "log_sigma": hw, "seeds": hw})

    @torch.inference_mode()
    def maps(self, frame: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(offsets (2, H, W), log_sigma (S, H, W), seeds (K, H, W)) of one (H, W, C) frame."""
        H, W = frame.shape[:2]
        x = channels_first(frame)[None].to(self._device)
        ph, pw = (-H) % 8, (-W) % 8
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        off, ls, seeds = self.engine(x)
        return off[0, :, :H, :W], ls[0, :, :H, :W], seeds[0, :, :H, :W]

    @torch.inference_mode()
    def predict(self, frame: np.ndarray) -> Instances:
        cfg = self.config
        off, ls, seeds = self.maps(frame)
        labels, cls, scores = cluster(off, ls, seeds, float(cfg["offset_range_px"]), cfg["fg_threshold"],
                                      cfg["seed_threshold"], cfg["min_pixels"], cfg["detections_per_image"])
        return Instances.from_labels(labels, cls + 1, scores)
