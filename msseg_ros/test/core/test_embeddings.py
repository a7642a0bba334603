"""The spatial-embeddings model (Neven et al. 2019): network, losses, clustering, contract."""
import numpy as np
import pytest
import torch
from torch import nn

from msseg_ros.core.segmentation.base import SEGMENTERS, ModelConfigError
from msseg_ros.core.segmentation.embeddings import (
    EmbeddingNet,
    EmbeddingSegmenter,
    cluster,
    coordinate_map,
    embedding_losses,
    lovasz_hinge,
)


def test_registered_as_a_model_type():
    assert SEGMENTERS.get("embeddings") is EmbeddingSegmenter
    assert "embeddings" in SEGMENTERS.names()


@pytest.mark.parametrize("width,sigma_axes", [(100, 2), (50, 1)])
def test_erfnet_shapes_and_structure(width, sigma_axes):
    net = EmbeddingNet(in_channels=11, n_classes=9, width=width, sigma_axes=sigma_axes).eval()
    with torch.no_grad():
        inst, seeds = net(torch.randn(2, 11, 64, 88))
    assert inst.shape == (2, 2 + sigma_axes, 64, 88) and seeds.shape == (2, 9, 64, 88)
    # factorised 3x1 / 1x3 convolutions, dilations 2, 4, 8, 16 twice in the last stage
    dil = [m.dilation[0] for m in net.encoder.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 1)]
    assert dil[-16:] == [1, 2, 1, 4, 1, 8, 1, 16] * 2
    # one shared encoder, two decoders
    assert net.instance_decoder is not net.seed_decoder


def test_initial_output_is_zero_offset_and_the_initial_sigma():
    net = EmbeddingNet(3, 1, width=25, sigma_axes=2, initial_log_sigma=-1.5).eval()
    with torch.no_grad():
        inst, _ = net(torch.randn(1, 3, 32, 32))
    assert torch.allclose(inst[:, 2:], torch.full_like(inst[:, 2:], -1.5))


def test_lovasz_hinge_is_zero_when_right_and_the_jaccard_loss_of_the_errors():
    gt = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])
    right = torch.tensor([5.0, 5.0, 5.0, -5.0, -5.0])
    assert float(lovasz_hinge(right, gt)) == 0.0
    # pixels 0 (missed) and 3 (false) sit on the margin (hinge error 1), the rest are right:
    # the extension at that indicator is the Jaccard loss |M| / |gt U M| = 2 / 4
    errs = torch.tensor([0.0, 5.0, 5.0, 0.0, -5.0])
    assert float(lovasz_hinge(errs, gt)) == pytest.approx(0.5)
    # all wrong with margin 1: Jaccard loss 1 scaled by the hinge error 2
    assert float(lovasz_hinge(-right / 5, gt)) == pytest.approx(2.0)


def _two_squares(H=32, W=48):
    labels = torch.zeros(H, W, dtype=torch.int64)
    labels[4:14, 4:14] = 1
    labels[16:28, 26:40] = 2
    return labels


def _perfect_outputs(labels, n_classes, classes, range_px, log_sigma=-3.0):
    """Raw outputs whose embeddings land on each instance's centroid and whose seed maps
    are 1 on the instances of their class."""
    H, W = labels.shape
    xy = coordinate_map(H, W, range_px)
    off = torch.zeros(2, H, W)
    seeds = torch.full((n_classes, H, W), -20.0)
    for k in range(1, int(labels.max()) + 1):
        m = labels == k
        c = xy[:, m].mean(1, keepdim=True)
        off[:, m] = torch.atanh(c - xy[:, m])
        seeds[classes[k - 1], m] = 20.0
    inst = torch.cat([off, torch.full((2, H, W), log_sigma)])
    return inst, seeds


