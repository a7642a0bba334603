"""The classic baseline of seed 000 §2.2, trained by ``msseg train``.

1. Height > ``height_threshold_mm`` (1 mm), then blobs of more than ``min_area_px`` px
   (300 px at the seed's 0.5 mm grid).
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

import numpy as np

from msseg_ros.core.segmentation.base import (
    SEGMENTERS,
    Instances,
    ModelConfigError,
    Segmenter,
    require,
)
from msseg_ros.core.segmentation.blobs import height_blobs
from msseg_ros.core.segmentation.checkpoint import CheckpointError, check_matches

DEFAULT_CONFIG = {
    "type": "classic",
    "in_channels": 11,
    "classes": ["copper", "laminated_zinc", "paint", "brass", "aluminium", "pcb", "nickel", "rubber", "zamak"],
    "height_channel": 0,
    "feature_channels": list(range(1, 11)),
    "height_threshold_mm": 1.0,
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


@SEGMENTERS.register("classic")
class ClassicSegmenter(Segmenter):
    type_name = "classic"

    def __init__(self, config: dict, weights: dict[str, np.ndarray]) -> None:
        super().__init__(config, fill_values=np.asarray(
            config.get("fill_values") or [0.0] * config["in_channels"], np.float32))
        self.w = {k: np.asarray(v, np.float64) for k, v in weights.items()}

    @staticmethod
    def validate_config(config: dict) -> dict:
        cfg = {**DEFAULT_CONFIG, **config}
        c = require(cfg, "in_channels", int, lambda v: 1 <= v <= 512)
        require(cfg, "classes", list, lambda v: len(v) >= 1)
        require(cfg, "height_channel", int, lambda v: 0 <= v < c)
        fc = require(cfg, "feature_channels", list, lambda v: len(v) >= 1)
        if any(not isinstance(i, int) or not 0 <= i < c for i in fc):
            raise ModelConfigError(f"model config 'feature_channels' = {fc!r}: channels must be 0..{c - 1}")
        require(cfg, "height_threshold_mm", (int, float))
        require(cfg, "min_area_px", int, lambda v: v >= 0)
        require(cfg, "rff_components", int, lambda v: 8 <= v <= 20000)
        return cfg

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        F, D, K = len(self.config["feature_channels"]), self.config["rff_components"], len(self.classes)
        return {"scaler_mean": (F,), "scaler_scale": (F,), "rff_weights": (F, D), "rff_offset": (D,),
                "pixel_coef": (K, D), "pixel_intercept": (K,), "object_mean": (K + 1,),
                "object_scale": (K + 1,), "object_coef": (K, K + 1), "object_intercept": (K,)}

    @classmethod
    def from_config(cls, config: dict, weights: dict | None = None, device: str = "cpu") -> ClassicSegmenter:
        cfg = cls.validate_config(config)
        if weights is None:
            raise CheckpointError("the classic model has no random init: give it trained weights "
                                  "(msseg train --model classic ...)")
        model = cls(cfg, weights)
        check_matches(model.expected_shapes(), weights, "(classic)")
        return model

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
        blobs = height_blobs(frame[..., cfg["height_channel"]], cfg["height_threshold_mm"], cfg["min_area_px"])
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
