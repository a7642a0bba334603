"""Adversarial Mask R-CNN (seed 002): the critics' losses, their gradients, and that they
leave plain training and the checkpoint format exactly as they were."""
import json

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.learning.options import Adversarial, TrainOptions
from msseg_ros.core.learning.train import load_train_config, train
from msseg_ros.core.segmentation.base import ModelConfigError
from msseg_ros.core.segmentation.checkpoint import load_checkpoint
from msseg_ros.core.segmentation.loading import load_segmenter
from msseg_ros.core.segmentation.maskrcnn import MaskRCNNSegmenter
from msseg_ros.core.segmentation.maskrcnn_gan import MASK_CRITIC_CLIP, ROI_SIZE, pool_boxes
from msseg_ros.core.sim.dataset import generate

SLIM = {"backbone": "resnet18", "fpn_channels": 32, "box_representation": 64, "mask_channels": 16,
        "min_size": 64, "max_size": 128, "score_threshold": 0.0, "in_channels": 4, "classes": ["a", "b"],
        "image_mean": [0.0] * 4, "image_std": [1.0] * 4}


def _batch():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(4, 64, 64, generator=g)
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 10:30, 12:40] = 1
    masks[1, 40:60, 5:25] = 1
    target = {"boxes": torch.tensor([[12.0, 10.0, 40.0, 30.0], [5.0, 40.0, 25.0, 60.0]]),
              "labels": torch.tensor([2, 1]), "masks": masks}
    return [img, img.flip(-1)], [target, {**target, "boxes": target["boxes"][:, [2, 1, 0, 3]] * torch.tensor(
        [-1.0, 1.0, -1.0, 1.0]) + torch.tensor([64.0, 0.0, 64.0, 0.0]), "masks": masks.flip(-1)}]


def _segmenter():
    torch.manual_seed(0)
    seg = MaskRCNNSegmenter.from_config(dict(SLIM))
    seg.net.train()
    return seg


def test_adversarial_losses_have_gradients_into_the_heads():
    seg = _segmenter()
    adv = seg.adversary(Adversarial(box=0.5, mask=2.0), seed=3)
    images, targets = _batch()
    losses = seg.net(images, targets)
    gen = adv.generator_losses()
    assert set(gen) == {"loss_adv_box", "loss_adv_mask"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in gen.values())
    heads = seg.net.roi_heads
    box_w, mask_w = heads.box_predictor.bbox_pred.weight, heads.mask_predictor.mask_fcn_logits.weight
    g_box = torch.autograd.grad(gen["loss_adv_box"], [box_w, mask_w], allow_unused=True, retain_graph=True)
    g_mask = torch.autograd.grad(gen["loss_adv_mask"], [box_w, mask_w], allow_unused=True, retain_graph=True)
    # the box critic reaches the box regression (through the coordinates), the mask
    # critic the mask logits; neither crosses to the other head
    assert g_box[0] is not None and g_box[0].abs().sum() > 0 and g_box[1] is None
    assert g_mask[1] is not None and g_mask[1].abs().sum() > 0 and g_mask[0] is None
    # the critics' own loss reaches the critics only (their inputs are detached)
    critic = adv.critic_loss()
    critic.backward()
    assert all(p.grad is not None for p in adv.parameters())
    assert all(p.grad is None for p in seg.net.parameters())
    adv.after_critic_step()
    assert max(float(p.detach().abs().max()) for p in adv.mask_critic.parameters()) == pytest.approx(MASK_CRITIC_CLIP)
    assert {"loss_classifier", "loss_mask"} <= set(losses)
    adv.close()
    assert "select_training_samples" not in vars(heads)


def test_weights_scale_the_losses_and_zero_turns_one_off():
    images, targets = _batch()
    values = {}
    for w in (1.0, 3.0):
        seg = _segmenter()
        adv = seg.adversary(Adversarial(box=w, mask=0.0), seed=3)
        seg.net(images, targets)
        values[w] = adv.generator_losses()
        adv.close()
    assert set(values[1.0]) == {"loss_adv_box"} and adv.mask_critic is None
    assert values[3.0]["loss_adv_box"].item() == pytest.approx(3 * values[1.0]["loss_adv_box"].item(), rel=1e-5)
    with pytest.raises(ValueError, match="box or a mask weight"):
        _segmenter().adversary(Adversarial(), seed=0)


def test_critics_leave_the_global_generator_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    seg = _segmenter()
    torch.manual_seed(5)
    adv = seg.adversary(Adversarial(box=1.0, mask=1.0), seed=7)
    assert torch.equal(torch.rand(3), expected)
    again = seg.adversary(Adversarial(box=1.0, mask=1.0), seed=7)
    assert all(torch.equal(a, b) for a, b in zip(adv.state_dict().values(), again.state_dict().values(), strict=True))
    adv.close()
    again.close()


def test_box_pooling_matches_roi_align_and_is_differentiable_in_the_box():
    g = torch.Generator().manual_seed(1)
    fmaps = [torch.randn(2, 3, 32, 32, generator=g), torch.randn(2, 3, 16, 16, generator=g)]
    scales = [0.5, 0.25]
    boxes = torch.tensor([[8.0, 10.0, 40.0, 30.0], [20.0, 4.0, 50.0, 60.0], [6.0, 6.0, 56.0, 50.0]],
                         requires_grad=True)
    levels = torch.tensor([0, 0, 1])
    image = torch.tensor([0, 1, 1])
    pooled = pool_boxes(fmaps, scales, levels, boxes, image, size=7)
    assert pooled.shape == (3, 3, 7, 7)
    for k in range(3):
        rois = torch.cat([image[k:k + 1, None].float(), boxes[k:k + 1].detach()], 1)
        ref = roi_align(fmaps[levels[k]], rois, 7, scales[levels[k]], sampling_ratio=2, aligned=True)
        assert torch.allclose(pooled[k:k + 1], ref, atol=1e-5)
    pooled.sum().backward()
    assert boxes.grad is not None and (boxes.grad.abs() > 0).all()
    assert pool_boxes(fmaps, scales, levels, boxes, image).shape[-1] == ROI_SIZE


