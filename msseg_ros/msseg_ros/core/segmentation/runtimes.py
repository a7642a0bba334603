"""Inference runtimes: what runs a torch model's exported forward pass.

A model type's export hook (:meth:`Segmenter.export_spec`) gives a module, example
inputs and output names; a runtime turns it into an :class:`Engine`, a callable from
input tensors to the tuple of output tensors, which the model's ``predict`` calls. The
model's pre- and post-processing (padding, clustering, masks to instances) stays in
Python, so every runtime gives the same :class:`Instances`.

* ``torch``: the module itself, eager, under ``torch.inference_mode``.
* ``onnxruntime``: the module exported to ONNX (TorchScript-based exporter, opset 17)
  and run by an ONNX Runtime CPU session with torch's thread count. The exported file is
  cached as ``{cache_dir}/{key}.onnx``; the key is a hash of the model's config and
  weights, so a changed checkpoint is exported again and an unchanged one never.
* ``openvino``: the same ONNX file (same cache), read and compiled by OpenVINO for its
  CPU plugin with torch's thread count (shapes stay dynamic: frames of any size).

Runtimes are registered by name in :data:`~msseg_ros.core.segmentation.base.RUNTIMES`.
"""
from __future__ import annotations

import abc
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

from msseg_ros.core.segmentation.base import ExportError, ExportSpec, SegmentationError

#: input tensors -> output tensors, in the export spec's output order
Engine = Callable[..., tuple[torch.Tensor, ...]]

ONNX_OPSET = 17


class RuntimeUnavailableError(SegmentationError):
    """A runtime is not installed here, or cannot run this model; the message says why."""


def user_cache_dir() -> Path:
    """``$MSSEG_CACHE``, else ``$XDG_CACHE_HOME/msseg_ros``, else ``~/.cache/msseg_ros``."""
    if os.environ.get("MSSEG_CACHE"):
        return Path(os.environ["MSSEG_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "msseg_ros"


def model_key(config: dict[str, Any], state: dict[str, Any]) -> str:
    """A hash of a model's config and weights (hex, 16 characters)."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
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


class TorchRuntime(Runtime):
    """The exported module itself, eager, without autograd."""

    name = "torch"

    def build(self, spec: ExportSpec, key: str = "", cache_dir: Path | None = None) -> Engine:
        module = spec.module

        def run(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            with torch.inference_mode():
                return _as_tuple(module(*inputs))

        return run


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
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        session = _load_export(spec, cache_dir / f"{key}.onnx", "ONNX Runtime", lambda path: ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]))
        names = [i.name for i in session.get_inputs()]

        def run(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            feed = {n: np.ascontiguousarray(x.detach().cpu().numpy()) for n, x in zip(names, inputs, strict=True)}
            return tuple(torch.from_numpy(o) for o in session.run(None, feed))

        return run


class OpenVinoRuntime(Runtime):
    """OpenVINO's CPU plugin on the module exported to ONNX (the file ``onnxruntime``
    caches, shared)."""

    name = "openvino"
    requires = ("openvino", "onnx")

    def build(self, spec: ExportSpec, key: str, cache_dir: Path) -> Engine:
        import openvino as ov

        core = ov.Core()
        # f32: the CPU plugin would pick bf16 on CPUs that have it, and differ from torch
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}
        compiled = _load_export(spec, cache_dir / f"{key}.onnx", "OpenVINO",
                                lambda path: core.compile_model(core.read_model(str(path)), "CPU", config))
        request = compiled.create_infer_request()
        outputs = list(compiled.outputs)

        def run(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            feed = [np.ascontiguousarray(x.detach().cpu().numpy()) for x in inputs]
            result = request.infer(feed)
            return tuple(torch.from_numpy(np.array(result[o])) for o in outputs)

        return run


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
