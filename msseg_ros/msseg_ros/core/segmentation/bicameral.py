"""The bicameral boundary/occlusion network of seed 001 (§4.1, Figs 4.2 and 4.13, §4.4).

Architecture (widths x ``width``/100: F100, F75, F50, F25):

* Encoder: VGG16's 13 3x3 convolutions in 5 blocks (64, 64 | 128, 128 | 256 x3 | 512 x3 |
  512 x3), each followed by BatchNorm and ReLU; max-pooling after blocks 1-4 keeps its
  indices. The seed initialises the encoder from ImageNet; no weights can be downloaded
  here, so BatchNorm is what makes training from scratch work (a stated deviation).
* Two cascaded decoders, each of four blocks from bottom to top: unpool with the
  encoder's indices (pool4, pool3, pool2, pool1), concatenate the top of the encoder block
  at that scale (skip connection), 5x5 conv (256, 128, 64, 32), BatchNorm, ReLU, dropout
  0.5 in training. The channel counts match VGG's, so each unpool takes the previous
  block's output. The occlusion decoder also concatenates the boundary decoder's block
  output at each scale. Each decoder ends with a 5x5 conv to one channel; a sigmoid gives
  Y (boundaries) and Z (unoccluded side). Decoders are Xavier-initialised.
* Input: any channel count; H and W are padded to a multiple of 16.

Losses (eqs 4.1, 4.2), with μ = 10, per pixel averaged over the batch:
    L_b = -[ μ Y log Ŷ + (1 - Y) log(1 - Ŷ) ]
    L_o = -[ μ Z log Ẑ + ((μ - 1) Y + 1)(1 - Z) log(1 - Ẑ) ]

From maps to instances (§4.4): candidates are the connected components of NOT(Ŷ > α),
without those smaller than ``min_area_px`` or larger than ``max_area_fraction`` of the
image (the bin bottom). Each candidate's affordance is s1 + s2: s1 is the mean, over the
boundary pixels around it (Ŷ > α in its 1-px ring), of the share of the P x P patch where
the candidate mask and (Ẑ > β) agree (XNOR); s2 is its area, normalised by the largest
candidate's so that both terms lie in [0, 1] (the seed adds them raw; a stated choice).
Defaults α = β = 0.1, P = 9. ``area_weight`` w scales s2 (affordance s1 + w s2; the seed:
w = 1). On 300 simulated piles at random fill levels the shipped bin model's first pick
with the seed's sum lifted nothing in 32 % of them, with s1 + 0.1 s2 in 17 % (w chosen on
those piles, checked on 300 others: its card); its checkpoint sets 0.1.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from msseg_ros.core import cells
from msseg_ros.core.segmentation.base import ExportSpec, Instances, require
from msseg_ros.core.segmentation.torch_base import (
    NormalisedModule,
    TorchSegmenter,
    channels_first,
    require_normalisation,
)

if TYPE_CHECKING:
    from msseg_ros.core.learning.data import CocoFrames
    from msseg_ros.core.learning.options import TrainingContext

VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
DECODER = (256, 128, 64, 32)
WIDTHS = (25, 50, 75, 100)

DEFAULT_CONFIG = {
    "type": "bicameral",
    "in_channels": 3,
    "classes": list(cells.BIN_PICKING_CLASSES),
    "width": 25,
    "dropout": 0.5,
    "mu": 10.0,
    "alpha": 0.1,
    "beta": 0.1,
    "patch": 9,
    "min_area_px": 30,
    "max_area_fraction": 0.25,
    "area_weight": 1.0,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.25, 0.25, 0.25],
}


def _w(c: int, width: int) -> int:
    return max(4, c * width // 100)


class _ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def max_pool2x_with_indices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 max-pooling, stride 2, with torch's flat indices: (B, C, H, W), H and W even ->
    pooled (B, C, H/2, W/2) and indices (B, C, H/2, W/2) int64 into each H x W plane,
    equal to ``F.max_pool2d(x, 2, 2, return_indices=True)`` (ties: the first in the
    window, row by row). Written as a plain max-pooling plus an argmax over each window,
    because exported to ONNX the pooling-with-indices runs on OpenVINO's reference
    kernel: 85 % of its time on this network (279 of 330 ms at 256 x 256)."""
    b, c, h, w = x.shape
    pooled = F.max_pool2d(x, 2, 2)
    windows = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4)
    code = torch.argmax(windows, dim=-1)  # 2 dy + dx
    rows = (torch.arange(h // 2, device=x.device) * 2).view(-1, 1)
    cols = (torch.arange(w // 2, device=x.device) * 2).view(1, -1)
    return pooled, (rows + code // 2) * w + cols + code % 2


class Unpool2x(nn.Module):
    """Max-unpooling by 2 with a 2x2 pooling's indices: (B, C, h, w) -> (B, C, 2h, 2w),
    each value at its index, zeros elsewhere; the same as ``nn.MaxUnpool2d(2, 2)`` for
    even sizes, written as a scatter so that it exports to ONNX (torch's unpooling checks
    its output size with Python conditions a tracer cannot follow)."""

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = x.new_zeros((b, c, 4 * h * w))
        return out.scatter(2, indices.flatten(2), x.flatten(2)).view(b, c, 2 * h, 2 * w)


class BicameralNet(nn.Module):
    """(B, C, H, W) -> (logits_Y, logits_Z), each (B, 1, H, W); H, W multiples of 16."""

    def __init__(self, in_channels: int = 3, width: int = 100, dropout: float = 0.5) -> None:
        super().__init__()
        enc = []
        cin = in_channels
        self.enc_channels = []
        for block in VGG16_BLOCKS:
            layers = []
            for c in block:
                layers.append(_ConvBNReLU(cin, _w(c, width), 3))
                cin = _w(c, width)
            enc.append(nn.Sequential(*layers))
            self.enc_channels.append(cin)
        self.encoder = nn.ModuleList(enc)
        self.unpool = Unpool2x()
        dec_w = [_w(c, width) for c in DECODER]
        skips = self.enc_channels[3::-1]  # enc4, enc3, enc2, enc1 tops
        ins = [self.enc_channels[4], *dec_w[:-1]]  # what each unpool receives
        self.boundary = nn.ModuleList(
            _ConvBNReLU(i + s, o, 5) for i, s, o in zip(ins, skips, dec_w, strict=True))
        self.occlusion = nn.ModuleList(
            _ConvBNReLU(i + s + o, o, 5) for i, s, o in zip(ins, skips, dec_w, strict=True))
        self.boundary_out = nn.Conv2d(dec_w[-1], 1, 5, padding=2)
        self.occlusion_out = nn.Conv2d(dec_w[-1], 1, 5, padding=2)
        self.drop = nn.Dropout2d(dropout)
        for m in [*self.boundary.modules(), *self.occlusion.modules(), self.boundary_out, self.occlusion_out]:
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tops, indices = [], []
        for k, block in enumerate(self.encoder):
            x = block(x)
            tops.append(x)
            if k < 4:
                x, idx = max_pool2x_with_indices(x)
                indices.append(idx)
        b = o = x
        for level in range(4):
            enc = 3 - level  # pool4 .. pool1
            skip = tops[enc]
            # H and W are multiples of 16: each unpooling restores its pooling's size exactly
            b_up = self.unpool(b, indices[enc])
            o_up = self.unpool(o, indices[enc])
            b = self.drop(self.boundary[level](torch.cat([b_up, skip], 1)))
            o = self.drop(self.occlusion[level](torch.cat([o_up, skip, b], 1)))
        return self.boundary_out(b), self.occlusion_out(o)


def bicameral_loss(logit_y: torch.Tensor, logit_z: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
                   mu: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_boundaries, L_occlusions) of eqs 4.1 and 4.2 (means over all pixels)."""
    log_p_y, log_q_y = F.logsigmoid(logit_y), F.logsigmoid(-logit_y)
    log_p_z, log_q_z = F.logsigmoid(logit_z), F.logsigmoid(-logit_z)
    lb = -(mu * y * log_p_y + (1 - y) * log_q_y).mean()
    lo = -(mu * z * log_p_z + ((mu - 1) * y + 1) * (1 - z) * log_q_z).mean()
    return lb, lo


def candidates_and_affordance(Y: np.ndarray, Z: np.ndarray, alpha: float = 0.1, beta: float = 0.1,
                              patch: int = 9, min_area_px: int = 30, max_area_fraction: float = 0.25
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§4.4: (labels, s1, s2) of the instance candidates of boundary/occlusion maps in [0, 1]."""
    yb, zb = Y > alpha, Z > beta
    labels, n = ndimage.label(~yb)
    if n == 0:
        return np.zeros(Y.shape, np.int32), np.zeros(0), np.zeros(0)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    keep = (area >= min_area_px) & (area <= max_area_fraction * Y.size)
    keep[0] = False
    remap = np.zeros(n + 1, np.int32)
    remap[keep] = np.arange(1, int(keep.sum()) + 1)
    labels = remap[labels]
    m = int(keep.sum())
    s1 = np.zeros(m)
    r = patch // 2
    objs = ndimage.find_objects(labels)
    for k in range(1, m + 1):
        sl = objs[k - 1]
        y0, y1 = max(sl[0].start - r - 1, 0), min(sl[0].stop + r + 1, Y.shape[0])
        x0, x1 = max(sl[1].start - r - 1, 0), min(sl[1].stop + r + 1, Y.shape[1])
        ck = labels[y0:y1, x0:x1] == k
        ring = ndimage.binary_dilation(ck) & ~ck & yb[y0:y1, x0:x1]
        if not ring.any():
            s1[k - 1] = 0.0
            continue
        agree = (ck == zb[y0:y1, x0:x1]).astype(np.float64)
        local = ndimage.uniform_filter(agree, size=patch, mode="constant", cval=0.0)
        s1[k - 1] = float(local[ring].mean())
    s2 = area[keep] / max(area[keep].max(initial=1), 1)
    return labels, s1, s2


class _ProbabilityMaps(NormalisedModule):
    """Normalisation, the network and the sigmoids: (1, C, H, W) raw frame, H and W
    multiples of 16 -> (Ŷ, Ẑ), each (1, 1, H, W) in [0, 1]. What other runtimes export."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ly, lz = self.net(self.normalise(x))
        return torch.sigmoid(ly), torch.sigmoid(lz)


class BicameralMapMetrics:
    """ODS and AP of the boundary and occlusion maps against their ground truth (seed 001
    §5.2), over a dataset: ``msseg eval``'s extra metrics for this model type."""

    def __init__(self, seg: BicameralSegmenter) -> None:
        from msseg_ros.core.learning.map_metrics import PixelMapMetrics

        self.seg = seg
        self.metrics = PixelMapMetrics(("boundary", "occlusion"))

    def update(self, dataset: CocoFrames, index: int, frame: np.ndarray, target: dict[str, Any]) -> None:
        from msseg_ros.core.learning.targets import boundary_occlusion_maps

        Y, Z = boundary_occlusion_maps(dataset, index, target, frame.shape[:2])
        y, z = self.seg.maps(self.seg.check_frame(frame)[0])
        self.metrics.update("boundary", y, Y > 0)
        self.metrics.update("occlusion", z, Z > 0)

    def summary(self) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
        return self.metrics.summary()


class BicameralSegmenter(TorchSegmenter):
    """The bicameral boundary/occlusion network (seed 001). Trains on random crops
    (``train.crop``; 256 x 256 in the seed) with the seed's weighted losses (eqs 4.1, 4.2)."""

    type_name = "bicameral"
    default_config = DEFAULT_CONFIG
    param_group = "bicameral"

    def __init__(self, config: dict[str, Any], net: BicameralNet, device: str) -> None:
        super().__init__(config, net, device)
        c = config["in_channels"]
        self.mean = torch.tensor(config["image_mean"], dtype=torch.float32, device=device).view(1, c, 1, 1)
        self.std = torch.tensor(config["image_std"], dtype=torch.float32, device=device).view(1, c, 1, 1)

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = super().validate_config(config)  # in_channels, classes, the shared keys
        c = cfg["in_channels"]
        require(cfg, "width", int, lambda v: v in WIDTHS)
        require(cfg, "alpha", (int, float), lambda v: 0 <= v <= 1)
        require(cfg, "beta", (int, float), lambda v: 0 <= v <= 1)
        require(cfg, "patch", int, lambda v: v >= 1 and v % 2 == 1)
        require(cfg, "area_weight", (int, float), lambda v: 0 <= v <= 10)
        require_normalisation(cfg, c)
        return cfg

    @classmethod
    def config_from_parameters(cls, group: Mapping[str, Any], score_threshold: float) -> dict[str, Any]:
        """The node's ``bicameral.*`` parameters; ``area_weight`` -1 keeps the model's own."""
        return {k: v for k, v in group.items() if not (k == "area_weight" and v < 0)}

    @classmethod
    def build_net(cls, cfg: dict[str, Any]) -> BicameralNet:
        return BicameralNet(cfg["in_channels"], cfg["width"], cfg["dropout"])

    @classmethod
    def describe(cls, cfg: dict[str, Any]) -> str:
        return f"(bicameral F{cfg['width']})"

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        return (frames - self.mean) / self.std

    def training_batch(self, indices: Sequence[int], context: TrainingContext
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x (B, C, H, W) raw frames, y (B, 1, H, W) boundaries, z (B, 1, H, W) occlusions):
        random crops of ``train.crop`` px, flips, padded to multiples of 16 by edge values."""
        from msseg_ros.core.learning.targets import boundary_occlusion_maps

        opts, rng = context.options, context.rng
        xs, ys, zs = [], [], []
        for i in indices:
            frame, tgt = context.dataset[int(i)]
            Y, Z = boundary_occlusion_maps(context.dataset, int(i), tgt, frame.shape[:2])
            stack = np.concatenate([frame, Y[..., None], Z[..., None]], axis=2)
            if opts.crop:
                c = int(opts.crop)
                H, W = stack.shape[:2]
                if H >= c and W >= c:
                    y0, x0 = int(rng.integers(0, H - c + 1)), int(rng.integers(0, W - c + 1))
                    stack = stack[y0:y0 + c, x0:x0 + c]
            if rng.random() < opts.augment.hflip:
                stack = stack[:, ::-1]
            if rng.random() < opts.augment.vflip:
                stack = stack[::-1]
            H, W = stack.shape[:2]
            stack = np.pad(stack, ((0, (-H) % 16), (0, (-W) % 16), (0, 0)), mode="edge")
            xs.append(stack[..., :-2])
            ys.append(stack[..., -2])
            zs.append(stack[..., -1])
        x = torch.from_numpy(np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2)))
        y = torch.from_numpy(np.ascontiguousarray(np.stack(ys)))[:, None]
        z = torch.from_numpy(np.ascontiguousarray(np.stack(zs)))[:, None]
        return x, y, z

    def training_losses(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y, z = (v.to(self._device, non_blocking=True) for v in batch)
        ly, lz = self.net(self.normalise(x))
        lb, lo = bicameral_loss(ly.float(), lz.float(), y, z, float(self.config["mu"]))  # losses in float32
        return {"loss_boundaries": lb, "loss_occlusions": lo}

    def extra_metrics(self) -> BicameralMapMetrics:
        return BicameralMapMetrics(self)

    def export_spec(self) -> ExportSpec:
        assert isinstance(self.net, BicameralNet)
        module = _ProbabilityMaps(self.net, self.mean, self.std).eval()
        example = self.mean.expand(1, self.in_channels, 256, 256).contiguous()
        return ExportSpec(module, (example,), ("frame",), ("boundaries", "occlusions"),
                          {"frame": {2: "height", 3: "width"}, "boundaries": {2: "height", 3: "width"},
                           "occlusions": {2: "height", 3: "width"}})

    @torch.inference_mode()
    def maps(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Ŷ, Ẑ) probability maps, (H, W) float32 each."""
        H, W = frame.shape[:2]
        x = channels_first(frame)[None].to(self._device)
        ph, pw = (-H) % 16, (-W) % 16
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        y, z = self.engine(x)
        return y[0, 0, :H, :W].float().cpu().numpy(), z[0, 0, :H, :W].float().cpu().numpy()

    def predict(self, frame: np.ndarray) -> Instances:
        cfg = self.config
        y, z = self.maps(frame)
        labels, s1, s2 = candidates_and_affordance(y, z, cfg["alpha"], cfg["beta"], cfg["patch"],
                                                   cfg["min_area_px"], cfg["max_area_fraction"])
        n = len(s1)
        return Instances.from_labels(labels, np.ones(n, np.int64), s1.astype(np.float32),
                                     (s1 + cfg["area_weight"] * s2).astype(np.float32))
