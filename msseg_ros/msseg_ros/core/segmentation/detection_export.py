"""Faster ONNX exports of torchvision's detection models (the ``maskrcnn`` type).

Traced for export, torchvision writes two steps in ways ONNX Runtime runs slowly:

* Multi-scale RoIAlign puts each FPN level's results back in RoI order with a
  ScatterElements of the whole (R, C, S, S) block per level, which ONNX Runtime runs
  element by element. :func:`gather_merge_levels` does it with one Gather.
* Batched NMS (the RPN's, one category per FPN level; the box head's, one per class)
  offsets each category's boxes so that one NMS over all of them never mixes two. ONNX's
  NonMaxSuppression has a class axis for exactly this: ``msseg::batched_nms`` exports to
  it, one category a class (half the time of the single-class NMS on 3,350 RPN boxes).

:func:`traced_for_onnx` swaps both in while a model is traced; eager runs never see them.
The exported line model's outputs are bit-identical to the plain export's
(test/core/test_runtimes.py checks the parity with torch); ONNX Runtime ran it in 33 ms
against 39 (docs/models.md, "Faster around the network").
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torchvision.ops import boxes as box_ops
from torchvision.ops import poolers

#: ONNX TensorProto element types
_FLOAT, _INT64 = 1, 7


def gather_merge_levels(levels: torch.Tensor, per_level: list[torch.Tensor]) -> torch.Tensor:
    """Per-level RoIAlign results back in RoI order: concatenated level after level, then
    one Gather by the inverse of that order.

    Args:
        levels: (R,) int, each RoI's FPN level.
        per_level: level k's results, (R_k, C, S, S), its RoIs in RoI order.
    """
    order = torch.cat([torch.where(levels == level)[0] for level in range(len(per_level))])
    return torch.cat(per_level)[torch.argsort(order)]


@torch.library.custom_op("msseg::batched_nms", mutates_args=())
def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision's batched NMS as one traceable operator: the indices kept, (K,) int64,
    by decreasing score; boxes (N, 4) x0, y0, x1, y1; ``idxs`` (N,) the category of each
    (NMS never compares two categories)."""
    return box_ops._batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold)


def _batched_nms_symbolic(g: Any, boxes: Any, scores: Any, idxs: Any, iou_threshold: Any) -> Any:
    """ONNX for :func:`batched_nms`: NonMaxSuppression with one class per category. A
    box's score stands in its category's row and -1 in the others, below the score
    threshold (-0.5; the detectors' scores are probabilities, >= 0); the kept indices are
    then sorted by decreasing score, as torchvision returns them."""
    from torch.onnx import symbolic_helper

    iou = symbolic_helper._parse_arg(iou_threshold, "f")

    def i64(v: Any) -> Any:
        return g.op("Constant", value_t=torch.tensor(v, dtype=torch.long))

    def f32(v: Any) -> Any:
        return g.op("Constant", value_t=torch.tensor(v, dtype=torch.float))

    ids = g.op("Cast", idxs, to_i=_INT64)
    # categories: the largest id + 1 (0 appended so that no box is no error)
    depth = g.op("Add", g.op("ReduceMax", g.op("Concat", ids, i64([0]), axis_i=0), keepdims_i=1), i64([1]))
    onehot = g.op("OneHot", ids, depth, f32([0.0, 1.0]), axis_i=-1)  # (N, C)
    score = g.op("Cast", scores, to_i=_FLOAT)
    by_class = g.op("Sub", g.op("Mul", onehot, g.op("Add", g.op("Unsqueeze", score, i64([1])), f32(1.0))), f32(1.0))
    by_class = g.op("Unsqueeze", g.op("Transpose", by_class, perm_i=[1, 0]), i64([0]))  # (1, C, N)
    selected = g.op("NonMaxSuppression", g.op("Unsqueeze", g.op("Cast", boxes, to_i=_FLOAT), i64([0])), by_class,
                    i64([sys.maxsize]), f32([iou]), f32([-0.5]))  # (K, 3): batch, class, box
    kept = g.op("Squeeze", g.op("Gather", selected, i64([2]), axis_i=1), i64([1]))
    kept_scores = g.op("Gather", score, kept, axis_i=0)
    _, order = g.op("TopK", kept_scores, g.op("Shape", kept_scores), axis_i=0, largest_i=1, sorted_i=1, outputs=2)
    return g.op("Gather", kept, order, axis_i=0)


#: the ONNX opset the symbolic is registered from: it writes Squeeze and Unsqueeze with
#: their axes as inputs, as opset 13 does (runtimes.ONNX_OPSET exports at 17)
SYMBOLIC_OPSET = 13
torch.onnx.register_custom_op_symbolic("msseg::batched_nms", _batched_nms_symbolic, SYMBOLIC_OPSET)


def _traced_batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                        iou_threshold: float) -> torch.Tensor:
    return torch.ops.msseg.batched_nms(boxes, scores, idxs, float(iou_threshold))


@contextlib.contextmanager
def traced_for_onnx() -> Iterator[None]:
    """While tracing, torchvision's RoI level merge and batched NMS are the faster
    exports above (both read at call time from their modules, so the swap reaches
    torchvision's RPN and RoI heads); outside a trace, nothing changes. Should torchvision
    rename what is swapped, its own steps are exported."""
    if not torch.jit.is_tracing():
        yield
        return
    saved = []
    for module, name, new in ((poolers, "_onnx_merge_levels", gather_merge_levels),
                              (box_ops, "batched_nms", _traced_batched_nms)):
        if hasattr(module, name):
            saved.append((module, name, getattr(module, name)))
            setattr(module, name, new)
    try:
        yield
    finally:
        for module, name, old in saved:
            setattr(module, name, old)
