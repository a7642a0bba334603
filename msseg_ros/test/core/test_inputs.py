"""The dual-energy X-ray ratio as a derived input channel (core/segmentation/inputs.py)."""
import numpy as np
import pytest
import torch

from msseg_ros.core.segmentation.base import ModelConfigError
from msseg_ros.core.segmentation.inputs import (
    DerivedInputConv,
    dual_energy_ratio,
    validate_dual_energy,
    widen_input_weight,
)
from msseg_ros.core.segmentation.maskrcnn import MaskRCNNSegmenter
from msseg_ros.core.segmentation.runtimes import TorchRuntime
from msseg_ros.core.sim import materials as mat
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld

SLIM = {"fpn_channels": 32, "box_representation": 64, "mask_channels": 16, "min_size": 64, "max_size": 128,
        "score_threshold": 0.0, "backbone": "mobilenet_v3_large"}
F = 65535.0


def _transmission(material: str, thickness_cm: float) -> tuple[float, float]:
    b = mat.BULK[material]
    return F * np.exp(-b.mu_low * b.density * thickness_cm), F * np.exp(-b.mu_high * b.density * thickness_cm)


def test_the_ratio_names_the_metal_whatever_its_thickness():
    for material, expected in (("nickel", 1.436 / 0.4443), ("laminated_zinc", 1.770 / 0.4972),
                               ("copper", 1.593 / 0.4584), ("aluminium", 0.2778 / 0.1704)):
        for t in (0.05, 0.1, 0.3):
            lo, hi = _transmission(material, t)
            r = dual_energy_ratio(torch.tensor([lo]), torch.tensor([hi]), F, 0.02, 0.005)
            assert float(r) == pytest.approx(expected, rel=1e-4), (material, t)
    # the belt (no attenuation), and a low energy too weak to read, give 0
    r = dual_energy_ratio(torch.tensor([F * 0.99, 100.0]), torch.tensor([F * 0.993, 9000.0]), F, 0.02, 0.005)
    assert r.tolist() == [0.0, 0.0]


def test_the_ratio_is_the_same_on_numpy_arrays_as_on_torch_tensors():
    frame = SortingLineWorld(SortingLineConfig(seed=3)).render(0, 1500).image
    on_torch = dual_energy_ratio(torch.from_numpy(frame[..., 1]), torch.from_numpy(frame[..., 2]), F, 0.02, 0.005)
    on_numpy = dual_energy_ratio(frame[..., 1], frame[..., 2], F, 0.02, 0.005)
    assert isinstance(on_numpy, np.ndarray) and on_numpy.dtype == np.float32 and on_numpy.shape == frame.shape[:2]
    np.testing.assert_allclose(on_numpy, on_torch.numpy(), rtol=1e-6, atol=1e-7)
    assert (on_numpy > 0).sum() > 1000 and ((on_numpy > 0) == (on_torch.numpy() > 0)).all()


def test_the_ratio_on_rendered_frames_separates_nickel_from_zinc():
    world = SortingLineWorld(SortingLineConfig(seed=3))
    frame = world.render(0, 1500)
    image = torch.from_numpy(frame.image)
    r = dual_energy_ratio(image[..., 1], image[..., 2], F, 0.02, 0.005).numpy()
    medians = {}
    for k, obj in enumerate(frame.objects, start=1):
        vals = r[(frame.labels == k) & (r > 0)]
        if len(vals) >= 10 and obj.cls in ("nickel", "laminated_zinc"):
            medians.setdefault(obj.cls, []).append(float(np.median(vals)))
    assert medians.get("nickel") and medians.get("laminated_zinc"), medians
    assert max(medians["nickel"]) < 3.35 < min(medians["laminated_zinc"]), medians


def test_config_defaults_and_errors():
    cfg = validate_dual_energy({}, 11)
    assert (cfg["low"], cfg["high"], cfg["full_scale"]) == (1, 2, 65535.0)
    assert validate_dual_energy(None, 11) is None
    with pytest.raises(ModelConfigError, match="dual_energy_ratio.high' must be a channel index in \\[0, 2\\]"):
        validate_dual_energy({"low": 0, "high": 5}, 3)
    with pytest.raises(ModelConfigError, match="unknown key\\(s\\) \\['hgh'\\]"):
        validate_dual_energy({"hgh": 2}, 11)
    with pytest.raises(ModelConfigError, match="'low' and 'high' are the same channel"):
        validate_dual_energy({"low": 2, "high": 2}, 11)
    with pytest.raises(ModelConfigError, match="gain' must be > 0"):
        validate_dual_energy({"gain": 0}, 11)
    with pytest.raises(ModelConfigError, match="clip' must be > 0 or null"):
        validate_dual_energy({"clip": -1}, 11)
    assert validate_dual_energy({"clip": None}, 11)["clip"] is None


