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


def test_masks_are_pasted_as_torchvision_pastes_them():
    """The network's 28 x 28 masks put in the image in numpy give torchvision's pasted masks
    to the pixel: boxes inside, across every edge, wholly outside, one pixel wide; and the
    segmenter's detections (its own RPN, masks unpasted) are torchvision's whole model's."""
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from msseg_ros.core.segmentation.maskrcnn import paste_masks

    rng = np.random.default_rng(3)
    probs = rng.uniform(0, 1, (9, 28, 28)).astype(np.float32)
    boxes = np.array([[10, 12, 40, 30], [-8, 5, 20, 44], [60, -6, 95, 20], [70, 50, 140, 90], [3.4, 7.7, 4.2, 50.9],
                      [30, 30, 30.5, 31], [200, 10, 230, 40], [-40, -40, -5, -3], [0.6, 0.2, 87.9, 63.8]], np.float32)
    ours = paste_masks(probs, boxes, (64, 88), 0.5)
    assert ours.shape == (9, 64, 88) and ours.dtype == bool
    inside = [0, 1, 2, 3, 4, 5, 8]  # torchvision's paste fails on a box wholly outside; ours leaves it empty
    expected = paste_masks_in_image(torch.from_numpy(probs[inside])[:, None], torch.from_numpy(boxes[inside]),
                                    (64, 88), padding=1)
    np.testing.assert_array_equal(ours[inside], expected[:, 0].numpy() > 0.5)
    assert all(ours[i].any() for i in inside) and not ours[6].any() and not ours[7].any()

    seg = MaskRCNNSegmenter.from_config({**SLIM, "backbone": "resnet18", "in_channels": 3, "classes": ["a"],
                                         "image_mean": [0.5] * 3, "image_std": [0.25] * 3})
    frame = rng.uniform(0, 1, (72, 88, 3)).astype(np.float32)
    with torch.inference_mode():
        out = seg.raw(frame)  # our RPN and unpasted masks
        (expected,) = seg.net.eval()([torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))])
    assert out["masks"].shape[1:] == (1, 28, 28) and len(out["masks"]) > 0
    for key in ("boxes", "labels", "scores"):
        assert torch.equal(out[key], expected[key])
    # the two forward passes may differ in a logit's last bit: a pixel within 1e-4 of the
    # threshold may then fall either way (random weights put many there)
    probs = expected["masks"][:, 0].numpy()
    clear = np.abs(probs - 0.5) > 1e-4
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(paste_masks(out["masks"][:, 0].numpy(), out["boxes"].numpy(), (72, 88), 0.5)[clear],
                                  (probs > 0.5)[clear])
