"""Mask R-CNN's mask loss with weighted pixels (maskrcnn_mask_weights): the bands where
instances meet, draped pixels, the loss's value and gradients, the training batch's draped
maps, and that it is off unless configured."""
import numpy as np
import pytest
import torch

from msseg_ros.core.segmentation.base import ModelConfigError
from msseg_ros.core.segmentation.maskrcnn import MaskRCNNSegmenter
from msseg_ros.core.segmentation.maskrcnn_mask_weights import MaskPixelWeights, contact_bands

SLIM = {"backbone": "resnet18", "fpn_channels": 32, "box_representation": 64, "mask_channels": 16,
        "min_size": 64, "max_size": 64, "score_threshold": 0.0, "in_channels": 3, "classes": ["a"],
        "image_mean": [0.0] * 3, "image_std": [1.0] * 3}


def test_bands_lie_where_two_instances_meet_on_both_sides():
    masks = torch.zeros(3, 20, 20, dtype=torch.uint8)
    masks[0, 2:10, 2:8] = 1  # columns 2-7
    masks[1, 2:10, 8:14] = 1  # columns 8-13: touches 0 along column 7 | 8
    masks[2, 15:19, 15:19] = 1  # alone
    bands = contact_bands(masks, 2)
    assert bands.shape == (3, 20, 20) and bands.dtype == torch.bool
    # instance 0's band: its own columns 6-7 and instance 1's columns 8-9, rows 2-9
    # (instance 1's pixels within 2 px of its own, as a box: rows 0-11 but 1 lies in rows 2-9)
    assert torch.equal(bands[0].nonzero()[:, 1].unique(), torch.tensor([6, 7, 8, 9]))
    assert torch.equal(bands[0].nonzero()[:, 0].unique(), torch.arange(2, 10))
    assert torch.equal(bands[1].nonzero()[:, 1].unique(), torch.tensor([6, 7, 8, 9]))
    assert not bands[2].any()  # meets nobody
    assert not bands[:, 15:, 15:].any()
    assert int(contact_bands(masks, 1)[0].sum()) == 2 * 8  # one column a side, 8 rows
    assert not contact_bands(masks[:1], 2).any()  # one instance: nothing to meet
    with pytest.raises(ValueError, match="band width"):
        contact_bands(masks, 0)


def _batch(touching: bool):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 64, 64, generator=g)
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 10:40, 8:30] = 1
    right = 30 if touching else 40
    masks[1, 12:44, right:right + 20] = 1
    boxes = torch.tensor([[8.0, 10.0, 30.0, 40.0], [float(right), 12.0, float(right + 20), 44.0]])
    return [img], [{"boxes": boxes, "labels": torch.tensor([1, 1]), "masks": masks}]


def _segmenter(**cfg):
    torch.manual_seed(0)
    seg = MaskRCNNSegmenter.from_config({**SLIM, **cfg})
    seg.net.train()
    return seg


def test_the_loss_is_weighted_reaches_the_mask_head_only_and_is_zero_without_contact():
    values = {}
    for w in (1.0, 3.0):
        seg = _segmenter(mask_contact_weight=w, mask_contact_px=2)
        torch.manual_seed(1)  # the same proposals sampled for both weights
        losses = seg.training_losses(_batch(touching=True))
        values[w] = losses["loss_mask_weighted"]
        assert {"loss_mask", "loss_mask_weighted"} <= set(losses)
    assert float(values[1.0].detach()) > 0
    assert float(values[3.0].detach()) == pytest.approx(3 * float(values[1.0].detach()), rel=1e-5)
    heads = seg.net.roi_heads
    box_w, mask_w = heads.box_predictor.bbox_pred.weight, heads.mask_predictor.mask_fcn_logits.weight
    g_box, g_mask = torch.autograd.grad(values[3.0], [box_w, mask_w], allow_unused=True)
    assert g_box is None and g_mask is not None and g_mask.abs().sum() > 0
    # the band pixels are part of the mask loss's pixels: weighted by w they add at most
    # w x torchvision's mean over all of them
    assert float(values[3.0].detach()) <= 3 * float(losses["loss_mask"].detach()) + 1e-6
    apart = _segmenter(mask_contact_weight=3.0).training_losses(_batch(touching=False))
    assert float(apart["loss_mask_weighted"].detach()) == 0.0 and float(apart["loss_mask"].detach()) > 0


