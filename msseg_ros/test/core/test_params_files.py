"""Parameter files read as the nodes would get them, without ROS."""
import pytest

from msseg_ros.core.params import ParamError
from msseg_ros.core.params.files import node_parameters
from msseg_ros.core.sim.sorting_line import SortingLineConfig

from conftest import ROOT

LINE = ROOT / "config" / "sorting_line.yaml"


def test_a_node_gets_the_shared_section_its_own_and_defaults():
    scan = node_parameters(LINE, "line_scanner")
    assert scan.world.design_speed == 0.5 and scan.world.belt_width == 0.548  # from /**
    assert scan.frame_lines == 250 and scan.overlap_lines == 80  # its own section
    assert scan.frame_id == "line_scanner"
    sel = node_parameters(LINE, "grasp_selector")
    assert sel.line.edge_margin_px == 3 and sel.min_score == 0.3
    assert "zamak=2" in sel.classes_to_bins  # /** classes reach the selector
    # /** keys the node does not declare (robots.*, speeds.*) are not its business
    with pytest.raises(AttributeError):
        _ = sel.speeds


def test_the_world_built_from_parameters_is_the_scanners_world():
    scan = node_parameters(LINE, "line_scanner")
    cfg = SortingLineConfig.from_world(scan.world, scan.line_pitch)
    assert (cfg.seed, cfg.belt_width, cfg.belt_speed, cfg.feed_rate, cfg.touch_rate) == (0, 0.548, 0.5, 4.0, 0.2)
    assert cfg.columns == 274 and cfg.line_pitch == 0.002
    assert SortingLineConfig.from_world(scan.world).line_pitch == SortingLineConfig().line_pitch


def test_bad_files_are_refused_by_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/line_scanner:\n  ros__parameters:\n    frame_lines: -5\n")
    with pytest.raises(ParamError, match="frame_lines"):
        node_parameters(bad, "line_scanner")
    bad.write_text("/**/line_scanner:\n  ros__parameters:\n    frame_linez: 100\n")
    with pytest.raises(ParamError, match="frame_linez"):
        node_parameters(bad, "line_scanner")
    bad.write_text("[1, 2")
    with pytest.raises(ParamError, match="cannot read parameter file"):
        node_parameters(bad, "line_scanner")
    with pytest.raises(ParamError, match="cannot read parameter file"):
        node_parameters(tmp_path / "missing.yaml", "line_scanner")
    # a missing node section: every parameter at its declared default
    bad.write_text("/**/segmenter:\n  ros__parameters:\n    input_depth: 2\n")
    assert node_parameters(bad, "line_scanner").frame_lines > 0


def test_files_layer_as_repeated_params_files_later_ones_win():
    fine = [LINE, ROOT / "config" / "sorting_line_0p5mm.yaml"]
    scan = node_parameters(fine, "line_scanner")
    assert (scan.line_pitch, scan.frame_lines, scan.overlap_lines) == (0.0005, 1000, 320)
    assert scan.world.pixel_size == 0.0005 and scan.world.belt_width == 0.548  # merged inside world.*
    cfg = SortingLineConfig.from_world(scan.world, scan.line_pitch)
    assert cfg.columns == 1096  # the seed's grid
    sel = node_parameters(fine, "grasp_selector")
    assert (sel.line.pixel_size, sel.line.line_pitch, sel.line.edge_margin_px) == (0.0005, 0.0005, 12)
    assert sel.line.belt_y_offset == -0.274 and sel.min_score == 0.3  # kept from the first file
    seg = node_parameters(fine, "segmenter")
    assert seg.model.type == "maskrcnn" and seg.binning == 4
    # the same two files the other way round: the cell file wins again
    assert node_parameters(fine[::-1], "line_scanner").frame_lines == 250
