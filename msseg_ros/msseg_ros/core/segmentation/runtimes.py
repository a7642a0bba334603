"""Inference runtimes: what runs a torch model's exported forward pass.

A model type's export hook (:meth:`Segmenter.export_spec`) gives a module, example
inputs and output names; a runtime turns it into an :class:`Engine`, a callable from
input tensors to the tuple of output tensors, which the model's ``predict`` calls. The
model's pre- and post-processing (padding, clustering, masks to instances) stays in
Python, so every runtime gives the same :class:`Instances`.

* ``torch``: a copy of the module as it is at build time, eager, under
  ``torch.inference_mode``, with every BatchNorm that follows a convolution folded into
  it (:func:`fold_batchnorm`; ONNX Runtime and OpenVINO fold them in their own graph
  optimisation). Training runs on the model's live module, never on an engine.
* ``onnxruntime``: the module exported to ONNX (TorchScript-based exporter, opset 17)
  and run by an ONNX Runtime CPU session with torch's thread count. The exported file is
  cached as ``{cache_dir}/{key}.onnx``; the key is a hash of the model's config and
  weights, so a changed checkpoint is exported again and an unchanged one never.
* ``openvino``: the same ONNX file (same cache), read and compiled by OpenVINO for its
  CPU plugin with torch's thread count (shapes stay dynamic: frames of any size), f32.
* ``openvino_bf16``: the same in bfloat16, on CPUs with bf16 instructions only; not
  bit-close to torch (bf16 keeps 8 bits of mantissa): its accuracy is measured, not
  assumed (docs/models.md, "Runtimes").
* ``onnxruntime_int8``: ONNX Runtime on a post-training int8 quantisation of that file,
  calibrated on real frames by ``msseg quantize`` (:func:`quantize`), cached beside it
  (:func:`int8_path`); without one it is refused with that instruction.

Runtimes are registered by name in :data:`~msseg_ros.core.segmentation.base.RUNTIMES`.
"""
from __future__ import annotations

import abc
import copy
import hashlib
import importlib.util
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from msseg_ros.core.segmentation.base import (
    ExportError,
    ExportSpec,
    InferenceError,
    SegmentationError,
)

#: input tensors -> output tensors, in the export spec's output order
Engine = Callable[..., tuple[torch.Tensor, ...]]

ONNX_OPSET = 17


class RuntimeUnavailableError(SegmentationError):
    """A runtime is not installed here, or cannot run this model; the message says why."""


def _failed(runtime: str, exc: Exception) -> InferenceError:
    reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return InferenceError(f"{runtime} failed on this frame: {reason}")


