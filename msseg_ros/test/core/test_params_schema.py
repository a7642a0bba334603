import math

import pytest

from msseg_ros.core.params import Param, ParamError, ParamType, ParamView, Schema, flatten

T = ParamType


def test_strict_types_like_ros():
    p = Param("speed", T.FLOAT, 0.5, "m/s", min=0.0, max=5.0)
    assert p.validate(1.5) == 1.5
    with pytest.raises(ParamError, match=r"'speed': value 1 refused: expected float, got int"):
        p.validate(1)  # rclpy refuses an integer for a double parameter too
    assert p.validate(1, strict=False) == 1.0
    with pytest.raises(ParamError, match="expected float, got bool"):
        p.validate(True, strict=False)


def test_bounds_choices_and_finite():
    p = Param("speed", T.FLOAT, 0.5, "m/s", min=0.0, max=5.0)
    with pytest.raises(ParamError, match=r"value 5.5 refused: must be <= 5.0"):
        p.validate(5.5)
    with pytest.raises(ParamError, match="must be finite"):
        p.validate(math.nan)
    c = Param("model.type", T.STR, "classic", "", choices=("classic", "maskrcnn"))
    with pytest.raises(ParamError, match="must be one of classic, maskrcnn"):
        c.validate("yolo")


def test_arrays_length_and_elements():
    p = Param("plane.normal", T.FLOAT_ARRAY, [0.0, 0.0, 1.0], "", length=3, min=-1.0, max=1.0)
    assert p.validate((0.0, 1.0, 0.0)) == [0.0, 1.0, 0.0]
    with pytest.raises(ParamError, match="expected 3 elements, got 2"):
        p.validate([0.0, 1.0])
    with pytest.raises(ParamError, match="expected float, got str"):
        p.validate([0.0, "a", 1.0])
    with pytest.raises(ParamError, match="expected float\\[\\], got float"):
        p.validate(1.0)


def test_custom_check_and_bad_default():
    odd = Param("patch", T.INT, 9, "px", min=1, max=31, check=lambda v: None if v % 2 else "must be odd")
    with pytest.raises(ParamError, match="value 8 refused: must be odd"):
        odd.validate(8)
    with pytest.raises(ParamError, match="'n': value -1 refused: must be >= 0"):
        Param("n", T.INT, -1, "", min=0)


def test_schema_validate_cross_checks_and_unknown():
    s = Schema(
        "line_scanner",
        [Param("frame_lines", T.INT, 100, "", min=1), Param("overlap_lines", T.INT, 10, "", min=0)],
        checks=[lambda v: None if v["overlap_lines"] < v["frame_lines"] else
                "overlap_lines must be < frame_lines"],
    )
    assert s.validate({"frame_lines": 50})["overlap_lines"] == 10
    with pytest.raises(ParamError, match="node 'line_scanner': overlap_lines must be < frame_lines"):
        s.validate({"overlap_lines": 100})
    with pytest.raises(ParamError, match="node 'line_scanner' has no parameter 'fps'"):
        s.validate({"fps": 1.0})
    with pytest.raises(ValueError, match="declared twice"):
        Schema("x", [Param("a", T.INT, 1, ""), Param("a", T.INT, 1, "")])


def test_view_is_typed_and_read_only():
    v = ParamView.from_flat({"model.type": "classic", "model.score_threshold": 0.5, "seed": 3})
    assert v.model.type == "classic" and v.model.score_threshold == 0.5 and v.seed == 3
    with pytest.raises(AttributeError, match="no parameter or group 'colour'"):
        _ = v.colour
    with pytest.raises(AttributeError, match="read-only"):
        v.seed = 4


def test_flatten_like_ros_yaml():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}
