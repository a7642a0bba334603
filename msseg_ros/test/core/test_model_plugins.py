"""The model plugin contract: a new model type is one class plus one registration, and
``msseg train``'s trainer, ``msseg eval`` and the parameter counts use it without knowing
it. The shipped types answer the contract's hooks (losses, metrics, export)."""
import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from msseg_ros.core.errors import RegistryError
from msseg_ros.core.learning.data import CocoFrames
from msseg_ros.core.learning.evaluate import evaluate
from msseg_ros.core.learning.train import load_train_config, train
from msseg_ros.core.registry import Registry
from msseg_ros.core.segmentation.base import SEGMENTERS, ExportError, Instances
from msseg_ros.core.segmentation.loading import load_segmenter
from msseg_ros.core.segmentation.torch_base import TorchSegmenter, require_normalisation
from msseg_ros.core.sim.dataset import generate


class PixelMetrics:
    def __init__(self, seg):
        self.seg, self.right, self.total = seg, 0, 0

    def update(self, dataset, index, frame, target):
        pred = self.seg(frame).labels > 0
        truth = target["masks"].any(0)
        self.right += int((pred == truth).sum())
        self.total += truth.size

    def summary(self):
        return {"pixel_accuracy": round(self.right / self.total, 4)}, {}


class ForegroundNet(TorchSegmenter):
    """A 1x1-conv foreground classifier; instances are its connected components."""

    type_name = "foreground_test"
    default_config = {"type": "foreground_test"}

    @classmethod
    def validate_config(cls, config):
        cfg = super().validate_config(config)
        require_normalisation(cfg, cfg["in_channels"])
        return cfg

    @classmethod
    def build_net(cls, cfg):
        return torch.nn.Conv2d(cfg["in_channels"], 2, 1)

    def _logits(self, x):
        mean = torch.tensor(self.config["image_mean"]).view(1, -1, 1, 1)
        std = torch.tensor(self.config["image_std"]).view(1, -1, 1, 1)
        return self.net((x - mean) / std)

    def training_batch(self, indices, context):
        frames, targets = [], []
        for i in indices:
            frame, tgt = context.dataset[i]
            frames.append(frame.transpose(2, 0, 1))
            targets.append(tgt["masks"].any(0))
        return torch.from_numpy(np.stack(frames)), torch.from_numpy(np.stack(targets)).long()

    def training_losses(self, batch):
        x, y = batch
        return {"loss_pixels": torch.nn.functional.cross_entropy(self._logits(x), y)}

    def extra_metrics(self):
        return PixelMetrics(self)

    @torch.inference_mode()
    def predict(self, frame):
        x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
        fg = self._logits(x).argmax(1)[0].numpy() > 0
        labels, n = ndimage.label(fg)
        return Instances.from_labels(labels, np.ones(n, np.int64), np.ones(n, np.float32))


@pytest.fixture(scope="module")
def line_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("plugin_data")
    generate("sorting_line", out, 4, 5, {"pixel_size": 0.004, "line_pitch": 0.004}, lines=64, split=(1, 0, 0))
    return out / "annotations" / "learning.json"


@pytest.fixture
def registered():
    SEGMENTERS.add("foreground_test", ForegroundNet)
    yield ForegroundNet
    SEGMENTERS.remove("foreground_test")


def test_a_new_type_trains_evaluates_and_loads_through_the_contract(registered, line_data, tmp_path):
    cfg = load_train_config(None, {"model.type": "foreground_test", "data.train": str(line_data),
                                   "data.val": str(line_data), "out": str(tmp_path / "run"),
                                   "train.epochs": 2, "train.batch_size": 2, "train.lr": 0.05})
    state = train(cfg, log=lambda m: None)
    assert state["step"] == 4 and len(state["history"]) == 2
    assert state["history"][-1]["val"]["pixel_accuracy"] > 0.5  # the type's own metric, via the hook
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["model"]["type"] == "foreground_test" and saved["model"]["in_channels"] == 11
    seg = load_segmenter(str(tmp_path / "run" / "model.safetensors"))
    assert isinstance(seg, ForegroundNet)
    assert seg.parameter_counts() == (24, 24) == ForegroundNet.parameter_counts_for(seg.config)
    metrics = evaluate(seg, CocoFrames(line_data), timing=False)
    assert "pixel_accuracy" in metrics["summary"] and metrics["summary"]["images"] == 4
    with pytest.raises(ExportError, match="foreground_test models cannot be exported"):
        seg.export_spec()


