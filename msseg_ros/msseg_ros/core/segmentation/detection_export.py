"""Faster forms of torchvision's detection steps (the ``maskrcnn`` type).

Three steps run slowly in ONNX Runtime as torchvision writes them, the first two only once
traced for export:

* Multi-scale RoIAlign puts each FPN level's results back in RoI order with a
  ScatterElements of the whole (R, C, S, S) block per level, which ONNX Runtime runs
  element by element. :func:`gather_merge_levels` does it with one Gather.
* Batched NMS (the RPN's, one category per FPN level; the box head's, one per class)
  offsets each category's boxes so that one NMS over all of them never mixes two. ONNX's
  NonMaxSuppression has a class axis for exactly this: ``msseg::batched_nms`` exports to
  it, one category a class (half the time of the single-class NMS on 3,350 RPN boxes).
* The RPN makes an anchor for every position of every level and decodes every anchor's
  box (52,500 on a line frame), then keeps each level's best ``pre_nms_top_n`` by
  objectness. :func:`rpn_proposals` keeps them first, then makes and decodes the anchors
  of those only (3,100). Decoding is per box, so the kept boxes are the same numbers.
  The ``maskrcnn`` type's inference calls it, eager and exported alike (training, which
  needs every anchor for its losses, runs torchvision's RPN).

:func:`traced_for_onnx` swaps the first two in while a model is traced; eager runs never
see them.
The exported line model's outputs are bit-identical to the plain export's
(test/core/test_runtimes.py checks the parity with torch); ONNX Runtime ran it in 33 ms
against 39 with the first two, 52 against 67 with the third in another session
(docs/models.md, "Faster around the network", "Fewer anchors decoded").
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, permute_and_flatten
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


def level_anchors(index: torch.Tensor, cell_anchors: torch.Tensor, grid_width: Any,
                  stride: tuple[Any, Any]) -> torch.Tensor:
    """The anchors at flat positions ``index`` of one feature level, as torchvision's
    AnchorGenerator lays them out: position ``(y * grid_width + x) * A + a`` is cell
    anchor ``a`` shifted by (x * stride_x, y * stride_y), in input-image pixels.

    Args:
        index: (..., K) int64 flat positions.
        cell_anchors: (A, 4) float, the level's anchors centred on 0 (x0, y0, x1, y1).
        grid_width: the level's width in positions (an int, or a traced size).
        stride: (stride_y, stride_x) in pixels, integers (torchvision: image // grid).

    Returns:
        (..., K, 4) float (x0, y0, x1, y1), cell_anchors' dtype.
    """
    per_cell = cell_anchors.shape[0]
    position, which = index // per_cell, index % per_cell
    sx = (position % grid_width) * stride[1]
    sy = (position // grid_width) * stride[0]
    # integer shifts plus float anchors: the sum torchvision's grid makes, to the bit
    return torch.stack((sx, sy, sx, sy), dim=-1) + cell_anchors[which]


def rpn_proposals(rpn: RegionProposalNetwork, images: ImageList, features: dict[str, torch.Tensor]
                  ) -> list[torch.Tensor]:
    """The RPN's test-time proposals, as torchvision's ``RegionProposalNetwork`` gives
    them at inference, with anchors made and decoded only where each level's top
    ``pre_nms_top_n`` objectness is.

    Args:
        images: the batch (N, C, H, W) as the model's transform padded it, and each image's
            size before padding.
        features: FPN maps, level order, each (N, F, H_l, W_l).

    Returns:
        per image, (P, 4) float boxes (x0, y0, x1, y1) in the resized image's pixels,
        P <= ``post_nms_top_n``, by decreasing objectness.
    """
    maps = list(features.values())
    objectness, deltas = rpn.head(maps)
    generator = rpn.anchor_generator
    generator.set_cell_anchors(maps[0].dtype, maps[0].device)
    n = images.tensors.shape[0]
    image_h, image_w = images.tensors.shape[-2:]
    scores, boxes, levels = [], [], []
    for level, (obj, delta, cells) in enumerate(zip(objectness, deltas, generator.cell_anchors, strict=True)):
        per_cell, grid_h, grid_w = obj.shape[1], obj.shape[2], obj.shape[3]
        flat = permute_and_flatten(obj, n, per_cell, 1, grid_h, grid_w).reshape(n, -1).detach()
        top, index = flat.topk(det_utils._topk_min(flat, rpn.pre_nms_top_n(), 1), dim=1)  # (N, K)
        codes = permute_and_flatten(delta, n, per_cell, 4, grid_h, grid_w).detach()
        codes = torch.gather(codes, 1, index.unsqueeze(-1).expand(-1, -1, 4))
        anchors = level_anchors(index, cells, grid_w, (image_h // grid_h, image_w // grid_w))
        boxes.append(rpn.box_coder.decode_single(codes.reshape(-1, 4), anchors.reshape(-1, 4)).reshape(n, -1, 4))
        scores.append(top)
        levels.append(torch.full_like(index, level))
    proposals = []
    for box, score, level_of, size in zip(torch.cat(boxes, 1), torch.sigmoid(torch.cat(scores, 1)),
                                          torch.cat(levels, 1), images.image_sizes, strict=True):
        box = box_ops.clip_boxes_to_image(box, size)
        keep = box_ops.remove_small_boxes(box, rpn.min_size)
        box, score, level_of = box[keep], score[keep], level_of[keep]
        keep = torch.where(score >= rpn.score_thresh)[0]
        box, score, level_of = box[keep], score[keep], level_of[keep]
        keep = box_ops.batched_nms(box, score, level_of, rpn.nms_thresh)[: rpn.post_nms_top_n()]
        proposals.append(box[keep])
    return proposals


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