def user_cache_dir() -> Path:
    """``$MSSEG_CACHE``, else ``$XDG_CACHE_HOME/msseg_ros``, else ``~/.cache/msseg_ros``."""
    if os.environ.get("MSSEG_CACHE"):
        return Path(os.environ["MSSEG_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "msseg_ros"


#: bumped when an exported graph changes for the same weights (a forward pass written
#: anew), so that exports cached before are not reused; 2: bicameral's pooling; 3: Mask
#: R-CNN's RoI poolers merge their levels with a Gather; 4: and its NMS uses ONNX's class axis;
#: 5: its RPN decodes only the anchors it keeps; 6: its masks leave the graph unpasted
EXPORT_REVISION = 6


def model_key(config: dict[str, Any], state: dict[str, Any]) -> str:
    """A hash of a model's config and weights and :data:`EXPORT_REVISION` (hex, 16
    characters)."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(f"export revision {EXPORT_REVISION}".encode())
    for name in sorted(state):
        v = state[name]
        a = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        h.update(name.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class Runtime(abc.ABC):
    """Builds an :class:`Engine` from a model's export spec."""

    name: ClassVar[str] = ""
    #: the Python modules (= pip packages) this runtime needs
    requires: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this runtime cannot run here (a package is missing), or None."""
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            return f"{' and '.join(missing)} not installed (pip install {' '.join(cls.requires)})"
        return None

    @abc.abstractmethod
    def build(self, spec: ExportSpec, key: str, cache_dir: Path) -> Engine:
        """The engine of ``spec``; ``key`` names the model's cached files in ``cache_dir``."""


def fold_batchnorm(module: torch.nn.Module) -> int:
    """Fold inference-mode BatchNorm layers into the convolutions before them, in place.

    Folded: a ``BatchNorm2d`` right after a ``Conv2d`` or ``ConvTranspose2d`` in an
    ``nn.Sequential`` (torchvision's Conv2dNormActivation, the bicameral net's blocks),
    and whatever a submodule folds itself through its own ``fold_batchnorm()`` method
    (layers that are not in a Sequential). The convolution's weight and bias take the
    normalisation's scale and shift (``W' = W * g / sqrt(var + eps)``,
    ``b' = (b - mean) * g / sqrt(var + eps) + beta``); the BatchNorm becomes an Identity.
    The outputs agree with the unfolded module to float32 rounding. Only for a module
    in eval mode that will not train again.

    Returns:
        how many BatchNorm layers were folded.
    """
    if module.training:
        raise ValueError("fold_batchnorm: the module is in training mode (its BatchNorm still learns)")
    folded = 0
    for sub in list(module.modules()):
        own = getattr(sub, "fold_batchnorm", None)
        if own is not None and sub is not module:
            folded += int(own())
        if not isinstance(sub, torch.nn.Sequential):
            continue
        names = list(sub._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = sub._modules[first], sub._modules[second]
            fused = fold_conv_bn(conv, bn)
            if fused is not None:
                sub._modules[first], sub._modules[second] = fused, torch.nn.Identity()
                folded += 1
    return folded


def fold_conv_bn(conv: Any, bn: Any) -> torch.nn.Module | None:
    """``conv`` with ``bn`` folded in (a new module), or None when the pair cannot fold
    (not a 2-D convolution followed by a BatchNorm2d with running statistics)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    transpose = isinstance(conv, torch.nn.ConvTranspose2d)
    if not isinstance(conv, torch.nn.Conv2d | torch.nn.ConvTranspose2d) or not isinstance(bn, torch.nn.BatchNorm2d):
        return None
    if bn.running_mean is None or bn.running_var is None or conv.out_channels != bn.num_features:
        return None
    return fuse_conv_bn_eval(conv, bn, transpose=transpose)


class ModuleEngine:
    """An engine that runs ``module`` itself under ``torch.inference_mode``: it follows
    the module's weights as they change (a model being trained and validated)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            return _as_tuple(self.module(*inputs))


class TorchRuntime(Runtime):
    """A copy of the exported module as it is now, eager, without autograd, BatchNorm
    folded into the convolutions (:func:`fold_batchnorm`)."""

    name = "torch"

    def build(self, spec: ExportSpec, key: str = "", cache_dir: Path | None = None) -> Engine:
        frozen = copy.deepcopy(spec.module).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        fold_batchnorm(frozen)
        return ModuleEngine(frozen)


class OnnxRuntime(Runtime):
    """ONNX Runtime's CPU execution provider on the module exported to ONNX."""

    name = "onnxruntime"
    requires = ("onnxruntime", "onnx")

    @staticmethod
    def export(spec: ExportSpec, path: Path) -> Path:
        """Export ``spec`` to ``path`` (written to a temporary file, then renamed, so a
        crash never leaves half a model in the cache)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
        os.close(fd)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python
                torch.onnx.export(spec.module, spec.example_inputs, tmp, input_names=list(spec.input_names),
                                  output_names=list(spec.output_names), dynamic_axes=spec.dynamic_axes,
                                  opset_version=ONNX_OPSET, dynamo=False)
            os.replace(tmp, path)
        except Exception as exc:  # the exporter raises many kinds; all mean "cannot export"
            Path(tmp).unlink(missing_ok=True)
            raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
        return path

    def build(self, spec: ExportSpec, key: str, cache_dir: Path) -> Engine:
        return _session_engine(_load_export(spec, cache_dir / f"{key}.onnx", "ONNX Runtime", _ort_session))


def _ort_session(path: Path) -> Any:
    """An ONNX Runtime CPU session on ``path`` with torch's thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    # measured both ways (docs/models.md, the pipeline): sleeping threads make a line frame
    # 3 ms faster alone but the segmenter node 8-12 ms slower in the graph; spinning stays
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _session_engine(session: Any) -> Engine:
    names = [i.name for i in session.get_inputs()]

    def run(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feed = {n: np.ascontiguousarray(x.detach().cpu().numpy()) for n, x in zip(names, inputs, strict=True)}
        try:
            outputs = session.run(None, feed)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises plain Exceptions
            raise _failed("ONNX Runtime", exc) from exc
        return tuple(torch.from_numpy(o) for o in outputs)

    return run


def _f32_export(spec: ExportSpec, key: str, cache_dir: Path) -> Path:
    """The cached f32 ONNX export of ``spec`` (exported now when missing)."""
    f32 = cache_dir / f"{key}.onnx"
    if not f32.is_file():
        OnnxRuntime.export(spec, f32)
    return f32


def int8_path(f32: Path) -> Path:
    """Where ``msseg quantize`` puts the int8 quantisation of the f32 ONNX file ``f32``:
    beside it, named by a hash of its bytes (settings that do not change the exported
    graph, such as a post-processing threshold, keep the calibration)."""
    digest = hashlib.sha256(f32.read_bytes()).hexdigest()[:16]
    return f32.parent / f"{digest}.int8.onnx"


class OnnxRuntimeInt8(Runtime):
    """ONNX Runtime on the model's post-training int8 quantisation (:func:`quantize`:
    QDQ, int8 convolution weights per output channel, uint8 activations calibrated on real
    frames). Built only from a calibrated file: ``msseg quantize`` makes it."""

    name = "onnxruntime_int8"
    requires = ("onnxruntime", "onnx")

    def build(self, spec: ExportSpec, key: str, cache_dir: Path) -> Engine:
        path = int8_path(_f32_export(spec, key, cache_dir))
        if not path.is_file():
            raise RuntimeUnavailableError(f"no int8 model calibrated for this checkpoint ({path} is missing): "
                                          "run `msseg quantize WEIGHTS --data COCO.json` first")
        try:
            return _session_engine(_ort_session(path))
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises plain Exceptions
            raise RuntimeUnavailableError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0][:300]} "
                                          "(run `msseg quantize` again)") from exc


def quantize(spec: ExportSpec, key: str, cache_dir: Path, calibration: list[tuple[np.ndarray, ...]],
             op_types: tuple[str, ...] = ("Conv",)) -> Path:
    """Post-training static int8 quantisation of the model's ONNX export with ONNX Runtime
    (QDQ format; ``op_types`` quantised, int8 weights per output channel, uint8 activations
    whose ranges are the min / max seen on ``calibration``, the engine inputs of real
    frames). Writes :func:`int8_path` (atomically) and returns it."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ExportError("int8 calibration needs at least one frame")
    f32 = _f32_export(spec, key, cache_dir)
    names = list(spec.input_names)

    class Frames(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._it, None)
            return None if item is None else dict(zip(names, item, strict=True))

    out = int8_path(f32)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        prepared, quantised = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # shapes stay dynamic (frames of any size): no symbolic shape inference
                quant_pre_process(str(f32), str(prepared), skip_symbolic_shape=True)
                quantize_static(str(prepared), str(quantised), Frames(), quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                                op_types_to_quantize=list(op_types))
        except Exception as exc:  # noqa: BLE001 - the quantiser raises plain Exceptions
            raise ExportError(f"int8 quantisation failed: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
        os.replace(quantised, out)
    return out


class OpenVinoRuntime(Runtime):
    """OpenVINO's CPU plugin on the module exported to ONNX (the file ``onnxruntime``
    caches, shared), in f32."""

    name = "openvino"
    requires = ("openvino", "onnx")
    #: the CPU plugin's INFERENCE_PRECISION_HINT
    precision: ClassVar[str] = "f32"

    def build(self, spec: ExportSpec, key: str, cache_dir: Path) -> Engine:
        import openvino as ov

        core = ov.Core()
        # named, never left to the plugin: on CPUs with bf16 it would pick bf16 for f32
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": self.precision}
        compiled = _load_export(spec, cache_dir / f"{key}.onnx", "OpenVINO",
                                lambda path: core.compile_model(core.read_model(str(path)), "CPU", config))
        request = compiled.create_infer_request()
        outputs = list(compiled.outputs)

        def run(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            feed = [np.ascontiguousarray(x.detach().cpu().numpy()) for x in inputs]
            try:
                result = request.infer(feed)
            except Exception as exc:  # noqa: BLE001 - OpenVINO raises plain RuntimeErrors
                raise _failed("OpenVINO", exc) from exc
            return tuple(torch.from_numpy(np.array(result[o])) for o in outputs)

        return run


class OpenVinoBf16Runtime(OpenVinoRuntime):
    """OpenVINO's CPU plugin computing in bfloat16 (inputs and outputs stay f32), for
    CPUs with bf16 instructions (AVX512-BF16, AMX): on an Intel Xeon with AMX the
    bicameral F25 ran 2.6x faster than in f32 (docs/models.md, "Runtimes"); elsewhere
    the plugin would emulate it, so it is refused there."""

    name = "openvino_bf16"
    precision = "bf16"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = super().unavailable_reason()
        if missing:
            return missing
        import openvino as ov

        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if "BF16" not in caps:
            return f"this CPU has no bf16 instructions (OpenVINO's CPU capabilities: {', '.join(caps)})"
        return None


def _load_export(spec: ExportSpec, path: Path, runtime: str, load: Callable[[Path], Any]) -> Any:
    """``load(path)`` of the ONNX export of ``spec``, exported first when not cached; a
    cached file that fails to load (a crash, a full disk) is exported again, once."""
    if not path.is_file():
        OnnxRuntime.export(spec, path)
    try:
        return load(path)
    except Exception as exc:  # noqa: BLE001 - the runtimes raise plain Exceptions and their own kinds
        path.unlink(missing_ok=True)
        OnnxRuntime.export(spec, path)
        try:
            return load(path)
        except Exception as again:  # noqa: BLE001
            raise RuntimeUnavailableError(f"{runtime} cannot load the exported model: "
                                          f"{str(again).splitlines()[0][:300]}") from exc


def engine_cache_dir(weights_path: Path | None) -> Path:
    """Where exported files are cached: next to the checkpoint when that folder is
    writable (``{folder}/.msseg_runtimes``), else :func:`user_cache_dir`."""
    if weights_path is not None:
        folder = weights_path.parent
        if os.access(folder, os.W_OK):
            return folder / ".msseg_runtimes"
    return user_cache_dir() / "runtimes"