def test_registration_is_checked_and_reversible():
    reg = Registry("segmenter", required=("from_config",))
    reg.add_lazy("late", "msseg_ros.core.segmentation.classic:ClassicSegmenter")
    assert reg.names() == ["late"] and "late" in reg
    assert reg.get("late").type_name == "classic"  # imported on first use
    reg.add_lazy("broken", "msseg_ros.core.segmentation.nowhere:Nothing")
    with pytest.raises(RegistryError, match="'broken' cannot be loaded from"):
        reg.get("broken")
    with pytest.raises(RegistryError, match="not 'module:attribute'"):
        reg.add_lazy("bad", "no_colon")
    reg.remove("late")
    assert "late" not in reg
    with pytest.raises(RegistryError, match="nothing to remove"):
        reg.remove("late")


def test_listing_types_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from msseg_ros.core.segmentation.base import SEGMENTERS; "
            "print(SEGMENTERS.names(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['bicameral', 'classic', 'embeddings', 'maskrcnn'] False"


def test_bicameral_export_module_gives_the_models_maps():
    seg = load_segmenter(config={**SEGMENTERS.get("bicameral").default_config, "width": 25})
    spec = seg.export_spec()
    frame = np.random.default_rng(0).uniform(0, 255, (64, 48, 3)).astype(np.float32)
    y, z = seg.maps(frame)
    with torch.inference_mode():
        yy, zz = spec.module(torch.from_numpy(frame.transpose(2, 0, 1).copy())[None])
    # the loaded model's engine has BatchNorm folded in: float32 rounding differs
    np.testing.assert_allclose(yy[0, 0].numpy(), y, atol=1e-4)
    np.testing.assert_allclose(zz[0, 0].numpy(), z, atol=1e-4)
    assert spec.input_names == ("frame",) and spec.output_names == ("boundaries", "occlusions")
    assert spec.example_inputs[0].shape == (1, 3, 256, 256)


def test_maskrcnn_export_spec_runs_and_its_losses_are_its_own():
    cls = SEGMENTERS.get("maskrcnn")
    seg = load_segmenter(config={**cls.default_config, "backbone": "mobilenet_v3_large", "fpn_channels": 32,
                                 "box_representation": 64, "mask_channels": 16, "min_size": 128, "max_size": 128})
    spec = seg.export_spec()
    with torch.inference_mode():
        boxes, labels, scores, masks = spec.module(*spec.example_inputs)
    n = len(scores)
    assert boxes.shape == (n, 4) and labels.shape == (n,) and masks.shape == (n, 1, 28, 28)  # over each box
    assert spec.output_names == ("boxes", "labels", "scores", "masks")
    assert cls.config_from_parameters({"mask_threshold": 0.4}, 0.7) == {"mask_threshold": 0.4, "score_threshold": 0.05}


def test_classic_counts_without_weights_and_cannot_export(line_data):
    cls = SEGMENTERS.get("classic")
    cfg = cls.validate_config(cls.default_config)
    K, D, F = 9, cfg["rff_components"], 10
    assert cls.parameter_counts_for(cfg) == (2 * F + F * D + D + K * D + K + 2 * (K + 1) + K * (K + 1) + K,) * 2
    seg = load_segmenter("sorting_line_classic")
    with pytest.raises(ExportError, match="classic models cannot be exported"):
        seg.export_spec()
    assert cls.trained_by == "fit" and SEGMENTERS.get("bicameral").trained_by == "gradient"
