"""The learning-rate schedule and the training options that bound a run."""
import pytest

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.learning.options import TrainOptions
from msseg_ros.core.learning.train import load_train_config, lr_factor, seed_everything


def test_constant_schedule_is_flat():
    assert [lr_factor("constant", p) for p in (0.0, 0.5, 1.0)] == [1.0, 1.0, 1.0]


def test_cosine_warms_up_then_decays_to_five_percent():
    assert lr_factor("cosine", 0.0) == pytest.approx(0.01)
    assert lr_factor("cosine", 0.01) == pytest.approx(0.5)
    assert lr_factor("cosine", 0.02) == pytest.approx(1.0)
    assert lr_factor("cosine", 0.51) == pytest.approx(0.525)
    assert lr_factor("cosine", 1.0) == pytest.approx(0.05)
    assert lr_factor("cosine", 7.0) == pytest.approx(0.05)  # a run past its budget stays at the floor
    values = [lr_factor("cosine", p / 100) for p in range(2, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize("key, value, message", [
    ("train.lr_schedule", "step", "constant or cosine"),
    ("train.max_minutes", -1, "max_minutes must be >= 0"),
    ("train.deterministic", "yes", "auto, on or off"),
])
def test_bad_options_refused(key, value, message):
    sets = {"model.type": "maskrcnn", "data.train": "x.json", "out": "runs/x", key: value}
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, sets)


@pytest.mark.parametrize("setting, device, expected", [
    ("auto", "cpu", True), ("auto", "cuda", False), ("auto", "cuda:1", False),
    ("on", "cuda", True), ("off", "cpu", False),
])
def test_deterministic_kernels_by_device(setting, device, expected):
    assert TrainOptions.from_mapping({"deterministic": setting}).deterministic_on(device) is expected


def test_seed_everything_switches_torch_determinism():
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    try:
        seed_everything(0, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