def test_losses_of_perfect_outputs_are_near_zero_and_of_wrong_ones_large():
    labels = _two_squares()
    classes = torch.tensor([0, 2])
    inst, seeds = _perfect_outputs(labels, 3, classes, range_px=32.0)
    good = embedding_losses(inst[None], seeds[None], labels[None], [classes], 32.0)
    assert set(good) == {"loss_instance", "loss_smoothness", "loss_seed"}
    assert float(good["loss_instance"]) < 1e-3 and float(good["loss_smoothness"]) == 0.0
    assert float(good["loss_seed"]) < 1e-3
    # zero offsets: pixels far from the centre fall outside the Gaussian
    bad = inst.clone()
    bad[:2] = 0.0
    worse = embedding_losses(bad[None], seeds[None], labels[None], [classes], 32.0)
    assert float(worse["loss_instance"]) > 0.3
    # seeds of the wrong class
    wrong = seeds[[1, 0, 2]]
    assert float(embedding_losses(inst[None], wrong[None], labels[None], [classes], 32.0)["loss_seed"]) > 0.01
    # log-sigma that varies inside an instance is penalised (weight 10)
    rough = inst.clone()
    rough[2:, 4:9, 4:14] += 1.0
    assert float(embedding_losses(rough[None], seeds[None], labels[None], [classes], 32.0)["loss_smoothness"]) > 1.0


def test_the_class_term_makes_seed_maps_compete_and_is_off_by_default():
    labels = _two_squares()
    classes = torch.tensor([0, 2])
    inst, seeds = _perfect_outputs(labels, 3, classes, range_px=32.0)
    logits = seeds.clone()  # raw seed logits (+-20)
    off = embedding_losses(inst[None], logits[None], labels[None], [classes], 32.0)
    assert "loss_class" not in off  # the paper's three losses
    on = embedding_losses(inst[None], logits[None], labels[None], [classes], 32.0, class_weight=2.0)
    assert {k: float(v) for k, v in on.items() if k != "loss_class"} == {k: float(v) for k, v in off.items()}
    right = float(on["loss_class"])
    swapped = embedding_losses(inst[None], logits[[2, 1, 0]][None], labels[None], [classes], 32.0, class_weight=2.0)
    assert right < 0.01 and float(swapped["loss_class"]) > 10.0  # the wrong class's map is high
    # equal seed maps: log K per pixel, times the weight
    flat = torch.zeros_like(logits, requires_grad=True)
    tie = embedding_losses(inst[None], flat[None], labels[None], [classes], 32.0, class_weight=2.0)
    assert float(tie["loss_class"].detach()) == pytest.approx(2.0 * np.log(3), rel=1e-5)
    tie["loss_class"].backward()
    g = flat.grad
    assert float(g[0][labels == 1].mean()) < 0 < float(g[1][labels == 1].mean())  # raise the true class's map
    assert float(g[:, labels == 0].abs().sum()) == 0.0  # background pixels take no part


def test_losses_on_an_image_without_objects():
    inst = torch.zeros(1, 4, 16, 16, requires_grad=True)
    seeds = torch.zeros(1, 2, 16, 16, requires_grad=True)
    out = embedding_losses(inst, seeds, torch.zeros(1, 16, 16, dtype=torch.int64), [torch.zeros(0)], 32.0)
    assert float(out["loss_instance"].detach()) == 0.0
    assert float(out["loss_seed"].detach()) == pytest.approx(0.25)
    sum(out.values()).backward()  # the background still trains the seed maps
    assert seeds.grad is not None and float(seeds.grad.abs().sum()) > 0


def test_cluster_recovers_instances_classes_and_scores():
    labels = _two_squares()
    classes = torch.tensor([0, 2])
    inst, seed_logits = _perfect_outputs(labels, 3, classes, range_px=32.0)
    seeds = torch.sigmoid(seed_logits)
    seeds[2][labels == 2] = 0.8
    out, cls, scores = cluster(torch.tanh(inst[:2]), inst[2:], seeds, 32.0)
    assert len(cls) == 2
    assert sorted(cls.tolist()) == [0, 2]
    for k in (1, 2):  # each found mask is exactly one true instance
        found = out[labels.numpy() == k]
        assert len(set(found.tolist())) == 1 and found[0] > 0
    assert scores[cls.tolist().index(2)] == pytest.approx(0.8, abs=1e-5)
    # nothing above the seed threshold: nothing found
    out, cls, _ = cluster(torch.tanh(inst[:2]), inst[2:], seeds * 0.4, 32.0)
    assert len(cls) == 0 and out.max() == 0