def test_model_types_without_critics_refuse_adversarial_training():
    from msseg_ros.core.segmentation.embeddings import EmbeddingSegmenter

    seg = EmbeddingSegmenter.from_config({"in_channels": 3, "classes": ["o"], "width": 25,
                                          "image_mean": [0.0] * 3, "image_std": [1.0] * 3})
    with pytest.raises(ModelConfigError, match="'embeddings' has no adversarial training"):
        seg.adversary(Adversarial(mask=1.0), seed=0)


@pytest.mark.parametrize("section, message", [
    ({"adversarial": {"box": -1}}, "train.adversarial.box is a loss weight >= 0"),
    ({"adversarial": {"boxes": 1}}, "unknown train.adversarial option 'boxes'; options: box, mask"),
    ({"adversarial": 0.5}, "train.adversarial must be a mapping"),
    ({"adversarial": {"mask": "much"}}, "train.adversarial.mask must be float"),
])
def test_adversarial_option_errors(section, message):
    with pytest.raises(ConfigError, match=message):
        TrainOptions.from_mapping(section)


# ---- through the trainer -------------------------------------------------------------
@pytest.fixture(scope="module")
def line(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan") / "line"
    generate("sorting_line", root, 4, 3, {"pixel_size": 0.004, "line_pitch": 0.004}, lines=64)
    return root / "annotations"


def _config(tmp_path, line, name, sets):
    base = {"model.type": "maskrcnn", "model.backbone": "resnet18", "model.fpn_channels": 32,
            "model.box_representation": 64, "model.mask_channels": 16, "model.min_size": 64,
            "model.max_size": 128, "data.train": str(line / "learning.json"), "train.epochs": 1,
            "train.batch_size": 2, "train.device": "cpu", "train.seed": 4, "out": str(tmp_path / name)}
    return load_train_config(None, {**base, **sets})


def _run(tmp_path, line, name, sets, resume=False):
    return train(_config(tmp_path, line, name, sets), resume=resume, log=lambda _msg: None)


def test_zero_weights_are_exactly_plain_training(tmp_path, line):
    plain = _run(tmp_path, line, "plain", {})
    zero = _run(tmp_path, line, "zero", {"train.adversarial.box": 0.0, "train.adversarial.mask": 0})
    assert plain["history"][0]["train_loss"] == zero["history"][0]["train_loss"]
    a, _ = load_checkpoint(tmp_path / "plain" / "model.safetensors")
    b, _ = load_checkpoint(tmp_path / "zero" / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_adversarial_run_saves_a_plain_checkpoint_and_resumes(tmp_path, line):
    plain = _run(tmp_path, line, "plain", {})
    sets = {"train.adversarial.box": 0.1, "train.adversarial.mask": 1.0}
    gan = _run(tmp_path, line, "gan", sets)
    entry = gan["history"][0]
    assert np.isfinite(entry["critic_loss"]) and entry["train_loss"] != plain["history"][0]["train_loss"]
    a, _ = load_checkpoint(tmp_path / "plain" / "model.safetensors")
    b, _ = load_checkpoint(tmp_path / "gan" / "model.safetensors")
    assert a.keys() == b.keys()  # no critic in the model checkpoint
    seg = load_segmenter(tmp_path / "gan" / "model.safetensors")
    frame = np.full((64, 64, 11), 2000.0, np.float32)
    assert seg(frame).labels.shape == (64, 64)
    # the critics and their optimiser are part of the resumable state
    last, _ = load_checkpoint(tmp_path / "gan" / "last.safetensors")
    assert any(k.startswith("critic.model.") for k in last) and any(k.startswith("critic.opt.") for k in last)
    resumed = _run(tmp_path, line, "gan", {**sets, "train.epochs": 2}, resume=True)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert json.loads((tmp_path / "gan" / "state.json").read_text())["step"] == 2 * gan["step"]
    # a plain run's state has no critics to resume
    with pytest.raises(ConfigError, match="holds no critic state to resume"):
        _run(tmp_path, line, "plain", {**sets, "train.epochs": 2}, resume=True)


def test_critics_judge_a_bounded_random_subset(monkeypatch):
    import msseg_ros.core.segmentation.maskrcnn_gan as gan

    monkeypatch.setattr(gan, "MAX_SAMPLES", 3)
    seg = _segmenter()
    adv = seg.adversary(Adversarial(box=1.0, mask=1.0), seed=3)
    images, targets = _batch()
    seg.net(images, targets)
    losses = adv.generator_losses()
    assert all(torch.isfinite(v) for v in losses.values())
    for real, fake in adv._critic_inputs.values():
        assert len(real) == len(fake) == 3  # the batch has far more foreground RoIs
    adv.close()


def test_an_image_without_objects_in_the_batch():
    seg = _segmenter()
    adv = seg.adversary(Adversarial(box=1.0, mask=1.0), seed=3)
    images, targets = _batch()
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros((0, 64, 64), dtype=torch.uint8)}
    seg.net([images[0], images[1]], [targets[0], empty])
    losses = adv.generator_losses()
    assert set(losses) == {"loss_adv_box", "loss_adv_mask"} and all(torch.isfinite(v) for v in losses.values())
    assert torch.isfinite(adv.critic_loss())
    seg.net([images[1]], [empty])  # a batch with no object at all
    assert all(torch.isfinite(v) for v in adv.generator_losses().values())
    adv.close()
