import numpy as np
import pytest

from msseg_ros.core.errors import ConfigError
from msseg_ros.core.sensing.lines import LineAssembler, calibrate


def _run(asm, samples, width=3):
    frames = []
    for t, p in samples:
        req = asm.feed(t, p)
        for i, s, gap in zip(req.indices, req.stamps, req.gaps, strict=True):
            frames += asm.add(int(i), float(s), None if gap else np.full((width, 1), float(i)))
    return frames


def test_lines_every_pitch_with_overlap_and_stamps():
    asm = LineAssembler(line_pitch=0.01, frame_lines=10, overlap_lines=2)
    samples = [(k * 0.005, k * 0.005) for k in range(400)]  # 1 m/s, 200 Hz
    frames = _run(asm, samples)
    assert [f.first_line for f in frames[:3]] == [8, 16, 24]  # stride 8, first complete frame
    f = frames[0]
    assert f.image.shape == (10, 3, 1) and f.image[:, 0, 0].tolist() == list(range(8, 18))
    assert frames[1].image[0, 0, 0] == frames[0].image[8, 0, 0]  # 2 shared rows
    assert f.stamp == pytest.approx(0.08)  # row 0 acquired when travel reached 0.08 m
    assert asm.counters["gap_lines"] == 0


def test_stopped_and_reverse_give_no_duplicates():
    asm = LineAssembler(line_pitch=0.01, frame_lines=5)
    asm.feed(0.0, 0.0)
    assert len(asm.feed(0.1, 0.05).indices) == 5
    assert len(asm.feed(0.2, 0.05).indices) == 0 and asm.counters["stopped_msgs"] == 1
    assert len(asm.feed(0.3, 0.02).indices) == 0 and asm.counters["reverse_msgs"] == 1
    req = asm.feed(0.4, 0.07)
    assert req.indices.tolist() == [6, 7]  # resumes past the furthest position, no repeats


def test_jump_beyond_limit_marks_gaps():
    asm = LineAssembler(line_pitch=0.01, frame_lines=10, max_gap_lines=5)
    asm.feed(0.0, 0.0)
    req = asm.feed(0.1, 0.03)
    assert not req.gaps.any()
    req = asm.feed(0.2, 0.5)  # 47 lines at once: a dropped stretch
    assert req.gaps.sum() == 46 and not req.gaps[-1]
    assert asm.counters["gap_lines"] == 46
    samples = [(k * 0.01, k * 0.01) for k in range(13)] + [(0.2, 0.3)] + [(0.2 + k * 0.01, 0.3 + k * 0.01) for k in range(1, 20)]
    frames = _run(LineAssembler(line_pitch=0.01, frame_lines=10, max_gap_lines=5), samples)
    first = frames[0]  # lines 10..19: 10-12 acquired, 13-19 lost in the jump
    assert first.first_line == 10 and first.gap_lines == 7
    assert np.isnan(first.image[3:]).all() and not np.isnan(first.image[:3]).any()
    assert all(np.isnan(f.image).all(axis=(1, 2)).sum() == f.gap_lines for f in frames)
    assert frames[-1].gap_lines == 0


def test_calibration_and_bad_config():
    raw = np.array([[[110.0, 20.0]]])
    out = calibrate(raw, dark=np.array([10.0, 0.0]), white=np.array([210.0, 40.0]), scale=np.array([65535.0, 1.0]))
    np.testing.assert_allclose(out[0, 0], [32767.5, 0.5])
    with pytest.raises(ConfigError, match="must differ"):
        calibrate(raw, np.zeros(2), np.zeros(2), np.ones(2))
    with pytest.raises(ConfigError, match="overlap_lines < frame_lines"):
        LineAssembler(0.01, 5, 5)
