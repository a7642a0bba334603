import numpy as np
from sklearn.kernel_approximation import RBFSampler
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from msseg_ros.core.segmentation.classic import rff_features


def test_array_inference_equals_sklearn_pipeline():
    """The exported arrays predict exactly what scikit-learn's fitted pipeline predicts."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(m, 1.0, (200, 10)) for m in (0, 2, 4)])
    y = np.repeat([1, 2, 3], 200)
    pipe = make_pipeline(StandardScaler(), RBFSampler(gamma=0.1, n_components=64, random_state=0),
                         LinearSVC(random_state=0)).fit(X, y)
    sc, rff, svm = pipe.steps[0][1], pipe.steps[1][1], pipe.steps[2][1]
    z = (X - sc.mean_) / sc.scale_
    ours = np.argmax(rff_features(z, rff.random_weights_, rff.random_offset_) @ svm.coef_.T + svm.intercept_, 1) + 1
    np.testing.assert_array_equal(ours, pipe.predict(X))


def _random_classic(**overrides):
    from msseg_ros.core.segmentation.classic import DEFAULT_CONFIG, ClassicSegmenter

    cfg = {**DEFAULT_CONFIG, "rff_components": 16, **overrides}
    rng = np.random.default_rng(1)
    weights = {k: rng.normal(size=s) for k, s in ClassicSegmenter.shapes_for(cfg).items()}
    weights["scaler_scale"] = np.ones_like(weights["scaler_scale"])
    return ClassicSegmenter.from_config(cfg, weights)


def _bar_with_a_thin_waist():
    """One 10 x 60 px part: 3 mm high at its ends, 0.5 mm (under the 1 mm threshold) in
    its middle third, attenuating the X-ray all along; the belt reads ~65,000 counts."""
    frame = np.zeros((30, 80, 11), np.float32)
    frame[..., 1:3] = 65000.0
    frame[10:20, 10:70, 0] = 3.0
    frame[10:20, 30:50, 0] = 0.5
    frame[10:20, 10:70, 1:3] = 30000.0
    frame[10:20, 10:70, 3:] = 2000.0
    return frame


def test_the_xray_foreground_keeps_a_part_with_a_thin_waist_whole():
    frame = _bar_with_a_thin_waist()
    by_height = _random_classic()(frame)
    assert len(by_height) == 2  # the seed's height threshold cuts it in two: two picks
    joined = _random_classic(xray_channel=1, xray_material_below=60000.0)(frame)
    assert len(joined) == 1 and joined.areas.tolist() == [600]
    frame[10:20, 30:50, 1] = np.nan  # a NaN X-ray pixel is not material (predict, before any fill)
    assert len(_random_classic(xray_channel=1, xray_material_below=60000.0).predict(frame)) == 2


def test_the_xray_foreground_options_are_checked():
    import pytest

    from msseg_ros.core.segmentation.base import ModelConfigError

    with pytest.raises(ModelConfigError, match="give both"):
        _random_classic(xray_channel=1)
    with pytest.raises(ModelConfigError, match="'xray_channel' = 0 is out of range"):
        _random_classic(xray_channel=0, xray_material_below=60000.0)  # the height channel
    with pytest.raises(ModelConfigError, match="'xray_material_below' = -1.0 is out of range"):
        _random_classic(xray_channel=1, xray_material_below=-1.0)
