import numpy as np
import pytest
import torch

from msseg_ros.core.segmentation.base import ModelConfigError
from msseg_ros.core.segmentation.maskrcnn import BACKBONES, MaskRCNNSegmenter

SLIM = {"fpn_channels": 32, "box_representation": 64, "mask_channels": 16, "min_size": 64, "max_size": 128,
        "score_threshold": 0.0}


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large"])
def test_eleven_channel_input(backbone):
    seg = MaskRCNNSegmenter.from_config({**SLIM, "backbone": backbone})
    net = seg.net
    first = next(m for m in net.backbone.body.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 11 and first.weight.requires_grad
    assert net.transform.image_mean == pytest.approx([0.16, 64593, 64404, 2014, 1911, 2502, 2479, 2318, 2281, 2200, 2187])
    assert len(net.transform.image_std) == 11
    ratios = net.rpn.anchor_generator.aspect_ratios[0]
    assert tuple(ratios) == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
    sizes = net.rpn.anchor_generator.sizes
    assert {s for level in sizes for s in level} == {8, 16, 32, 64, 128}
    assert net.roi_heads.box_predictor.cls_score.out_features == 10  # 9 classes + background
    frame = np.random.default_rng(0).normal(2000, 500, (64, 80, 11)).astype(np.float32)
    inst = seg(frame)
    assert inst.labels.shape == (64, 80) and len(inst.scores) == len(inst)


def test_training_step_gives_finite_losses():
    seg = MaskRCNNSegmenter.from_config({**SLIM, "backbone": "resnet18", "in_channels": 4, "classes": ["a", "b"],
                                         "image_mean": [0.0] * 4, "image_std": [1.0] * 4})
    seg.net.train()
    img = torch.randn(4, 64, 64)
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 10:30, 12:40] = 1
    target = {"boxes": torch.tensor([[12.0, 10.0, 40.0, 30.0]]), "labels": torch.tensor([2]), "masks": masks}
    losses = seg.net([img], [target])
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()


def test_backbone_list_and_errors():
    assert BACKBONES == ("resnet18", "resnet34", "resnet50", "resnet101", "resnext50_32x4d",
                         "resnext101_32x8d", "mobilenet_v3_large")
    with pytest.raises(ModelConfigError, match="'backbone' = 'vgg16'; choose one of resnet18"):
        MaskRCNNSegmenter.validate_config({"backbone": "vgg16"})
    with pytest.raises(ModelConfigError, match="'image_std' has 11 values for 3 input channels"):
        MaskRCNNSegmenter.validate_config({"in_channels": 3, "image_mean": [0.0] * 3})
