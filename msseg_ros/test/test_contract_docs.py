"""docs/contract.md names every topic the nodes publish or subscribe, and every message and
field of msseg_interfaces."""
import re

from conftest import REPO, ROOT

CONTRACT = (REPO / "docs" / "contract.md").read_text()


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


def test_every_message_field_is_in_the_contract():
    folder = REPO / "msseg_interfaces" / "msg"
    fields = set()
    for path in folder.glob("*.msg"):
        assert f"`{path.stem}`" in CONTRACT, f"message {path.stem} missing from docs/contract.md"
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and "=" not in line:  # a field, not a constant
                fields.add(line.split()[1])
    assert {"instances", "candidates", "results", "pick_id", "touches_last_row"} <= fields
    missing = sorted(f for f in fields if f"`{f}`" not in CONTRACT)
    assert missing == [], f"message fields missing from docs/contract.md: {missing}"
