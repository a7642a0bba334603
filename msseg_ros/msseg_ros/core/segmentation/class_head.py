"""A second-stage class head: each instance's class from its mask's pooled channels.

A network decides an instance's class from features it pooled on a coarse grid; on the
sorting line the classes that stay confused (paint against copper, seed 000 Table 8.5)
differ in a few percent of the dual-energy X-ray ratio and in the 433-561 nm bands
(core/sim/materials.py). Averaged over a whole mask those differences stand well above
the pixel noise. The head computes, per instance, on the frame the model saw:

* the mean and the median of every channel over the mask's interior (pixels whose four
  neighbours are in the same mask, so belt pixels at the edge do not dilute it; all of a
  mask's pixels when fewer than 5 are interior);
* the spectral shape: log of the mean of each ``spectral_channels`` channel minus their
  average log (brightness removed);
* with a ``dual_energy_ratio`` block (core/segmentation/inputs.py), the median of the
  per-pixel ratio ``ln(T_low / F) / ln(T_high / F)`` where it is defined;
* log of the area, px.

and gives them to a gradient-boosted tree ensemble (LightGBM, multiclass) fitted on the
ground-truth masks of a generated split (``msseg fit-class-head``). Its argmax replaces
the model's class; masks and scores stay the model's. It is stored in the model's own
checkpoint: the LightGBM model text, zlib-compressed, as the uint8 tensor
``class_head.lightgbm``, and its settings under the config key ``class_head``. LightGBM
parses that text; nothing is unpickled. A config with ``class_head: null`` runs the
model without it.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from msseg_ros.core.segmentation.base import ModelConfigError

if TYPE_CHECKING:
    from msseg_ros.core.segmentation.base import Instances

#: the checkpoint tensor holding the compressed LightGBM model text
TENSOR = "class_head.lightgbm"
#: masks with fewer interior pixels are pooled over all their pixels
MIN_INTERIOR_PX = 5
#: fit settings (LightGBM names): small trees, few rounds; 100 x 15 leaves x 9 classes
#: stores in ~0.5 MB compressed
FIT_DEFAULTS: dict[str, Any] = {"rounds": 100, "num_leaves": 15, "learning_rate": 0.1, "seed": 0}


class ClassHeadError(ModelConfigError):
    """A class head cannot be built, loaded or fitted; the message says why."""


def feature_count(channels: int, spectral_channels: list[int], dual_energy: Mapping[str, Any] | None) -> int:
    return 2 * channels + len(spectral_channels) + (1 if dual_energy else 0) + 1


def instance_features(frame: np.ndarray, labels: np.ndarray, n: int, spectral_channels: list[int],
                      dual_energy: Mapping[str, Any] | None) -> np.ndarray:
    """(n, F) float32 features of instances 1..n of ``labels`` (see the module docstring).

    Args:
        frame: (H, W, C) float32, finite (a model's checked frame).
        labels: (H, W) int, 0 background, k instance k; every instance has a pixel.
        spectral_channels: channel indices whose log means are centred (the VNIR bands).
        dual_energy: a validated ``dual_energy_ratio`` block, or None.
    """
    C = frame.shape[2]
    lab = np.asarray(labels).astype(np.int64)
    interior = lab > 0
    interior[1:] &= lab[1:] == lab[:-1]
    interior[:-1] &= lab[:-1] == lab[1:]
    interior[:, 1:] &= lab[:, 1:] == lab[:, :-1]
    interior[:, :-1] &= lab[:, :-1] == lab[:, 1:]
    n_interior = np.bincount(lab[interior], minlength=n + 1)
    use = interior | ((lab > 0) & (n_interior[lab] < MIN_INTERIOR_PX))
    pixels = np.flatnonzero(use.ravel())
    ids = lab.ravel()[pixels]
    order = np.argsort(ids, kind="stable")
    pixels, ids = pixels[order], ids[order]
    bounds = np.searchsorted(ids, np.arange(1, n + 2))
    values = frame.reshape(-1, C)[pixels]
    ratio = None
    if dual_energy:
        from msseg_ros.core.segmentation.inputs import dual_energy_ratio

        r = dual_energy
        ratio = dual_energy_ratio(values[:, r["low"]], values[:, r["high"]], float(r["full_scale"]),
                                  float(r["min_attenuation"]), float(r["min_transmission"]))
    areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    out = np.zeros((n, feature_count(C, spectral_channels, dual_energy)), np.float32)
    for k in range(n):
        block = values[bounds[k]:bounds[k + 1]]
        mean = block.mean(axis=0)
        row = [mean, np.median(block, axis=0)]
        if spectral_channels:
            logs = np.log(np.maximum(mean[spectral_channels], 1e-3))
            row.append(logs - logs.mean())
        if ratio is not None:
            defined = ratio[bounds[k]:bounds[k + 1]]
            defined = defined[defined > 0]
            row.append(np.array([np.median(defined) if defined.size else 0.0]))
        row.append(np.array([np.log(max(int(areas[k]), 1))]))
        out[k] = np.concatenate(row)
    return out


def validate_settings(settings: Any, channels: int) -> dict[str, Any]:
    """A config's ``class_head`` block, checked; raises ClassHeadError."""
    if not isinstance(settings, Mapping):
        raise ClassHeadError(f"model config 'class_head' must be a mapping or null, got {settings!r}")
    spectral = settings.get("spectral_channels", [])
    if not isinstance(spectral, list) or not all(isinstance(c, int) and 0 <= c < channels for c in spectral):
        raise ClassHeadError(f"model config 'class_head.spectral_channels' must be channel indices in "
                             f"[0, {channels - 1}], got {spectral!r}")
    dual = settings.get("dual_energy_ratio")
    if dual is not None:
        from msseg_ros.core.segmentation.inputs import validate_dual_energy

        dual = validate_dual_energy(dual, channels)
    features = settings.get("features")
    expected = feature_count(channels, spectral, dual)
    if features != expected:
        raise ClassHeadError(f"model config 'class_head.features' is {features!r} but {channels} channels, "
                             f"{len(spectral)} spectral and {'a' if dual else 'no'} ratio give {expected}")
    return {**settings, "spectral_channels": spectral, "dual_energy_ratio": dual}


@dataclass
class ClassHead:
    """A fitted head: ``booster`` (a ``lightgbm.Booster``) and its settings (the config's
    ``class_head`` block: ``spectral_channels``, ``dual_energy_ratio``, ``features``)."""

    booster: Any
    settings: dict[str, Any]

    def features(self, frame: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
        return instance_features(frame, labels, n, self.settings["spectral_channels"],
                                 self.settings["dual_energy_ratio"])

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, K) class probabilities; column k is class id k + 1."""
        if not len(features):
            return np.zeros((0, int(self.booster.num_model_per_iteration())), np.float32)
        return np.asarray(self.booster.predict(features, num_threads=1), np.float32).reshape(len(features), -1)

    def apply(self, frame: np.ndarray, instances: Instances) -> Instances:
        """``instances`` with each class id replaced by the head's most probable class."""
        if not len(instances):
            return instances
        probs = self.probabilities(self.features(frame, instances.labels, len(instances)))
        return replace(instances, class_ids=probs.argmax(axis=1).astype(np.int64) + 1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        text = self.booster.model_to_string().encode()
        return {TENSOR: np.frombuffer(zlib.compress(text, 9), np.uint8).copy()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], settings: Any, channels: int,
                    n_classes: int) -> ClassHead:
        """Rebuild from a checkpoint's tensor and config block; raises ClassHeadError."""
        settings = validate_settings(settings, channels)
        if TENSOR not in arrays:
            raise ClassHeadError(f"the config has a 'class_head' but the checkpoint lacks the tensor {TENSOR!r}")
        lgb = _lightgbm()
        try:
            text = zlib.decompress(np.asarray(arrays[TENSOR], np.uint8).tobytes()).decode()
            booster = lgb.Booster(model_str=text)
        except (zlib.error, UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
            raise ClassHeadError(f"the checkpoint's class head is corrupt: {exc}") from None
        if booster.num_feature() != settings["features"] or booster.num_model_per_iteration() != n_classes:
            raise ClassHeadError(f"the class head takes {booster.num_feature()} features and gives "
                                 f"{booster.num_model_per_iteration()} classes; the config says "
                                 f"{settings['features']} and the model has {n_classes}")
        return cls(booster, settings)


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError:
        raise ClassHeadError("this model has a class head, which needs LightGBM: pip install lightgbm") from None
    return lightgbm


def split_arrays(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the model's own tensors, the class head's)."""
    head = {k: v for k, v in arrays.items() if k.startswith("class_head.")}
    return {k: v for k, v in arrays.items() if k not in head}, head


def ground_truth_features(samples: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                          spectral_channels: list[int], dual_energy: Mapping[str, Any] | None,
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Features and class ids of ground-truth instances.

    Args:
        samples: (checked frame (H, W, C) float32, masks (N, H, W) bool, class ids (N,)).

    Returns:
        ((M, F) float32 features, (M,) int64 class ids); an instance wholly covered by later
        ones is left out.
    """
    from msseg_ros.core.learning.targets import labels_from_masks

    rows, ys = [], []
    for frame, masks, class_ids in samples:
        class_ids = np.asarray(class_ids, np.int64)
        shape = masks.shape[1:]
        labels = labels_from_masks(masks, shape)
        present = np.bincount(labels.ravel(), minlength=len(masks) + 1)[1:] > 0
        if not present.all():
            labels, class_ids = labels_from_masks(masks[present], shape), class_ids[present]
        rows.append(instance_features(frame, labels, len(class_ids), spectral_channels, dual_energy))
        ys.append(class_ids)
    if not rows or not sum(len(y) for y in ys):
        raise ClassHeadError("no ground-truth instances in the data")
    return np.concatenate(rows), np.concatenate(ys)


def fit_class_head(features: np.ndarray, class_ids: np.ndarray, n_classes: int, channels: int,
                   spectral_channels: list[int], dual_energy: Mapping[str, Any] | None,
                   options: Mapping[str, Any] | None = None) -> ClassHead:
    """Fit a head on ground-truth instances (:func:`ground_truth_features`).

    Args:
        features: (M, F). class_ids: (M,) in 1..n_classes. channels: the frames' C.
        options: ``FIT_DEFAULTS`` keys.
    """
    lgb = _lightgbm()
    opts = {**FIT_DEFAULTS, **(options or {})}
    unknown = set(opts) - set(FIT_DEFAULTS)
    if unknown:
        raise ClassHeadError(f"unknown class head option(s) {sorted(unknown)}; known: {', '.join(FIT_DEFAULTS)}")
    if n_classes < 2:
        raise ClassHeadError(f"a class head chooses between classes; this model has {n_classes}")
    y = np.asarray(class_ids, np.int64)
    if not len(y):
        raise ClassHeadError("no ground-truth instances to fit the class head on")
    if y.min() < 1 or y.max() > n_classes:
        raise ClassHeadError(f"class ids {y.min()}..{y.max()} outside the model's 1..{n_classes}")
    params = {"objective": "multiclass", "num_class": n_classes, "num_leaves": int(opts["num_leaves"]),
              "learning_rate": float(opts["learning_rate"]), "seed": int(opts["seed"]), "deterministic": True,
              "num_threads": 2, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(np.asarray(features, np.float32), y - 1), int(opts["rounds"]))
    settings = {"spectral_channels": list(spectral_channels),
                "dual_energy_ratio": dict(dual_energy) if dual_energy else None,
                "features": int(features.shape[1]), "fit": {k: opts[k] for k in FIT_DEFAULTS},
                "instances": int(len(y))}
    return ClassHead(booster, validate_settings(settings, channels))
