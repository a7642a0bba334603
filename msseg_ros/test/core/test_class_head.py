"""The class head: per-instance features, fit on generated line frames, storage, errors."""
import numpy as np
import pytest

from msseg_ros.core.segmentation.base import Instances
from msseg_ros.core.segmentation.class_head import (
    TENSOR,
    ClassHead,
    ClassHeadError,
    feature_count,
    fit_class_head,
    ground_truth_features,
    instance_features,
    split_arrays,
)
from msseg_ros.core.segmentation.inputs import DUAL_ENERGY_DEFAULTS
from msseg_ros.core.sim.sorting_line import SortingLineConfig, SortingLineWorld

LINE_SPECTRAL = list(range(3, 11))


def _two_squares() -> tuple[np.ndarray, np.ndarray]:
    frame = np.zeros((12, 12, 3), np.float32)
    labels = np.zeros((12, 12), np.uint16)
    labels[1:6, 1:6] = 1  # 5 x 5: 9 interior pixels
    labels[8:10, 8:10] = 2  # 2 x 2: no interior pixel, pooled over all 4
    frame[..., 0] = np.arange(144, dtype=np.float32).reshape(12, 12)
    frame[..., 1] = 100.0
    frame[..., 2] = 400.0
    frame[8:10, 8:10, 1] = [[10.0, 20.0], [30.0, 1000.0]]
    return frame, labels


def test_features_pool_the_interior_of_each_mask():
    frame, labels = _two_squares()
    x = instance_features(frame, labels, 2, spectral_channels=[1, 2], dual_energy=None)
    assert x.shape == (2, feature_count(3, [1, 2], None)) == (2, 2 * 3 + 2 + 1)
    interior = frame[2:5, 2:5].reshape(-1, 3)  # the square's edge pixels are left out
    np.testing.assert_allclose(x[0, :3], interior.mean(0))
    np.testing.assert_allclose(x[0, 3:6], np.median(interior, 0))
    np.testing.assert_allclose(x[0, 6:8], [np.log(100) - np.log(200), np.log(400) - np.log(200)], rtol=1e-6)
    assert x[0, 8] == pytest.approx(np.log(25))  # the area counts every pixel
    np.testing.assert_allclose(x[1, 1], np.mean([10, 20, 30, 1000]))
    np.testing.assert_allclose(x[1, 4], np.median([10, 20, 30, 1000]))  # robust to the outlier pixel
    assert x[1, 8] == pytest.approx(np.log(4))


def test_the_ratio_feature_is_the_median_dual_energy_ratio():
    frame = np.zeros((9, 9, 3), np.float32)
    frame[..., 1:] = 65535.0 * 0.993  # the empty belt: no ratio defined
    labels = np.zeros((9, 9), np.uint16)
    labels[1:8, 1:8] = 1
    t_high = 0.5
    frame[1:8, 1:8, 2] = 65535.0 * t_high
    frame[1:8, 1:8, 1] = 65535.0 * t_high ** 3.47  # copper's mu_low / mu_high
    x = instance_features(frame, labels, 1, [], DUAL_ENERGY_DEFAULTS)
    assert x.shape == (1, 2 * 3 + 1 + 1)
    assert x[0, 6] == pytest.approx(3.47, abs=1e-3)


def _line_samples(seed: int, frames: int):
    world = SortingLineWorld(SortingLineConfig(seed=seed, feed_rate=12.0))
    for i in range(frames):
        f = world.render(i * 250, 250)
        ids = range(1, len(f.objects) + 1)
        masks = np.stack([f.labels == k for k in ids]) if ids else np.zeros((0, *f.labels.shape), bool)
        yield f.image.astype(np.float32), masks, np.array([o.class_id for o in f.objects], np.int64)


@pytest.fixture(scope="module")
def fitted():
    X, y = ground_truth_features(_line_samples(5, 40), LINE_SPECTRAL, DUAL_ENERGY_DEFAULTS)
    head = fit_class_head(X, y, 9, 11, LINE_SPECTRAL, DUAL_ENERGY_DEFAULTS, {"rounds": 40})
    return head, X, y


