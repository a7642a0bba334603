"""config/*.yaml and the node schemas must agree; so must docs/parameters.md."""
from pathlib import Path

import pytest
import yaml

from msseg_ros.core.params import ParamError, flatten
from msseg_ros.core.params.docs import markdown
from msseg_ros.core.params.nodes import NODE_SCHEMAS
from msseg_ros.graph import CELLS

from conftest import REPO, ROOT

CONFIGS = sorted((ROOT / "config").glob("*.yaml"))


def check_param_file(path: Path) -> list[str]:
    """Every problem of a ROS parameter file against the schemas, one line each."""
    doc = yaml.safe_load(path.read_text()) or {}
    problems: list[str] = []
    for key, section in doc.items():
        if not isinstance(section, dict) or set(section) != {"ros__parameters"}:
            problems.append(f"{key}: expected a single 'ros__parameters' mapping")
            continue
        values = flatten(section["ros__parameters"] or {})
        if key == "/**":
            targets = list(NODE_SCHEMAS)
        else:
            node = key.removeprefix("/**/").lstrip("/")
            if node not in NODE_SCHEMAS:
                problems.append(f"{key}: no node {node!r}; nodes: {', '.join(sorted(NODE_SCHEMAS))}")
                continue
            targets = [node]
        for name, value in values.items():
            declared = [NODE_SCHEMAS[t] for t in targets if name in NODE_SCHEMAS[t]]
            if not declared:
                problems.append(f"{key}: {name!r} is declared by no node schema")
            for schema in declared:
                try:
                    schema[name].validate(value, strict=True)
                except ParamError as exc:
                    problems.append(f"{key}: {exc}")
        if key != "/**" and not problems:
            try:
                NODE_SCHEMAS[targets[0]].validate(values, strict=True)
            except ParamError as exc:
                problems.append(f"{key}: {exc}")
    return problems


def test_every_cell_has_a_config_and_overlays_name_their_cell():
    cells = [p.stem for p in CONFIGS if p.stem in CELLS]
    assert sorted(cells) == sorted(CELLS)
    overlays = [p.stem for p in CONFIGS if p.stem not in CELLS]
    assert all(any(o.startswith(f"{c}_") for c in CELLS) for o in overlays), overlays


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_matches_schemas(path):
    assert check_param_file(path) == []


def test_drift_is_caught(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "/**/cell_sim:\n  ros__parameters:\n    belt:\n      speed: 1\n      sped: 0.5\n"
        "/**/nobody:\n  ros__parameters: {a: 1}\n"
    )
    problems = check_param_file(bad)
    assert any("'belt.speed': value 1 refused: expected float, got int" in p for p in problems)
    assert any("'belt.sped' is declared by no node schema" in p for p in problems)
    assert any("no node 'nobody'" in p for p in problems)


def test_docs_parameters_md_is_generated_from_schemas():
    text = (REPO / "docs" / "parameters.md").read_text()
    assert text.strip() == markdown().strip(), "run `make docs` to regenerate docs/parameters.md"


def test_cross_node_values_agree():
    """Values two nodes must share (there is no cross-node schema check at run time)."""
    doc = yaml.safe_load((ROOT / "config" / "sorting_line.yaml").read_text())
    shared = flatten(doc["/**"]["ros__parameters"])
    scanner = flatten(doc["/**/line_scanner"]["ros__parameters"])
    grasp = flatten(doc["/**/grasp_selector"]["ros__parameters"])
    assert grasp["line.line_pitch"] == scanner["line_pitch"]
    assert grasp["line.pixel_size"] == shared["world.pixel_size"]
    assert grasp["line.belt_y_offset"] == -shared["world.belt_width"] / 2
    assert grasp["line.scanner_x"] == shared["world.scanner_x"]
    # every robot's reach window lies downstream of the scan line, in the order of the robots
    starts = shared["robots.window_start"]
    assert min(starts) > shared["world.scanner_x"] and starts == sorted(starts)
    assert scanner["overlap_lines"] * scanner["line_pitch"] >= 0.15  # the longest object
