"""docs/contract.md names every topic the nodes publish or subscribe, and every field of
the contract's tables."""
import re

from msseg_ros.core import tables

from conftest import ROOT

CONTRACT = (ROOT / "docs" / "contract.md").read_text()


def node_topics() -> set[str]:
    topics = set()
    for path in (ROOT / "msseg_ros" / "ros" / "nodes").glob("*.py"):
        text = path.read_text()
        topics |= set(re.findall(r'create_(?:publisher|subscription)\(\s*\w+,\s*"([^"]+)"', text))
    return topics


def test_every_node_topic_is_in_the_contract():
    topics = node_topics()
    assert {"grasps/candidates", "robot/pick_results", "sim/score", "conveyor/joint_states"} <= topics
    missing = sorted(t for t in topics if f"`{t}`" not in CONTRACT)
    assert missing == [], f"topics missing from docs/contract.md: {missing}"


def test_every_table_field_is_in_the_contract():
    for name, dtype in tables.TABLES.items():
        for field in dtype.names:
            assert f"`{field}`" in CONTRACT, f"{name}.{field} missing from docs/contract.md"