def test_a_head_fitted_on_line_frames_classifies_other_frames(fitted):
    head, X, y = fitted
    assert X.shape[1] == head.settings["features"] == 2 * 11 + 8 + 1 + 1
    Xt, yt = ground_truth_features(_line_samples(6, 10), LINE_SPECTRAL, DUAL_ENERGY_DEFAULTS)
    accuracy = float((head.probabilities(Xt).argmax(1) + 1 == yt).mean())
    assert len(yt) > 50 and accuracy > 0.9, accuracy


def test_apply_replaces_classes_only(fitted):
    head, _, _ = fitted
    frame, masks, classes = next(_line_samples(7, 1))
    labels = np.zeros(masks.shape[1:], np.uint16)
    for k, m in enumerate(masks):
        labels[m] = k + 1
    wrong = np.ones(len(classes), np.int64)  # every instance called copper
    inst = Instances.from_labels(labels, wrong, np.linspace(0.5, 0.9, len(classes)))
    out = head.apply(frame, inst)
    assert (out.labels == inst.labels).all() and (out.scores == inst.scores).all()
    assert (out.boxes == inst.boxes).all()
    assert (out.class_ids == classes).mean() > 0.8 > (wrong == classes).mean()
    empty = Instances.empty(labels.shape)
    assert head.apply(frame, empty) is empty


def test_stored_and_loaded_the_head_predicts_the_same(fitted):
    head, X, _ = fitted
    arrays = head.to_arrays()
    assert set(arrays) == {TENSOR} and arrays[TENSOR].dtype == np.uint8
    again = ClassHead.from_arrays(arrays, head.settings, 11, 9)
    np.testing.assert_allclose(again.probabilities(X[:20]), head.probabilities(X[:20]), atol=1e-6)
    model, extra = split_arrays({"net.w": np.zeros(2), **arrays})
    assert set(model) == {"net.w"} and set(extra) == {TENSOR}


def test_a_bad_head_is_refused_with_its_reason(fitted):
    head, _, _ = fitted
    arrays = head.to_arrays()
    corrupt = {TENSOR: arrays[TENSOR][: len(arrays[TENSOR]) // 2]}
    with pytest.raises(ClassHeadError, match="corrupt"):
        ClassHead.from_arrays(corrupt, head.settings, 11, 9)
    with pytest.raises(ClassHeadError, match="lacks the tensor"):
        ClassHead.from_arrays({}, head.settings, 11, 9)
    with pytest.raises(ClassHeadError, match="gives 9 classes.*the model has 4"):
        ClassHead.from_arrays(arrays, head.settings, 11, 4)
    with pytest.raises(ClassHeadError, match="features"):
        ClassHead.from_arrays(arrays, {**head.settings, "features": 7}, 11, 9)
    with pytest.raises(ClassHeadError, match="spectral_channels"):
        ClassHead.from_arrays(arrays, {**head.settings, "spectral_channels": [3, 11]}, 11, 9)
    with pytest.raises(ClassHeadError, match="outside the model's 1..2"):
        fit_class_head(np.zeros((3, 9), np.float32), np.array([1, 2, 3]), 2, 3, [], None)
    with pytest.raises(ClassHeadError, match="unknown class head option"):
        fit_class_head(np.zeros((3, 9), np.float32), np.array([1, 2, 1]), 2, 3, [], None, {"depth": 3})


def test_the_node_selection_runs_the_shipped_line_models_head_unless_told_not_to():
    from msseg_ros.core.segmentation.loading import ModelSelection, load_selected

    on = load_selected(ModelSelection(cell="sorting_line", type="maskrcnn"))
    off = load_selected(ModelSelection(cell="sorting_line", type="maskrcnn", class_head=False))
    assert on.class_head is not None and off.class_head is None
    frame = SortingLineWorld(SortingLineConfig(seed=11, feed_rate=12.0)).render(0, 250).image
    a, b = on(frame), off(frame)
    assert (a.labels == b.labels).all() and (a.scores == b.scores).all()  # the head changes classes only
    classic = load_selected(ModelSelection(cell="sorting_line", type="classic", class_head=False))
    assert classic.class_head is None  # a model without a head: nothing to turn off
