"""The classic baseline of seed 000 §2.2, trained by ``msseg train``.

1. Height > ``height_threshold_mm`` (1 mm), then blobs of more than ``min_area_px`` px
   (300 px at the seed's 0.5 mm grid). Optionally (``xray_channel``, ``xray_material_below``;
   off by default, as in the seed) a pixel whose X-ray transmission is below the given
   count is material too, however low: thin parts of an object under the height threshold
   would otherwise cut it into pieces (each a pick).
2. Each blob pixel is classified from the 10 spectral + X-ray features by an SVM. Here an
   RBF-kernel SVM is approximated by random Fourier features (Rahimi & Recht 2007) and a
   linear SVM, so that its parameters are plain arrays (safetensors; nothing pickled).
3. A second linear SVM classifies each blob from statistics of its pixel predictions
   (the share of each class, and log area). The instance's score is the share of its
   pixels that vote for the chosen class.

Weights (arrays): ``scaler_mean``, ``scaler_scale`` (F,); ``rff_weights`` (F, D),
``rff_offset`` (D,); ``pixel_coef`` (K, D), ``pixel_intercept`` (K,); ``object_mean``,
``object_scale`` (K+1,); ``object_coef`` (K, K+1), ``object_intercept`` (K,).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from msseg_ros.core import cells
from msseg_ros.core.segmentation.base import (
    Instances,
    ModelConfigError,
    Segmenter,
    require,
)
from msseg_ros.core.segmentation.blobs import height_blobs
from msseg_ros.core.segmentation.checkpoint import CheckpointError, check_matches

if TYPE_CHECKING:
    from msseg_ros.core.learning.options import TrainingContext

DEFAULT_CONFIG = {
    "type": "classic",
    "in_channels": 11,
    "classes": list(cells.SORTING_LINE_CLASSES),
    "height_channel": 0,
    "feature_channels": list(range(1, 11)),
    "height_threshold_mm": 1.0,
    "xray_channel": None,  # e.g. 1 (low energy) on the line; None: height alone
    "xray_material_below": None,  # transmission counts; the belt reads ~65,000
    "min_area_px": 19,  # 300 px at 0.5 mm = 75 mm²; at the 2 mm demo grid, 19 px
    "rff_components": 400,
    "rff_gamma": 0.1,
    "fill_values": None,
}


def rff_features(x: np.ndarray, weights: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Random Fourier features of standardised x (N, F) -> (N, D)."""
    return np.sqrt(2.0 / weights.shape[1]) * np.cos(x @ weights + offset)


def object_statistics(pixel_classes: np.ndarray, n_classes: int, area: int) -> np.ndarray:
    """Class shares of a blob's pixel predictions (1-based classes) and its log area."""
    shares = np.bincount(pixel_classes - 1, minlength=n_classes)[:n_classes] / max(len(pixel_classes), 1)
    return np.concatenate([shares, [np.log1p(area)]])


