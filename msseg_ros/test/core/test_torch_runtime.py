"""The torch runtime: a frozen copy of the weights with BatchNorm folded into the
convolutions, the same outputs as the live module, and a live engine while training."""
import numpy as np
import pytest
import torch

from msseg_ros.core.segmentation.base import SEGMENTERS
from msseg_ros.core.segmentation.runtimes import ModuleEngine, fold_batchnorm

from conftest import assert_same_outputs

SMALL = {
    "embeddings": {"width": 25, "in_channels": 3, "classes": ["a", "b"], "image_mean": [0.5] * 3,
                   "image_std": [0.25] * 3},
    "bicameral": {"width": 25},
    "maskrcnn": {"backbone": "mobilenet_v3_large", "in_channels": 3, "classes": ["a", "b"],
                 "image_mean": [0.5] * 3, "image_std": [0.25] * 3, "fpn_channels": 32,
                 "box_representation": 64, "mask_channels": 16, "min_size": 64, "max_size": 128,
                 "score_threshold": 0.0},
}


def _batchnorms(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def _segmenter(kind):
    """A small model whose BatchNorm layers hold statistics and affine terms far from
    the identity (fresh ones would fold to almost nothing)."""
    torch.manual_seed(0)
    seg = SEGMENTERS.get(kind).from_config(SMALL[kind])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in _batchnorms(seg.net):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            bn.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
            bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return seg.__class__(seg.config, seg.net, "cpu")


def _input(kind):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 1, (3, 64, 96)).astype(np.float32))
    return x if kind == "maskrcnn" else x[None]


@pytest.mark.parametrize("kind,left", [("embeddings", 3), ("bicameral", 0), ("maskrcnn", 0)])
def test_folding_keeps_the_outputs_and_removes_the_batchnorms(kind, left):
    """Every BatchNorm after a convolution goes (the embeddings net keeps its three
    down-samplers' BatchNorms, which normalise a convolution concatenated with a pool)."""
    seg = _segmenter(kind)
    before = len(_batchnorms(seg.net))
    x = _input(kind)
    live = ModuleEngine(seg.export_spec().module)(x)
    seg.use_runtime("torch")
    assert seg.engine.module is not seg.export_spec().module  # its own copy
    assert len(_batchnorms(seg.engine.module)) == left
    assert len(_batchnorms(seg.net)) == before > left  # the model's own net is untouched
    assert_same_outputs(live, seg.engine(x), atol=1e-4, rtol=1e-3)


def test_a_runtime_engine_is_a_snapshot_and_the_default_one_follows_training():
    seg = _segmenter("bicameral")
    x = _input("bicameral")
    live_before = seg.engine(x)[0].clone()
    seg.use_runtime("torch")
    frozen_before = seg.engine(x)[0].clone()
    with torch.no_grad():
        for p in seg.net.parameters():
            p.mul_(0.5)
    np.testing.assert_allclose(seg.engine(x)[0].numpy(), frozen_before.numpy(), atol=1e-5)
    fresh = seg.__class__(seg.config, seg.net, "cpu")  # no runtime chosen: the live module
    assert not torch.allclose(fresh.engine(x)[0], live_before, atol=1e-3)


def test_folding_refuses_a_module_in_training_mode():
    seg = _segmenter("bicameral")
    with pytest.raises(ValueError, match="training mode"):
        fold_batchnorm(seg.net.train())


@pytest.mark.parametrize("shape", [(1, 5, 3), (37, 29, 11), (16, 8, 1), (250, 274, 11)])
def test_channels_first_is_the_transpose(shape):
    from msseg_ros.core.segmentation.torch_base import channels_first

    frame = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    for given in (frame, frame[::-1], np.asfortranarray(frame)):  # any strides
        out = channels_first(given)
        assert out.shape == (shape[2], shape[0], shape[1]) and out.is_contiguous() and out.dtype == torch.float32
        assert np.array_equal(out.numpy(), given.transpose(2, 0, 1))
