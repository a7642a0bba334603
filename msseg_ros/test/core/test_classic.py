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
