"""Mask R-CNN (torchvision) for any input channel count.

* The backbone's first convolution is replaced by a trainable one taking C channels; the
  normalisation ``image_mean`` / ``image_std`` have C values (dataset statistics; for
  the sorting line, seed 000 Table 6.1).
* Backbones with FPN: resnet18/34/50/101, resnext50_32x4d, resnext101_32x8d,
  mobilenet_v3_large. No pretrained weights (none can be downloaded here): every layer
  trains, with ordinary BatchNorm.
* Anchors default to the thesis's sizes {8, 16, 32, 64, 128} and ratios {0.5 ... 2}
  (seed 000 Table 7.6), one size per FPN level when the counts agree, else all sizes at
  every level.
* ``fpn_channels``, ``box_representation`` and ``mask_channels`` shrink the heads for a
  model that runs on 2 CPU cores (torchvision's defaults are 256, 1024, 256).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from msseg_ros.core.segmentation.base import (
    SEGMENTERS,
    Instances,
    ModelConfigError,
    masks_to_labels,
    require,
)
from msseg_ros.core.segmentation.torch_base import TorchSegmenter, require_normalisation

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnext50_32x4d",
             "resnext101_32x8d", "mobilenet_v3_large")

TABLE_6_1_MEAN = [0.16, 64593, 64404, 2014, 1911, 2502, 2479, 2318, 2281, 2200, 2187.0]
TABLE_6_1_STD = [1.73, 3390, 3003, 1335, 858, 474, 417, 404, 414, 453, 554.0]

DEFAULT_CONFIG = {
    "type": "maskrcnn",
    "in_channels": 11,
    "classes": ["copper", "laminated_zinc", "paint", "brass", "aluminium", "pcb", "nickel", "rubber", "zamak"],
    "backbone": "resnet50",
    "anchor_sizes": [8, 16, 32, 64, 128],
    "aspect_ratios": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0],
    "min_size": 800,
    "max_size": 1333,
    "score_threshold": 0.5,
    "mask_threshold": 0.5,
    "detections_per_image": 100,
    "fpn_channels": 256,
    "box_representation": 1024,
    "mask_channels": 256,
    "image_mean": TABLE_6_1_MEAN,
    "image_std": TABLE_6_1_STD,
}


def _resnet_body(name: str, in_channels: int) -> tuple[nn.Module, dict, list[int]]:
    net = getattr(resnet, name)(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    body = nn.Sequential(OrderedDict(
        (n, getattr(net, n)) for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")))
    widths = [_out(net.layer1), _out(net.layer2), _out(net.layer3), _out(net.layer4)]
    return body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}, widths


def _out(layer: nn.Sequential) -> int:
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def _mobilenet_body(in_channels: int) -> tuple[nn.Module, dict, list[int]]:
    features = mobilenet_v3_large(weights=None).features
    first = features[0][0]
    features[0][0] = nn.Conv2d(in_channels, first.out_channels, first.kernel_size, first.stride,
                               first.padding, bias=False)
    # stages end where the resolution halves next; return strides 8, 16 and 32
    stage_ends = [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)]
    picks = [stage_ends[1] - 1, stage_ends[3] - 1, len(features) - 1]
    return_layers = {str(i): str(k) for k, i in enumerate(picks)}
    widths = [features[i].out_channels for i in picks]
    return features, return_layers, widths


def build_maskrcnn(cfg: dict) -> MaskRCNN:
    c = cfg["in_channels"]
    if cfg["backbone"] == "mobilenet_v3_large":
        body, return_layers, widths = _mobilenet_body(c)
    else:
        body, return_layers, widths = _resnet_body(cfg["backbone"], c)
    fpn = cfg["fpn_channels"]
    backbone = BackboneWithFPN(body, return_layers, widths, fpn, extra_blocks=LastLevelMaxPool())
    levels = len(widths) + 1
    sizes, ratios = tuple(cfg["anchor_sizes"]), tuple(cfg["aspect_ratios"])
    if len(sizes) == levels:
        anchor_sizes = tuple((s,) for s in sizes)
    else:
        anchor_sizes = (sizes,) * levels
    anchors = AnchorGenerator(anchor_sizes, (ratios,) * levels)
    n_cls = len(cfg["classes"]) + 1
    rep, mch = cfg["box_representation"], cfg["mask_channels"]
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=cfg["min_size"],
        max_size=cfg["max_size"],
        image_mean=list(map(float, cfg["image_mean"])),
        image_std=list(map(float, cfg["image_std"])),
        rpn_anchor_generator=anchors,
        box_head=TwoMLPHead(fpn * 7 * 7, rep),
        box_predictor=FastRCNNPredictor(rep, n_cls),
        box_score_thresh=cfg["score_threshold"],
        box_detections_per_img=cfg["detections_per_image"],
        mask_head=MaskRCNNHeads(fpn, (mch, mch, mch, mch), 1),
        mask_predictor=MaskRCNNPredictor(mch, mch, n_cls),
    )


@SEGMENTERS.register("maskrcnn")
class MaskRCNNSegmenter(TorchSegmenter):
    type_name = "maskrcnn"

    @staticmethod
    def validate_config(config: dict) -> dict:
        cfg = {**DEFAULT_CONFIG, **config}
        c = require(cfg, "in_channels", int, lambda v: 1 <= v <= 512)
        require(cfg, "classes", list, lambda v: len(v) >= 1)
        if cfg["backbone"] not in BACKBONES:
            raise ModelConfigError(f"model config 'backbone' = {cfg['backbone']!r}; choose one of {', '.join(BACKBONES)}")
        require(cfg, "anchor_sizes", list, lambda v: len(v) >= 1 and all(s > 0 for s in v))
        require(cfg, "aspect_ratios", list, lambda v: len(v) >= 1 and all(s > 0 for s in v))
        require(cfg, "min_size", int, lambda v: v >= 32)
        require(cfg, "max_size", int, lambda v: v >= cfg["min_size"])
        require(cfg, "score_threshold", (int, float), lambda v: 0 <= v <= 1)
        for key in ("fpn_channels", "box_representation", "mask_channels"):
            require(cfg, key, int, lambda v: 8 <= v <= 4096)
        require_normalisation(cfg, c)
        return cfg

    @classmethod
    def build_net(cls, cfg: dict) -> MaskRCNN:
        return build_maskrcnn(cfg)

    @classmethod
    def describe(cls, cfg: dict) -> str:
        return f"(maskrcnn {cfg['backbone']})"

    @torch.inference_mode()
    def raw(self, frame: np.ndarray) -> dict[str, torch.Tensor]:
        """torchvision's output dict for one (H, W, C) float32 frame."""
        x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).to(self._device)
        return self.net([x])[0]

    def predict(self, frame: np.ndarray) -> Instances:
        out = self.raw(frame)
        scores = out["scores"].cpu().numpy()
        if len(scores) == 0:
            return Instances.empty(frame.shape[:2])
        masks = (out["masks"][:, 0] > self.config["mask_threshold"]).cpu().numpy()
        labels, order = masks_to_labels(masks, scores)
        cls = out["labels"].cpu().numpy()[order]
        return Instances.from_labels(labels, cls, scores[order])
