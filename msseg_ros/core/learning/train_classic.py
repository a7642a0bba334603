"""Fit the classic model (seed 000 §2.2) with scikit-learn, exported as plain arrays."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from msseg_ros.core.learning.data import CocoFrames
from msseg_ros.core.segmentation.classic import ClassicSegmenter, object_statistics


def fit_classic(model_cfg: dict, ds: CocoFrames, rng: np.random.Generator, pixels_per_class: int,
                log: Callable[[str], None] = print) -> ClassicSegmenter:
    from sklearn.kernel_approximation import RBFSampler
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    cfg = ClassicSegmenter.validate_config(model_cfg)
    K = len(cfg["classes"])
    fc = cfg["feature_channels"]
    per_class: dict[int, list[np.ndarray]] = {k: [] for k in range(1, K + 1)}
    objects: list[tuple[np.ndarray, int, int]] = []
    for i in range(len(ds)):
        frame, tgt = ds[i]
        for m, lab in zip(tgt["masks"], tgt["labels"], strict=True):
            px = frame[m][:, fc]
            per_class[int(lab)].append(px)
            objects.append((px, int(lab), int(m.sum())))
    xs, ys = [], []
    for k, chunks in per_class.items():
        if not chunks:
            continue
        allpx = np.concatenate(chunks)
        pick = rng.choice(len(allpx), min(len(allpx), pixels_per_class), replace=False)
        xs.append(allpx[pick])
        ys.append(np.full(len(pick), k))
    if not xs:
        raise ValueError("the training set has no annotated object")
    X, Y = np.concatenate(xs).astype(np.float64), np.concatenate(ys)
    scaler = StandardScaler().fit(X)
    rff = RBFSampler(gamma=cfg["rff_gamma"], n_components=cfg["rff_components"],
                     random_state=int(rng.integers(2**31))).fit(scaler.transform(X))
    svm = LinearSVC(C=1.0, max_iter=5000, random_state=int(rng.integers(2**31)))
    svm.fit(rff.transform(scaler.transform(X)), Y)
    coef = np.zeros((K, cfg["rff_components"]))
    icpt = np.full(K, -1e6)  # a class absent from training can never win
    coef[svm.classes_ - 1] = svm.coef_ if len(svm.classes_) > 2 else np.vstack([-svm.coef_, svm.coef_])
    icpt[svm.classes_ - 1] = svm.intercept_ if len(svm.classes_) > 2 else [-svm.intercept_[0], svm.intercept_[0]]
    weights = {
        "scaler_mean": scaler.mean_, "scaler_scale": scaler.scale_,
        "rff_weights": rff.random_weights_, "rff_offset": rff.random_offset_,
        "pixel_coef": coef, "pixel_intercept": icpt,
    }
    log(f"classic: pixel SVM on {len(X)} pixels of {len(svm.classes_)} classes")
    tmp = ClassicSegmenter(cfg, {**weights, "object_mean": np.zeros(K + 1), "object_scale": np.ones(K + 1),
                                 "object_coef": np.zeros((K, K + 1)), "object_intercept": np.zeros(K)})
    stats, labels = [], []
    for px, lab, area in objects:
        pred = np.argmax(tmp.pixel_scores(px.astype(np.float64)), axis=1) + 1
        stats.append(object_statistics(pred, K, area))
        labels.append(lab)
    S, L = np.array(stats), np.array(labels)
    oscaler = StandardScaler().fit(S)
    osvm = LinearSVC(C=1.0, max_iter=5000, random_state=int(rng.integers(2**31))).fit(oscaler.transform(S), L)
    ocoef = np.zeros((K, K + 1))
    oicpt = np.full(K, -1e6)
    if len(osvm.classes_) > 2:
        ocoef[osvm.classes_ - 1], oicpt[osvm.classes_ - 1] = osvm.coef_, osvm.intercept_
    else:
        ocoef[osvm.classes_ - 1] = np.vstack([-osvm.coef_, osvm.coef_])
        oicpt[osvm.classes_ - 1] = [-osvm.intercept_[0], osvm.intercept_[0]]
    weights.update({"object_mean": oscaler.mean_, "object_scale": np.where(oscaler.scale_ > 0, oscaler.scale_, 1.0),
                    "object_coef": ocoef, "object_intercept": oicpt})
    log(f"classic: object SVM on {len(S)} objects")
    return ClassicSegmenter.from_config(cfg, weights)
