"""Training augmentations (core/learning/augment.py): what copy-paste puts where, what scale
and photometric jitter do to frames and masks."""
import cv2
import numpy as np
import pytest

from msseg_ros.core.learning.augment import augment_instances, copy_paste, photometric, scale_jitter
from msseg_ros.core.learning.options import ConfigError, TrainingContext, TrainOptions


def _sample(h: int, w: int, box: tuple[int, int, int, int], value: float, label: int):
    frame = np.zeros((h, w, 3), np.float32)
    y0, y1, x0, x1 = box
    frame[y0:y1, x0:x1] = value
    m = np.zeros((1, h, w), bool)
    m[0, y0:y1, x0:x1] = True
    return frame, {"masks": m, "labels": np.array([label], np.int64)}


def test_pasted_object_is_copied_in_front_and_taken_from_the_frames_own_masks():
    frame, tgt = _sample(40, 40, (0, 40, 0, 20), 1.0, 1)  # the frame's own object: the left half
    source = _sample(30, 30, (5, 15, 5, 15), 7.0, 2)      # a 10 x 10 object of value 7
    rng = np.random.default_rng(0)
    for _ in range(20):
        out, masks, labels = copy_paste(frame, tgt["masks"], tgt["labels"], [source], rng, n_max=1, scale=(1.0, 1.0))
        pasted = masks[-1]
        assert labels[-1] == 2 and pasted.sum() == 100
        assert np.all(out[pasted] == 7.0)                   # the pixels, unscaled
        assert np.all(out[~pasted] == frame[~pasted])       # nothing else changed
        if len(masks) == 2:                                 # the own object lost what is now in front of it
            assert labels[0] == 1 and not np.any(masks[0] & pasted)
            assert masks[0].sum() == 800 - np.sum(pasted[:, :20])
    assert frame.max() == 1.0                               # the input frame is not written


def test_mostly_hidden_instance_is_dropped_and_scale_applies():
    frame, tgt = _sample(20, 20, (8, 12, 8, 12), 1.0, 1)   # 4 x 4 in the middle
    source = _sample(20, 20, (1, 19, 1, 19), 5.0, 3)       # 18 x 18: any place covers the middle
    out, masks, labels = copy_paste(frame, tgt["masks"], tgt["labels"], [source], np.random.default_rng(1),
                                    n_max=1, scale=(1.0, 1.0))
    assert labels.tolist() == [3] and masks.shape == (1, 20, 20)
    _, masks, _ = copy_paste(frame, tgt["masks"], tgt["labels"], [_sample(40, 40, (0, 20, 0, 20), 5.0, 3)],
                             np.random.default_rng(2), n_max=1, scale=(0.5, 0.5))
    assert masks[-1].sum() == 100                           # 20 x 20 at half scale


def test_copy_paste_through_the_training_options():
    opts = TrainOptions.from_mapping({"augment": {"copy_paste": 1.0, "hflip": 0.0, "vflip": 0.0}})
    frame, tgt = _sample(32, 32, (0, 8, 0, 8), 1.0, 1)
    pool = [_sample(32, 32, (10, 20, 10, 20), 9.0, 2)]
    ctx = TrainingContext(dataset=None, options=opts, rng=np.random.default_rng(3),  # type: ignore[arg-type]
                          fill=np.zeros(3, np.float32), pool=pool)
    out, masks, labels = augment_instances(frame, tgt, ctx)
    assert 2 in labels.tolist() and np.any(out == 9.0)
    assert len(masks) == len(labels) and masks.shape[1:] == (32, 32)
    with pytest.raises(ConfigError, match="copy_paste is a probability"):
        TrainOptions.from_mapping({"augment": {"copy_paste": 1.5}})


def test_an_empty_frame_gets_pasted_objects_and_a_pasted_object_hidden_by_a_later_one_goes():
    empty = np.zeros((0, 20, 20), bool), np.zeros(0, np.int64)
    frame = np.zeros((20, 20, 3), np.float32)
    out, masks, labels = copy_paste(frame, *empty, [_sample(20, 20, (0, 0, 0, 0), 0.0, 1)],
                                    np.random.default_rng(0), n_max=3)
    assert masks.shape == (0, 20, 20) and labels.shape == (0,)  # nothing to cut: nothing pasted
    big = _sample(20, 20, (1, 19, 1, 19), 5.0, 4)                  # 18 x 18: every paste covers the middle
    for seed in range(10):
        _, masks, labels = copy_paste(frame, *empty, [big], np.random.default_rng(seed), n_max=6, scale=(1.0, 1.0))
        assert len(labels) >= 1 and labels.tolist() == [4] * len(labels)
        assert np.all(masks.reshape(len(masks), -1).sum(1) >= 0.3 * 18 * 18)  # none mostly hidden


def test_scale_jitter_enlarges_or_shrinks_frame_and_masks_together():
    frame = np.zeros((40, 60, 11), np.float32)
    frame[10:20, 20:30] = 5.0                               # one 10 x 10 object, 11 channels
    masks = np.zeros((1, 40, 60), bool)
    masks[0, 10:20, 20:30] = True
    fill = np.full(11, -1.0, np.float32)
    out, m = scale_jitter(frame, masks, np.random.default_rng(0), fill, scale=(2.0, 2.0))
    assert out.shape == frame.shape and m.shape == masks.shape
    assert m[0].sum() == 400                                # 20 x 20, inside this draw's window
    inner = cv2.erode(m[0].astype(np.uint8), np.ones((3, 3), np.uint8),  # edges are interpolated
                      borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    assert inner.sum() >= 16 * 18 and np.all(out[inner] == 5.0) and not np.any(out == -1.0)  # no fill
    out, m = scale_jitter(frame, masks, np.random.default_rng(1), fill, scale=(0.5, 0.5))
    assert m[0].sum() == 25 and np.all(out[m[0]] > 2.0)     # 5 x 5, over the object
    assert np.sum(out[..., 0] == -1.0) == 40 * 60 - 20 * 30  # shrunk: the rest is fill
    empty = np.zeros((0, 40, 60), bool)
    assert scale_jitter(frame, empty, np.random.default_rng(2), fill)[1].shape == (0, 40, 60)


def test_photometric_jitter_keeps_structure_and_changes_values():
    rng = np.random.default_rng(0)
    frame = rng.uniform(0, 255, (16, 16, 3)).astype(np.float32)
    out = photometric(frame, np.random.default_rng(4))
    assert out.shape == frame.shape and out.dtype == np.float32 and not np.allclose(out, frame)
    for c in range(3):                                      # an affine map per channel: correlation 1
        assert np.corrcoef(frame[..., c].ravel(), out[..., c].ravel())[0, 1] > 0.9999
    same = photometric(frame, np.random.default_rng(4), contrast=(1, 1), brightness=(1, 1), cast=0.0)
    np.testing.assert_allclose(same, frame, rtol=1e-5)
    with pytest.raises(ConfigError, match="scale is a probability"):
        TrainOptions.from_mapping({"augment": {"scale": 2.0}})