def test_the_code_spreads_the_metals_and_clips_the_light_materials():
    conv = DerivedInputConv(torch.nn.Conv2d(3, 1, 1, bias=False), validate_dual_energy({}, 3), [0.0] * 3, [1.0] * 3)
    conv.weight.data.zero_()
    conv.weight.data[0, 3] = 1.0  # the output is the derived channel itself
    pixels = [_transmission(m, 0.1) for m in ("nickel", "copper", "laminated_zinc", "aluminium")]
    x = torch.zeros(1, 3, 1, 5)
    for k, (lo, hi) in enumerate(pixels):
        x[0, 1, 0, k], x[0, 2, 0, k] = lo, hi
    x[0, 1, 0, 4], x[0, 2, 0, 4] = F, F  # no object
    code = conv(x)[0, 0, 0].tolist()
    assert code[0] == pytest.approx((1.436 / 0.4443 - 3.4) * 10, abs=1e-3)  # nickel -1.68
    assert code[2] == pytest.approx((1.770 / 0.4972 - 3.4) * 10, abs=1e-3)  # zinc +1.60
    assert code[3] == -3.0 and code[4] == 0.0  # aluminium clipped, the belt 0
    assert code[0] < code[1] < code[2]  # nickel < copper < zinc


def test_zero_weights_for_the_ratio_compute_what_the_plain_convolution_did():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(11, 8, 3, padding=1, bias=False)
    derived = DerivedInputConv(conv, validate_dual_energy({}, 11), [0.0] * 11, [1.0] * 11)
    assert derived.in_channels == 12 and derived.weight.shape == (8, 12, 3, 3)
    derived.weight.data = torch.from_numpy(widen_input_weight(conv.weight.detach().numpy(), 12))
    x = torch.rand(1, 11, 16, 16) * F
    torch.testing.assert_close(derived(x), conv(x))
    assert widen_input_weight(conv.weight.detach().numpy(), 11) is not None  # nothing to widen: unchanged
    assert set(derived.state_dict()) == {"weight"}  # the X-ray mean / std come from the config


def test_maskrcnn_grows_a_ratio_channel_from_a_plain_checkpoint():
    """A plain checkpoint initialises the model with the ratio (train.init): the new channel
    starts at zero weight, so it detects exactly what the checkpoint did; BatchNorm folding
    (the torch runtime) keeps the derived channel."""
    torch.manual_seed(1)
    plain = MaskRCNNSegmenter.from_config(dict(SLIM))
    grown = MaskRCNNSegmenter.from_config({**SLIM, "dual_energy_ratio": {}})
    first = grown.net.backbone.body.get_submodule("0.0")
    assert isinstance(first, DerivedInputConv) and first.in_channels == 12
    arrays = {k: v.detach().numpy() for k, v in plain.state_dict().items()}
    adapted, changed = grown.adapt_init(arrays)
    assert changed == ["backbone.body.0.0.weight"]
    grown.net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in adapted.items()})
    frame = SortingLineWorld(SortingLineConfig(seed=2)).render(0, 96).image[:, :128]
    with torch.inference_mode():
        a = plain.raw(frame)
        b = grown.raw(frame)
    torch.testing.assert_close(b["scores"], a["scores"])
    torch.testing.assert_close(b["masks"], a["masks"])
    engine = TorchRuntime().build(grown.export_spec())
    boxes = engine(torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))))[0]
    torch.testing.assert_close(boxes, a["boxes"], atol=1e-3, rtol=1e-4)
    # a plain model refuses the grown checkpoint by name (no silent truncation)
    from msseg_ros.core.segmentation.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="backbone.body.0.0.weight"):
        MaskRCNNSegmenter.from_config(dict(SLIM), weights=adapted)
