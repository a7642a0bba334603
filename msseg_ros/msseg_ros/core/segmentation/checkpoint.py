"""Checkpoints: safetensors weights plus the model config. Nothing is ever unpickled.

A checkpoint is ``NAME.safetensors``; the model config is stored in its metadata
(``msseg_config``, JSON) and, for people, beside it as ``NAME.yaml``. Loading checks, in
order, and raises :class:`CheckpointError` with a specific message for:

* a missing file;
* a pickle or a ``torch.save`` zip archive (refused, never loaded);
* a truncated or corrupt safetensors file (header and sizes are checked first);
* a config that is not valid JSON or lacks ``type``;
* weights that do not match what the config builds (missing, unexpected, mis-shaped).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from msseg_ros.core.segmentation.base import SegmentationError

FORMAT = "msseg-checkpoint-1"


class CheckpointError(SegmentationError, ValueError):
    """A checkpoint cannot be loaded; the message says why."""


def _to_numpy(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def save_checkpoint(path: str | Path, tensors: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write ``tensors`` (torch tensors or numpy arrays) and ``config``."""
    import yaml
    from safetensors.numpy import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for k, v in tensors.items():
        a = _to_numpy(v)
        arrays[k] = a if a.flags.c_contiguous else a.copy()  # ascontiguousarray would make 0-d 1-d
    save_file(arrays, str(path), metadata={"format": FORMAT, "msseg_config": json.dumps(config)})
    path.with_suffix(".yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def set_config_keys(path: str | Path, keys: dict[str, Any]) -> Path:
    """Rewrite checkpoint ``path`` with ``keys`` set in its config (tensors unchanged,
    their dtypes kept)."""
    arrays, config = load_checkpoint(path)
    return save_checkpoint(path, arrays, {**config, **keys})


def sniff(path: Path) -> None:
    """Refuse what is not a complete safetensors file, before any parsing library sees it."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        # safetensors: an 8-byte length, then a JSON header; the length's first byte may be
        # 0x80 too, so a pickle is told by what follows
        json_follows = f.read(1) == b"{"
        f.seek(8)
        if head[:1] == b"\x80" and not (json_follows and struct.unpack("<Q", head)[0] <= size - 8):
            raise CheckpointError(
                f"{str(path)!r} is a Python pickle, not safetensors; msseg_ros never unpickles "
                "weights (convert with safetensors.torch.save_file in a trusted environment)"
            )
        if head[:4] == b"PK\x03\x04":
            raise CheckpointError(
                f"{str(path)!r} is a torch.save zip archive (pickle inside), not safetensors; "
                "msseg_ros never unpickles weights"
            )
        if len(head) < 8:
            raise CheckpointError(f"{str(path)!r} is truncated: {size} B, not even a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100_000_000:
            raise CheckpointError(
                f"{str(path)!r} is truncated or not safetensors: header of {n} B in a {size} B file"
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{str(path)!r} has a corrupt safetensors header") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if size < 8 + n + end:
        raise CheckpointError(
            f"{str(path)!r} is truncated: {size} B but its header describes {8 + n + end} B"
        )


def load_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Return (arrays, config) of a checkpoint; see the module docstring for the checks."""
    from safetensors import safe_open

    path = Path(path)
    sniff(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
        raise CheckpointError(f"{str(path)!r} cannot be read as safetensors: {exc}") from None
    try:
        config = json.loads(meta["msseg_config"])
    except KeyError:
        raise CheckpointError(f"{str(path)!r} has no msseg_config metadata (not an msseg checkpoint)") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{str(path)!r}: its msseg_config metadata is not JSON ({exc})") from None
    if not isinstance(config, dict) or "type" not in config:
        raise CheckpointError(f"{str(path)!r}: its config has no model 'type'")
    return arrays, config


def check_matches(expected: dict[str, tuple[int, ...]], arrays: dict[str, np.ndarray], where: str) -> None:
    """Raise CheckpointError naming every key and shape where ``arrays`` differ from the
    shapes a model built from the config expects."""
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(arrays[k].shape)} vs config {tuple(expected[k])}"
        for k in sorted(set(expected) & set(arrays))
        if tuple(arrays[k].shape) != tuple(expected[k])
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:4]) + (" ..." if len(shapes) > 4 else ""))
        if missing:
            parts.append(f"missing {missing[:4]}" + (" ..." if len(missing) > 4 else ""))
        if unexpected:
            parts.append(f"unexpected {unexpected[:4]}" + (" ..." if len(unexpected) > 4 else ""))
        raise CheckpointError(f"checkpoint {where} does not match its config: " + "; ".join(parts))