class ClassicSegmenter(Segmenter):
    """Height blobs classified by two SVMs (seed 000 §2.2): per pixel on random Fourier
    features of the VNIR/X-ray channels, then per blob on its pixels' class shares.
    Fitted in closed form (``trained_by = "fit"``), run in numpy."""

    type_name = "classic"
    default_config = DEFAULT_CONFIG
    param_group = "classic"
    trained_by = "fit"

    def __init__(self, config: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        super().__init__(config, fill_values=np.asarray(
            config.get("fill_values") or [0.0] * config["in_channels"], np.float32))
        self.w = {k: np.asarray(v, np.float64) for k, v in weights.items()}

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = super().validate_config(config)  # in_channels, classes, the shared keys
        c = cfg["in_channels"]
        require(cfg, "height_channel", int, lambda v: 0 <= v < c)
        fc = require(cfg, "feature_channels", list, lambda v: len(v) >= 1)
        if any(not isinstance(i, int) or not 0 <= i < c for i in fc):
            raise ModelConfigError(f"model config 'feature_channels' = {fc!r}: channels must be 0..{c - 1}")
        require(cfg, "height_threshold_mm", (int, float))
        cfg.setdefault("xray_channel", None)
        cfg.setdefault("xray_material_below", None)
        xc, below = cfg["xray_channel"], cfg["xray_material_below"]
        if (xc is None) != (below is None):
            raise ModelConfigError(f"model config 'xray_channel' = {xc!r} and 'xray_material_below' = "
                                   f"{below!r}: give both (X-ray foreground on) or neither (off)")
        if xc is not None:
            require(cfg, "xray_channel", int, lambda v: 0 <= v < c and v != cfg["height_channel"])
            require(cfg, "xray_material_below", (int, float), lambda v: v > 0)
        require(cfg, "min_area_px", int, lambda v: v >= 0)
        require(cfg, "rff_components", int, lambda v: 8 <= v <= 20000)
        return cfg

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.shapes_for(self.config)

    @staticmethod
    def shapes_for(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        """The weight arrays of a model of ``config``, by name."""
        F, D, K = len(config["feature_channels"]), config["rff_components"], len(config["classes"])
        return {"scaler_mean": (F,), "scaler_scale": (F,), "rff_weights": (F, D), "rff_offset": (D,),
                "pixel_coef": (K, D), "pixel_intercept": (K,), "object_mean": (K + 1,),
                "object_scale": (K + 1,), "object_coef": (K, K + 1), "object_intercept": (K,)}

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: dict[str, Any] | None = None, device: str = "cpu") -> ClassicSegmenter:
        cfg = cls.validate_config(config)
        if weights is None:
            raise CheckpointError("the classic model has no random init: give it trained weights "
                                  "(msseg train --model classic ...)")
        model = cls(cfg, weights)
        check_matches(model.expected_shapes(), weights, "(classic)")
        return model

    @classmethod
    def parameter_counts_for(cls, config: Mapping[str, Any]) -> tuple[int, int]:
        total = int(sum(np.prod(shape) for shape in cls.shapes_for(cls.validate_config(config)).values()))
        return total, total

    @classmethod
    def fit(cls, config: dict[str, Any], context: TrainingContext,
            log: Callable[[str], None]) -> ClassicSegmenter:
        """Fit both SVMs with scikit-learn on ``train.pixels_per_class`` pixels per class,
        exported as plain arrays."""
        from sklearn.kernel_approximation import RBFSampler
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        cfg = cls.validate_config(config)
        ds, rng, pixels_per_class = context.dataset, context.rng, context.options.pixels_per_class
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
            raise ModelConfigError("the training set has no annotated object")
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
        tmp = cls(cfg, {**weights, "object_mean": np.zeros(K + 1), "object_scale": np.ones(K + 1),
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
        return cls.from_config(cfg, weights)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float32) for k, v in self.w.items()}

    def pixel_scores(self, features: np.ndarray) -> np.ndarray:
        """(N, F) raw features -> (N, K) decision values."""
        z = (features - self.w["scaler_mean"]) / self.w["scaler_scale"]
        phi = rff_features(z, self.w["rff_weights"], self.w["rff_offset"])
        return phi @ self.w["pixel_coef"].T + self.w["pixel_intercept"]

    def object_scores(self, stats: np.ndarray) -> np.ndarray:
        z = (stats - self.w["object_mean"]) / self.w["object_scale"]
        return z @ self.w["object_coef"].T + self.w["object_intercept"]

    def predict(self, frame: np.ndarray) -> Instances:
        cfg = self.config
        xray = None
        if cfg.get("xray_channel") is not None:
            xray = np.nan_to_num(frame[..., cfg["xray_channel"]], nan=np.inf) < cfg["xray_material_below"]
        blobs = height_blobs(frame[..., cfg["height_channel"]], cfg["height_threshold_mm"], cfg["min_area_px"], also=xray)
        n = int(blobs.max())
        if n == 0:
            return Instances.from_labels(blobs, [], [])
        sel = blobs > 0
        feats = frame[sel][:, cfg["feature_channels"]].astype(np.float64)
        pix = np.argmax(self.pixel_scores(feats), axis=1) + 1
        lab = blobs[sel]
        K = len(self.classes)
        stats = np.stack([object_statistics(pix[lab == k], K, int(np.sum(lab == k))) for k in range(1, n + 1)])
        dec = self.object_scores(stats)
        cls_ids = np.argmax(dec, axis=1) + 1
        # score: the share of the blob's pixels that vote for the chosen class
        scores = stats[np.arange(n), cls_ids - 1].astype(np.float32)
        return Instances.from_labels(blobs, cls_ids, scores)