def test_cluster_drops_proposals_smaller_than_min_pixels():
    labels = torch.zeros(24, 24, dtype=torch.int64)
    labels[2:4, 2:4] = 1  # 4 px
    labels[10:20, 10:20] = 2
    inst, seeds = _perfect_outputs(labels, 1, torch.tensor([0, 0]), 32.0)
    _, cls, _ = cluster(torch.tanh(inst[:2]), inst[2:], torch.sigmoid(seeds), 32.0, min_pixels=8)
    assert len(cls) == 1


def test_cluster_separates_touching_objects_of_one_class():
    labels = torch.zeros(24, 40, dtype=torch.int64)
    labels[4:20, 4:20] = 1
    labels[4:20, 20:36] = 2  # shares an edge with 1
    inst, seeds = _perfect_outputs(labels, 1, torch.tensor([0, 0]), 32.0)
    out, cls, _ = cluster(torch.tanh(inst[:2]), inst[2:], torch.sigmoid(seeds), 32.0)
    assert len(cls) == 2 and len(np.unique(out[4:20, 4:20])) == 1 and out[10, 10] != out[10, 30]


def _config(**kw):
    return {"in_channels": 3, "classes": ["a", "b"], "width": 25, "image_mean": [0.0] * 3,
            "image_std": [1.0] * 3, **kw}


@pytest.mark.parametrize("key,value", [("center", "middle"), ("sigma_axes", 3), ("width", 10),
                                       ("offset_range_px", 0.0), ("fg_threshold", 1.5), ("class_weight", -1.0)])
def test_bad_configs_name_the_key(key, value):
    with pytest.raises(ModelConfigError, match=key):
        EmbeddingSegmenter.from_config(_config(**{key: value}))


def test_weights_round_trip_and_prediction_contract():
    torch.manual_seed(0)
    a = EmbeddingSegmenter.from_config(_config())
    b = EmbeddingSegmenter.from_config(_config(), weights={k: v.numpy() for k, v in a.state_dict().items()})
    frame = np.random.default_rng(0).random((37, 45, 3)).astype(np.float32)
    ia, ib = a(frame), b(frame)
    assert ia.labels.shape == (37, 45)  # not a multiple of 8: padded inside, cropped back
    assert np.array_equal(ia.labels, ib.labels)
    assert ((ia.class_ids >= 1) & (ia.class_ids <= 2)).all()


def test_export_spec_runs_and_gives_three_maps():
    seg = EmbeddingSegmenter.from_config(_config(sigma_axes=1))
    spec = seg.export_spec()
    with torch.no_grad():
        off, ls, seeds = spec.module(*spec.example_inputs)
    assert spec.output_names == ("offsets", "log_sigma", "seeds")
    assert off.shape[1] == 2 and ls.shape[1] == 1 and seeds.shape[1] == 2
    assert float(off.abs().max()) <= 1.0 and 0.0 <= float(seeds.min()) and float(seeds.max()) <= 1.0


def test_a_few_steps_learn_two_squares():
    """Gradient steps on one synthetic frame reduce all three losses and then find both
    objects (a behaviour check of the losses and clustering together; not a speed test)."""
    torch.manual_seed(0)
    seg = EmbeddingSegmenter.from_config(_config(dropout=0.0, initial_sigma_px=4.0))
    labels = _two_squares()
    frame = torch.zeros(1, 3, 32, 48)
    frame[0, 0][labels == 1] = 1.0
    frame[0, 1][labels == 2] = 1.0
    classes = [torch.tensor([0, 1])]
    opt = torch.optim.Adam(seg.net.parameters(), lr=5e-3)
    seg.net.train()
    first = None
    for _ in range(150):
        losses = seg.training_losses((frame, labels[None], classes))
        total = sum(losses.values())
        first = first if first is not None else {k: float(v.detach()) for k, v in losses.items()}
        opt.zero_grad()
        total.backward()
        opt.step()
    seg.net.eval()
    last = {k: float(v.detach()) for k, v in seg.training_losses((frame, labels[None], classes)).items()}
    assert last["loss_instance"] < 0.5 * first["loss_instance"]
    assert last["loss_seed"] < 0.5 * first["loss_seed"]
    inst = seg(frame[0].numpy().transpose(1, 2, 0))
    assert sorted(inst.class_ids.tolist()) == [1, 2]
