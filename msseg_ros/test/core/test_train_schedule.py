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
    ("data.rehearsal_fraction", 1.0, r"rehearsal_fraction must be a number in \(0, 0.95\]"),
    ("data.rehearsal_fraction", 0, r"rehearsal_fraction must be a number in \(0, 0.95\]"),
    ("data.rehersal", "x.json", "unknown data option 'rehersal'; options: image_root, rehearsal"),
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


class _Frames:
    """n items with one class (what the batch sampler reads: its length)."""

    class_names = ["object"]
    path = "x.json"

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_an_epoch_with_rehearsal_visits_every_own_frame_once_and_fresh_rehearsal_frames():
    import numpy as np

    from msseg_ros.core.learning.data import MixedFrames
    from msseg_ros.core.learning.train import _batches, epoch_size

    mixed = MixedFrames(_Frames(6), _Frames(100))
    assert epoch_size(mixed, 0.5) == 12 and epoch_size(mixed, 0.25) == 8 and epoch_size(mixed, 0.05) == 7
    assert epoch_size(MixedFrames(_Frames(6), _Frames(3)), 0.9) == 9  # no more than the set holds
    assert epoch_size(_Frames(6), 0.5) == 6  # no rehearsal set: the frames alone
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(2):
        order = np.concatenate(list(_batches(mixed, 12, 4, rng)))
        assert sorted(order[order < 6]) == list(range(6))
        extra = order[order >= 6]
        assert len(extra) == 6 == len(set(extra)) and extra.max() < 106
        seen.append(set(extra))
    assert seen[0] != seen[1]  # each epoch draws afresh
    assert [len(b) for b in _batches(mixed, 12, 5, rng)] == [5, 5, 2]


def test_rehearsal_classes_must_match():
    from msseg_ros.core.learning.data import DatasetError, MixedFrames

    other = _Frames(3)
    other.class_names = ["copper"]
    with pytest.raises(DatasetError, match=r"has classes \['copper'\].*\['object'\]; they must match"):
        MixedFrames(_Frames(6), other)
