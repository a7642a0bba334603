import numpy as np
import pytest
import torch
from torch import nn

from msseg_ros.core.segmentation.base import ModelConfigError
from msseg_ros.core.segmentation.bicameral import (
    BicameralNet,
    BicameralSegmenter,
    bicameral_loss,
    candidates_and_affordance,
)


def _convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("width", [25, 50, 75, 100])
def test_architecture_follows_seed_001(width):
    net = BicameralNet(in_channels=5, width=width)
    enc = _convs(net.encoder)
    assert len(enc) == 13 and all(c.kernel_size == (3, 3) for c in enc)
    assert enc[0].in_channels == 5
    assert [c.out_channels for c in enc] == [max(4, c * width // 100) for c in
                                            (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)]
    for dec in (net.boundary, net.occlusion):
        convs = _convs(dec)
        assert [c.out_channels for c in convs] == [max(4, c * width // 100) for c in (256, 128, 64, 32)]
        assert all(c.kernel_size == (5, 5) for c in convs)
    # the occlusion decoder also takes each boundary-decoder block's output
    b_in = [c.in_channels for c in _convs(net.boundary)]
    o_in = [c.in_channels for c in _convs(net.occlusion)]
    b_out = [c.out_channels for c in _convs(net.boundary)]
    assert o_in == [b + o for b, o in zip(b_in, b_out, strict=True)]
    assert net.boundary_out.kernel_size == (5, 5) and net.occlusion_out.out_channels == 1
    assert net.drop.p == 0.5


def test_pooling_indices_are_reused_and_shapes():
    net = BicameralNet(3, 25).eval()
    calls = []
    orig = net.unpool.forward
    net.unpool.forward = lambda x, idx: calls.append(idx.shape) or orig(x, idx)
    with torch.no_grad():
        y, z = net(torch.randn(1, 3, 64, 96))
    assert y.shape == z.shape == (1, 1, 64, 96)
    assert len(calls) == 8  # 4 unpoolings in each decoder, with the encoder's indices


def test_pooling_and_unpooling_are_torchs():
    """The exportable pooling gives torch's values and indices, ties (zeros after a ReLU)
    included; the unpooling is torch's max-unpooling."""
    from msseg_ros.core.segmentation.bicameral import Unpool2x, max_pool2x_with_indices

    x = torch.relu(torch.randn(2, 3, 8, 12))
    x[0, 0, :2, :2] = 0.0  # an all-zero window
    x[1, 2, 2:4, 4:6] = torch.tensor([[0.5, 0.7], [0.7, 0.1]])  # a tie off the first pixel
    pooled, idx = nn.functional.max_pool2d(x, 2, 2, return_indices=True)
    ours = max_pool2x_with_indices(x)
    assert torch.equal(ours[0], pooled) and torch.equal(ours[1], idx)
    assert torch.equal(Unpool2x()(pooled, idx), nn.functional.max_unpool2d(pooled, idx, 2, 2))


def test_loss_matches_equations_4_1_and_4_2():
    ly = torch.tensor([[[[0.3, -1.2], [2.0, 0.0]]]])
    lz = torch.tensor([[[[-0.5, 1.0], [0.7, -2.0]]]])
    y = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    z = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
    mu = 10.0
    lb, lo = bicameral_loss(ly, lz, y, z, mu)
    Yh, Zh = torch.sigmoid(ly).numpy(), torch.sigmoid(lz).numpy()
    Y, Z = y.numpy(), z.numpy()
    eb = -np.mean(mu * Y * np.log(Yh) + (1 - Y) * np.log(1 - Yh))
    eo = -np.mean(mu * Z * np.log(Zh) + ((mu - 1) * Y + 1) * (1 - Z) * np.log(1 - Zh))
    assert abs(lb.item() - eb) < 1e-5 and abs(lo.item() - eo) < 1e-5


def test_affordance_prefers_the_unoccluded_candidate():
    H, W = 40, 60
    Y = np.zeros((H, W))
    Y[5, 5:25] = Y[25, 5:25] = 1
    Y[5:26, 5] = Y[5:26, 25] = 1  # square A, fully enclosed
    Y[5, 35:55] = Y[25, 35:55] = 1
    Y[5:26, 35] = Y[5:26, 55] = 1  # square B, same size
    Z = np.zeros((H, W))
    Z[6:25, 6:9] = 1  # A's inner side is marked "unoccluded" along its edges
    Z[6:25, 22:25] = 1
    Z[6:9, 6:25] = 1
    Z[22:25, 6:25] = 1
    Z[26:29, 35:56] = 1  # B's edges are owned by its neighbour, outside
    labels, s1, s2 = candidates_and_affordance(Y, Z, 0.1, 0.1, 9, min_area_px=30, max_area_fraction=0.3)
    a, b = labels[15, 15], labels[15, 45]
    assert a and b and a != b and labels[0, 0] == 0  # the background is too large: filtered
    assert s1[a - 1] > s1[b - 1] + 0.1
    assert abs(s2[a - 1] - s2[b - 1]) < 0.05


def test_segmenter_pads_and_returns_affordance():
    seg = BicameralSegmenter.from_config({"width": 25, "in_channels": 3, "min_area_px": 1,
                                          "max_area_fraction": 1.0})
    inst = seg(np.random.default_rng(0).random((37, 50, 3)).astype(np.float32))
    assert inst.labels.shape == (37, 50)
    if len(inst):
        assert np.all(np.isfinite(inst.affordance)) and np.all(inst.class_ids == 1)


def test_bad_config():
    with pytest.raises(ModelConfigError, match="'width' = 30 is out of range"):
        BicameralSegmenter.validate_config({"width": 30})
    with pytest.raises(ModelConfigError, match="'image_mean' has 3 values for 4 input channels"):
        BicameralSegmenter.validate_config({"in_channels": 4})


def _two_squares() -> tuple[np.ndarray, np.ndarray]:
    """Boundary and occlusion maps of a small unoccluded square (A, left) and a large
    square whose edges its neighbour owns (B, right: occluded)."""
    H, W = 48, 80
    Y = np.zeros((H, W), np.float32)
    Y[10, 5:17] = Y[21, 5:17] = 1
    Y[10:22, 5] = Y[10:22, 16] = 1  # A: 10 x 10 inside
    Y[5, 30:62] = Y[36, 30:62] = 1
    Y[5:37, 30] = Y[5:37, 61] = 1  # B: 30 x 30 inside
    Z = np.zeros((H, W), np.float32)
    Z[11:21, 6:16] = 1  # A owns its edges (its inner side is the occluding side)
    Z[37:40, 30:62] = 1  # B's edges belong to what lies outside it
    Z[2:5, 30:62] = 1
    return Y, Z


@pytest.mark.parametrize("weight, first", [(1.0, "B"), (0.15, "A")])
def test_area_weight_trades_size_against_occlusion(monkeypatch, weight, first):
    seg = BicameralSegmenter.from_config({"width": 25, "in_channels": 3, "min_area_px": 30,
                                          "max_area_fraction": 0.5, "area_weight": weight})
    Y, Z = _two_squares()
    monkeypatch.setattr(seg, "maps", lambda frame: (Y, Z))  # designed maps: the post-processing alone
    inst = seg.predict(np.zeros((48, 80, 3), np.float32))
    a, b = inst.labels[15, 10] - 1, inst.labels[20, 45] - 1
    assert inst.scores[a] > inst.scores[b] + 0.2  # s1: A is the unoccluded one
    s2 = inst.areas / inst.areas.max()
    np.testing.assert_allclose(inst.affordance, inst.scores + weight * s2, rtol=1e-6)
    assert (inst.affordance[a] > inst.affordance[b]) == (first == "A")


def test_area_weight_parameter_minus_one_keeps_the_models_own():
    assert "area_weight" not in BicameralSegmenter.config_from_parameters({"alpha": 0.1, "area_weight": -1.0}, 0.5)
    assert BicameralSegmenter.config_from_parameters({"area_weight": 0.3}, 0.5)["area_weight"] == 0.3
    assert BicameralSegmenter.validate_config({})["area_weight"] == 1.0  # the seed's s1 + s2
    with pytest.raises(ModelConfigError, match="area_weight"):
        BicameralSegmenter.validate_config({"area_weight": -2})
