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
* ``dual_energy_ratio`` (optional) adds the X-ray log-ratio as an input channel of the
  first convolution, computed inside the network (``inputs.DerivedInputConv``).
* At inference its RPN decodes only the anchors it keeps (``detection_export.rpn_proposals``);
  exported, its RoI level merge and batched NMS take the faster forms there too (same
  outputs).
* The network's masks leave it unpasted, (N, 1, 28, 28) over each box; :func:`paste_masks`
  puts them in the image in numpy, for every runtime alike (in an ONNX graph torchvision's
  paste is a loop of small operators, one turn per detection: 3-5 ms a line frame).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from msseg_ros.core import cells
from msseg_ros.core.segmentation.base import (
    ExportSpec,
    Instances,
    ModelConfigError,
    masks_to_labels,
    merge_parts,
    require,
    visible_fractions,
)
from msseg_ros.core.segmentation.detection_export import rpn_proposals, traced_for_onnx
from msseg_ros.core.segmentation.inputs import DerivedInputConv, validate_dual_energy
from msseg_ros.core.segmentation.torch_base import (
    TorchSegmenter,
    channels_first,
    require_normalisation,
)

if TYPE_CHECKING:
    from msseg_ros.core.learning.options import Adversarial, TrainingContext
    from msseg_ros.core.segmentation.maskrcnn_gan import MaskRCNNAdversary
    from msseg_ros.core.segmentation.maskrcnn_mask_weights import MaskPixelWeights

#: the score threshold inside the network: low, so that the node (model.score_threshold)
#: and msseg eval (AP over all scores) filter afterwards
NET_SCORE_THRESHOLD = 0.05

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnext50_32x4d",
             "resnext101_32x8d", "mobilenet_v3_large")


DEFAULT_CONFIG = {
    "type": "maskrcnn",
    "in_channels": 11,
    "classes": list(cells.SORTING_LINE_CLASSES),
    "backbone": "resnet50",
    "anchor_sizes": [8, 16, 32, 64, 128],
    "aspect_ratios": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0],
    "min_size": 800,
    "max_size": 1333,
    "score_threshold": 0.5,
    "mask_threshold": 0.5,
    # a detection whose mask is mostly under better-scored masks is a duplicate of one of
    # them (one object detected twice): dropped below this visible share
    "min_visible_fraction": 0.5,
    # a detection lying mostly inside a larger, lower-scored one is a part of that object
    # (base.merge_parts): folded into it at this share inside; 0: off. Off by default: at
    # 0.8 the shipped line model had no double pick in a 60 s run (3-4 before) but lost
    # 0.034 mask AP (the larger mask is as often two touching objects as one, docs/robots.md)
    "merge_parts": 0.0,
    "detections_per_image": 100,
    # region proposals kept at test time, before and after their NMS (torchvision's 1000 /
    # 1000); a line frame holds at most ~30 objects, so far fewer suffice (the RoI heads
    # run on every proposal kept)
    "rpn_pre_nms_top_n_test": 1000,
    "rpn_post_nms_top_n_test": 1000,
    "fpn_channels": 256,
    "box_representation": 1024,
    "mask_channels": 256,
    "image_mean": list(cells.TABLE_6_1_MEAN),
    "image_std": list(cells.TABLE_6_1_STD),
    # the dual-energy X-ray ratio as one more input channel of the first convolution
    # (core/segmentation/inputs.py): null (off), or a mapping of DUAL_ENERGY_DEFAULTS keys
    # ({} = the sorting line's channels 1 and 2)
    "dual_energy_ratio": None,
    # training only (maskrcnn_mask_weights), 0: off. Mask-loss pixels within mask_contact_px
    # (input px, after the resize) of where two instances meet count 1 + mask_contact_weight
    # times; an instance's pixels draped over another (the dataset's draped_file) count
    # 1 + mask_draped_weight times; where both apply, the weights add
    "mask_contact_weight": 0.0,
    "mask_contact_px": 2,
    "mask_draped_weight": 0.0,
}