def test_off_by_default_checked_when_set_and_loss_needs_a_forward_pass():
    seg = _segmenter()
    assert seg.config["mask_contact_weight"] == 0.0
    assert "loss_mask_weighted" not in seg.training_losses(_batch(touching=True))
    for bad in ({"mask_contact_weight": -1.0}, {"mask_contact_px": 0}, {"mask_contact_px": 2.5},
                {"mask_draped_weight": -0.5}):
        with pytest.raises(ModelConfigError, match="mask_"):
            MaskRCNNSegmenter.validate_config({**SLIM, **bad})
    weights = MaskPixelWeights(seg.net, 1.0, 2)
    with pytest.raises(RuntimeError, match="before a training forward pass"):
        weights.loss()
    weights.close()
    with pytest.raises(ValueError, match="one > 0"):
        MaskPixelWeights(seg.net, 0.0, 2, 0.0)


def test_end_training_removes_the_hooks_and_training_can_start_again():
    seg = _segmenter(mask_contact_weight=2.0)
    hooked = (seg.net.transform, seg.net.roi_heads.mask_roi_pool, seg.net.roi_heads.mask_predictor)
    assert [len(m._forward_hooks) for m in hooked] == [0, 0, 0]
    seg.training_losses(_batch(touching=True))
    assert [len(m._forward_hooks) for m in hooked] == [1, 1, 1]
    seg.end_training()
    assert [len(m._forward_hooks) for m in hooked] == [0, 0, 0]
    seg.end_training()  # twice is harmless
    assert float(seg.training_losses(_batch(touching=True))["loss_mask_weighted"].detach()) > 0


def test_draped_pixels_weigh_only_where_the_target_has_them():
    images, targets = _batch(touching=False)
    draped = torch.zeros(64, 64, dtype=torch.uint8)
    draped[10:20, 8:30] = 1  # the top rows of instance 0
    values = {}
    for w in (1.0, 2.0):
        seg = _segmenter(mask_draped_weight=w)
        torch.manual_seed(1)
        values[w] = float(seg.training_losses((images, [{**targets[0], "draped": draped}]))["loss_mask_weighted"].detach())
    assert values[1.0] > 0 and values[2.0] == pytest.approx(2 * values[1.0], rel=1e-5)
    seg = _segmenter(mask_draped_weight=1.0)
    assert float(seg.training_losses(_batch(touching=False))["loss_mask_weighted"].detach()) == 0.0  # none given
    # a draped map at another size than the resized masks is resampled to theirs
    seg = _segmenter(mask_draped_weight=1.0, min_size=128, max_size=128)
    torch.manual_seed(1)
    assert float(seg.training_losses((images, [{**targets[0], "draped": draped}]))["loss_mask_weighted"].detach()) > 0


def test_the_training_batch_carries_the_datasets_draped_maps(tmp_path):
    from msseg_ros.core.learning.data import CocoFrames
    from msseg_ros.core.learning.options import TrainingContext, TrainOptions
    from msseg_ros.core.learning.targets import draped_map
    from msseg_ros.core.sim.dataset import generate

    generate("bin_picking", tmp_path, count=2, seed=5, split=(1.0, 0.0, 0.0))
    ds = CocoFrames(tmp_path / "annotations" / "learning.json")
    maps = [draped_map(ds, i) for i in range(len(ds))]
    assert all(m is not None and m.shape == (256, 256) for m in maps) and any(m.any() for m in maps)
    seg = _segmenter(mask_draped_weight=2.0)
    context = TrainingContext(dataset=ds, options=TrainOptions.from_mapping({"augment": {"hflip": 0.0, "vflip": 0.0}}),
                              rng=np.random.default_rng(0), fill=np.zeros(3, np.float32))
    _, targets = seg.training_batch([0, 1], context)
    for t, m, i in zip(targets, maps, range(2), strict=True):
        assert torch.equal(t["draped"], torch.from_numpy(m.astype("uint8")))
        assert len(t["masks"]) == len(ds[i][1]["masks"]) and int(t["labels"].min()) >= 1
    assert "draped" not in _segmenter().training_batch([0], context)[1][0]
