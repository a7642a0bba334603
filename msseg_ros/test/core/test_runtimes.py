"""Inference runtimes: the same instances from torch, ONNX Runtime and OpenVINO, the export
cache, and clear refusals."""
import numpy as np
import pytest
import torch

from msseg_ros.core.segmentation.base import RUNTIMES, SEGMENTERS, ExportError, ModelConfigError
from msseg_ros.core.segmentation.loading import load_segmenter
from msseg_ros.core.segmentation.runtimes import (
    OnnxRuntime,
    OpenVinoRuntime,
    RuntimeUnavailableError,
    model_key,
)

from conftest import assert_same_outputs

pytestmark = pytest.mark.skipif(OnnxRuntime.unavailable_reason() is not None, reason="onnxruntime not installed")

SMALL = {
    "embeddings": {"width": 25, "in_channels": 3, "classes": ["a", "b"], "image_mean": [0.5] * 3,
                   "image_std": [0.25] * 3},
    "bicameral": {"width": 25},
    "maskrcnn": {"backbone": "resnet18", "in_channels": 3, "classes": ["a", "b"], "image_mean": [0.5] * 3,
                 "image_std": [0.25] * 3, "fpn_channels": 32, "box_representation": 64, "mask_channels": 16,
                 "min_size": 64, "max_size": 128, "score_threshold": 0.0},
}


def _frame(h=72, w=88, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    f[10:30, 12:40] = 0.9  # something object-like
    return f


def test_runtimes_are_registered():
    assert RUNTIMES.names() == ["onnxruntime", "openvino", "torch"]


OPENVINO = pytest.mark.skipif(OpenVinoRuntime.unavailable_reason() is not None,
                              reason=f"{OpenVinoRuntime.unavailable_reason()}")


@pytest.mark.parametrize("runtime", ["onnxruntime", pytest.param("openvino", marks=OPENVINO)])
@pytest.mark.parametrize("kind", ["embeddings", "bicameral", "maskrcnn"])
def test_exported_runtimes_give_the_same_outputs_and_instances(kind, runtime, tmp_path):
    torch.manual_seed(0)
    ref = SEGMENTERS.get(kind).from_config(SMALL[kind])
    onnx = SEGMENTERS.get(kind).from_config(SMALL[kind], weights={k: v.numpy() for k, v in ref.state_dict().items()})
    onnx.use_runtime(runtime, tmp_path)
    assert ref.runtime == "torch" and onnx.runtime == runtime
    assert len(list(tmp_path.glob(f"{kind}-*.onnx"))) == 1
    frame = _frame(72, 88)  # not the export's 256 x 256: dynamic axes
    x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))
    x = x if kind == "maskrcnn" else torch.nn.functional.pad(x[None], (0, 8, 0, 8), mode="replicate")
    assert_same_outputs(ref.engine(x), onnx.engine(x), atol=2e-4, rtol=1e-3)
    ia, ib = ref(frame), onnx(frame)
    assert len(ia) == len(ib)
    assert np.mean(ia.labels == ib.labels) > 0.999
    np.testing.assert_allclose(ib.scores, ia.scores, atol=1e-3)


def test_export_is_cached_by_config_and_weights(tmp_path):
    cfg = SMALL["embeddings"]
    torch.manual_seed(0)
    a = SEGMENTERS.get("embeddings").from_config(cfg)
    a.use_runtime("onnxruntime", tmp_path)
    (path,) = tmp_path.glob("*.onnx")
    stamp = path.stat().st_mtime_ns
    same = SEGMENTERS.get("embeddings").from_config(cfg, weights={k: v.numpy() for k, v in a.state_dict().items()})
    same.use_runtime("onnxruntime", tmp_path)
    assert path.stat().st_mtime_ns == stamp and len(list(tmp_path.glob("*.onnx"))) == 1  # not exported again
    torch.manual_seed(1)
    other = SEGMENTERS.get("embeddings").from_config(cfg)  # other weights: another file
    other.use_runtime("onnxruntime", tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 2
    assert model_key(a.config, a.state_dict()) != model_key(other.config, other.state_dict())


def test_a_corrupt_cached_export_is_replaced(tmp_path):
    torch.manual_seed(0)
    a = SEGMENTERS.get("embeddings").from_config(SMALL["embeddings"])
    a.use_runtime("onnxruntime", tmp_path)
    (path,) = tmp_path.glob("*.onnx")
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a crash or a full disk
    b = SEGMENTERS.get("embeddings").from_config(SMALL["embeddings"],
                                                 weights={k: v.numpy() for k, v in a.state_dict().items()})
    b.use_runtime("onnxruntime", tmp_path)
    assert len(b(_frame())) == len(a(_frame()))


def test_refusals_name_the_reason(tmp_path, monkeypatch):
    classic = load_segmenter("sorting_line_classic")
    with pytest.raises(ExportError, match="classic models run in Python only, not on onnxruntime"):
        classic.use_runtime("onnxruntime")
    with pytest.raises(ModelConfigError, match="unknown runtime 'tensorrt'"):
        load_segmenter(config={"type": "embeddings", **SMALL["embeddings"]}, runtime="tensorrt")
    monkeypatch.setattr(OnnxRuntime, "unavailable_reason", classmethod(lambda cls: "onnxruntime not installed"))
    seg = SEGMENTERS.get("embeddings").from_config(SMALL["embeddings"])
    with pytest.raises(RuntimeUnavailableError, match="runtime 'onnxruntime' is not available: onnxruntime not"):
        seg.use_runtime("onnxruntime", tmp_path)
    assert seg.runtime == "torch"  # the old engine stays