def _resnet_body(name: str, in_channels: int) -> tuple[nn.Module, dict[str, Any], list[int]]:
    net = getattr(resnet, name)(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    body = nn.Sequential(OrderedDict(
        (n, getattr(net, n)) for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")))
    widths = [_out(net.layer1), _out(net.layer2), _out(net.layer3), _out(net.layer4)]
    return body, {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}, widths


def _out(layer: nn.Sequential) -> int:
    last = layer[-1]
    conv = last.conv3 if hasattr(last, "conv3") else last.conv2
    assert isinstance(conv, nn.Conv2d)
    return conv.out_channels


def _mobilenet_body(in_channels: int) -> tuple[nn.Module, dict[str, Any], list[int]]:
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


def build_maskrcnn(cfg: dict[str, Any]) -> MaskRCNN:
    c = cfg["in_channels"]
    if cfg["backbone"] == "mobilenet_v3_large":
        body, return_layers, widths = _mobilenet_body(c)
    else:
        body, return_layers, widths = _resnet_body(cfg["backbone"], c)
    if cfg.get("dual_energy_ratio") is not None:
        parent, name = (body.get_submodule("0"), "0") if cfg["backbone"] == "mobilenet_v3_large" else (body, "conv1")
        setattr(parent, name, DerivedInputConv(getattr(parent, name), cfg["dual_energy_ratio"],
                                               cfg["image_mean"], cfg["image_std"]))
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
        rpn_pre_nms_top_n_test=cfg["rpn_pre_nms_top_n_test"],
        rpn_post_nms_top_n_test=cfg["rpn_post_nms_top_n_test"],
        mask_head=MaskRCNNHeads(fpn, (mch, mch, mch, mch), 1),
        mask_predictor=MaskRCNNPredictor(mch, mch, n_cls),
    )


class _DetectionTuple(nn.Module):
    """torchvision's Mask R-CNN at test time on one (C, H, W) image, its detections as a
    tuple (what runtimes export): boxes (N, 4) x0, y0, x1, y1 in the image's pixels, labels
    (N,), scores (N,), and mask probabilities (N, 1, M, M) over each box, not pasted into
    the image (:func:`paste_masks` does that)."""

    def __init__(self, net: MaskRCNN) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        net = self.net
        with traced_for_onnx():  # nothing changes outside a trace
            images, _ = net.transform([image])
            features = net.backbone(images.tensors)
            proposals = rpn_proposals(net.rpn, images, features)  # torchvision's, with fewer anchors decoded
            detections, _ = net.roi_heads(features, proposals, images.image_sizes)
        out = detections[0]
        # the transform resized the image: boxes back to its own pixels, as torchvision's
        # postprocess does
        boxes = resize_boxes(out["boxes"], images.image_sizes[0], list(image.shape[-2:]))
        return boxes, out["labels"], out["scores"], out["masks"]


def paste_masks(probs: np.ndarray, boxes: np.ndarray, shape: tuple[int, int], threshold: float) -> np.ndarray:
    """Mask R-CNN's per-box masks in the image, as torchvision pastes them: each M x M grid
    of probabilities gets a border of zeros, its box grows by (M + 2) / M about its centre
    to match and is truncated to whole pixels, corners included; the grid is resampled
    bilinearly (pixel centres, as ``interpolate(align_corners=False)``) to the box's pixels
    and thresholded; what falls outside the image is dropped.

    Args:
        probs: (N, M, M) float mask probabilities.
        boxes: (N, 4) float x0, y0, x1, y1 in the image's pixels.
        shape: the image's (H, W).
        threshold: a pixel is in the mask where its probability exceeds this.

    Returns:
        (N, H, W) bool.
    """
    import cv2

    n, m = probs.shape[0], probs.shape[-1]
    h, w = shape
    out = np.zeros((n, h, w), bool)
    grid = np.zeros((m + 2, m + 2), np.float32)
    boxes = np.asarray(boxes, np.float32)
    centre = (boxes[:, :2] + boxes[:, 2:]) * np.float32(0.5)
    half = (boxes[:, 2:] - boxes[:, :2]) * np.float32(0.5) * np.float32((m + 2) / m)
    grown = np.concatenate([centre - half, centre + half], 1).astype(np.int64)  # truncation, as torch's cast
    for i, (x0, y0, x1, y1) in enumerate(grown.tolist()):
        xa, xb, ya, yb = max(x0, 0), min(x1 + 1, w), max(y0, 0), min(y1 + 1, h)
        if xb <= xa or yb <= ya:
            continue
        grid[1:-1, 1:-1] = probs[i]
        box = cv2.resize(grid, (max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)), interpolation=cv2.INTER_LINEAR)
        out[i, ya:yb, xa:xb] = box[ya - y0:yb - y0, xa - x0:xb - x0] > threshold
    return out


class MaskRCNNSegmenter(TorchSegmenter):
    """torchvision's Mask R-CNN for C channels (seed 000). In training the network returns
    its own losses (RPN objectness and box, RoI classifier, box and mask; with
    ``mask_contact_weight`` or ``mask_draped_weight`` > 0 also ``loss_mask_weighted``, see
    ``maskrcnn_mask_weights``)."""

    type_name = "maskrcnn"
    default_config = DEFAULT_CONFIG
    param_group = "maskrcnn"
    _pixel_weights: MaskPixelWeights | None = None  # made on the first training step that needs it

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = super().validate_config(config)  # in_channels, classes, the shared keys
        c = cfg["in_channels"]
        if cfg["backbone"] not in BACKBONES:
            raise ModelConfigError(f"model config 'backbone' = {cfg['backbone']!r}; choose one of {', '.join(BACKBONES)}")
        require(cfg, "anchor_sizes", list, lambda v: len(v) >= 1 and all(s > 0 for s in v))
        require(cfg, "aspect_ratios", list, lambda v: len(v) >= 1 and all(s > 0 for s in v))
        require(cfg, "min_size", int, lambda v: v >= 32)
        require(cfg, "max_size", int, lambda v: v >= cfg["min_size"])
        require(cfg, "score_threshold", (int, float), lambda v: 0 <= v <= 1)
        require(cfg, "min_visible_fraction", (int, float), lambda v: 0 <= v <= 1)
        require(cfg, "merge_parts", (int, float), lambda v: 0 <= v <= 1)
        require(cfg, "rpn_pre_nms_top_n_test", int, lambda v: v >= 1)
        require(cfg, "rpn_post_nms_top_n_test", int, lambda v: 1 <= v <= cfg["rpn_pre_nms_top_n_test"])
        require(cfg, "mask_contact_weight", (int, float), lambda v: 0 <= v <= 100)
        require(cfg, "mask_contact_px", int, lambda v: 1 <= v <= 16)
        require(cfg, "mask_draped_weight", (int, float), lambda v: 0 <= v <= 100)
        for key in ("fpn_channels", "box_representation", "mask_channels"):
            require(cfg, key, int, lambda v: 8 <= v <= 4096)
        require_normalisation(cfg, c)
        cfg["dual_energy_ratio"] = validate_dual_energy(cfg.get("dual_energy_ratio"), c)
        return cfg

    @classmethod
    def build_net(cls, cfg: dict[str, Any]) -> MaskRCNN:
        return build_maskrcnn(cfg)

    @classmethod
    def describe(cls, cfg: dict[str, Any]) -> str:
        return f"(maskrcnn {cfg['backbone']})"

    @classmethod
    def config_from_parameters(cls, group: Mapping[str, Any], score_threshold: float) -> dict[str, Any]:
        # negative: the node uses the model's operating threshold, above the net's
        net = NET_SCORE_THRESHOLD if score_threshold < 0 else min(score_threshold, NET_SCORE_THRESHOLD)
        return {**group, "score_threshold": net}

    def training_batch(self, indices: Sequence[int], context: TrainingContext
                       ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        """(images (C, H, W) float32, targets {boxes (N, 4), labels (N,), masks (N, H, W)
        uint8; with ``mask_draped_weight`` > 0 and a dataset that has them, draped (H, W)
        uint8: the pixels draped over another instance})."""
        from msseg_ros.core.learning.augment import augment_instances, boxes_from_masks
        from msseg_ros.core.learning.targets import draped_map

        images, targets = [], []
        for i in indices:
            frame, tgt = context.dataset[int(i)]
            draped = draped_map(context.dataset, int(i)) if self.config["mask_draped_weight"] > 0 else None
            if draped is not None:  # through the same augmentation, as one more mask of label 0
                tgt = {**tgt, "masks": np.concatenate([tgt["masks"], draped[None]]),
                       "labels": np.append(tgt["labels"], 0)}
            frame, masks, labels = augment_instances(frame, tgt, context)
            images.append(channels_first(frame))
            target: dict[str, torch.Tensor] = {}
            if draped is not None:
                kept = labels == 0  # gone when augmentation left it under 4 pixels
                target["draped"] = torch.from_numpy(masks[kept].any(0).astype(np.uint8)) if kept.any() else \
                    torch.zeros(frame.shape[:2], dtype=torch.uint8)
                masks, labels = masks[~kept], labels[~kept]
            target.update({
                "boxes": torch.from_numpy(boxes_from_masks(masks)).reshape(-1, 4),
                "labels": torch.from_numpy(labels),
                "masks": torch.from_numpy(masks.astype(np.uint8)),
            })
            targets.append(target)
        return images, targets

    def training_losses(self, batch: tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]
                        ) -> dict[str, torch.Tensor]:
        images, targets = batch
        dev = self._device
        images = [im.to(dev, non_blocking=True) for im in images]
        targets = [{k: v.to(dev, non_blocking=True) for k, v in tg.items()} for tg in targets]
        contact, draped = float(self.config["mask_contact_weight"]), float(self.config["mask_draped_weight"])
        if contact <= 0 and draped <= 0:
            return self.net(images, targets)
        if self._pixel_weights is None:
            from msseg_ros.core.segmentation.maskrcnn_mask_weights import MaskPixelWeights

            self._pixel_weights = MaskPixelWeights(self.net, contact, int(self.config["mask_contact_px"]), draped)
        losses = self.net(images, targets)
        losses["loss_mask_weighted"] = self._pixel_weights.loss()
        return losses

    def end_training(self) -> None:
        if self._pixel_weights is not None:
            self._pixel_weights.close()
            self._pixel_weights = None

    def adversary(self, weights: Adversarial, seed: int) -> MaskRCNNAdversary:
        """Box and mask critics (seed 002; see ``maskrcnn_gan``)."""
        from msseg_ros.core.segmentation.maskrcnn_gan import MaskRCNNAdversary

        return MaskRCNNAdversary(self.net, weights.box, weights.mask, seed).to(self._device)

    def export_spec(self) -> ExportSpec:
        """torchvision's Mask R-CNN at test time on one (C, H, W) image: boxes (N, 4),
        labels (N,), scores (N,) and (N, 1, M, M) mask probabilities over each box."""
        c = self.in_channels
        example = torch.as_tensor(self.config["image_mean"], dtype=torch.float32).view(c, 1, 1).expand(c, 256, 256)
        return ExportSpec(_DetectionTuple(self.net).eval(), (example.contiguous(),), ("image",),
                          ("boxes", "labels", "scores", "masks"),
                          {"image": {1: "height", 2: "width"}, "boxes": {0: "detections"},
                           "labels": {0: "detections"}, "scores": {0: "detections"}, "masks": {0: "detections"}})

    def raw(self, frame: np.ndarray) -> dict[str, torch.Tensor]:
        """The network's detections, as a dict, for one (H, W, C) float32 frame: boxes (N,
        4) in the frame's pixels, labels (N,), scores (N,), and masks (N, 1, M, M), each
        over its box (:func:`paste_masks`)."""
        x = channels_first(frame).to(self._device)
        boxes, labels, scores, masks = self.engine(x)
        return {"boxes": boxes, "labels": labels, "scores": scores, "masks": masks}

    def predict(self, frame: np.ndarray) -> Instances:
        out = self.raw(frame)
        scores = out["scores"].cpu().numpy()
        if len(scores) == 0:
            return Instances.empty(frame.shape[:2])
        # numpy on the CPU: torch's thread pool, woken beside a runtime's spinning threads,
        # took 4 ms for what numpy does in 0.1 (2 cores, ONNX Runtime)
        masks = paste_masks(out["masks"][:, 0].cpu().numpy(), out["boxes"].cpu().numpy(), frame.shape[:2],
                            self.config["mask_threshold"])
        masks, scores, classes = merge_parts(masks, scores, out["labels"].cpu().numpy(), self.config["merge_parts"])
        keep = visible_fractions(masks, scores) >= self.config["min_visible_fraction"]
        masks, scores, classes = masks[keep], scores[keep], classes[keep]
        if len(scores) == 0:
            return Instances.empty(frame.shape[:2])
        labels, order = masks_to_labels(masks, scores)
        return Instances.from_labels(labels, classes[order], scores[order])
