"""README's layout section and docs/architecture.md match the tree."""
import re

from conftest import REPO, ROOT


def _layout_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Layout"):]
    return section[section.index("```") + 3:section.index("```", section.index("```") + 3)]


def test_every_path_in_the_layout_exists():
    """Each line's first column names folders (``x/``) or files (``x.py``) inside the
    folder of the nearest less-indented line above it."""
    missing = []
    folders = {-1: REPO}
    for line in _layout_block().splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        column = re.split(r"\s{2,}", line.strip())[0]
        names = [n for n in re.findall(r"[\w.]+/?", column) if n.endswith("/") or "." in n]
        if not names:
            continue  # a continuation line
        base = folders[max(i for i in folders if i < indent)]
        for name in names:
            path = base / name
            if not path.exists():
                missing.append(str(path.relative_to(REPO)))
            if name.endswith("/"):
                folders = {i: f for i, f in folders.items() if i < indent}
                folders[indent] = path
    assert missing == []


def test_every_core_package_is_listed():
    block = _layout_block()
    packages = sorted(p.name for p in (ROOT / "msseg_ros" / "core").iterdir()
                      if p.is_dir() and (p / "__init__.py").exists())
    assert [p for p in packages if f"{p}/" not in block] == []


def test_architecture_names_real_modules():
    text = (REPO / "docs" / "architecture.md").read_text()
    for rel in set(re.findall(r"`((?:core|ros|cli)/[\w/]+\.py)`", text)):
        assert (ROOT / "msseg_ros" / rel).is_file(), rel
    for rel in set(re.findall(r"(test/[\w/]+\.py)", text)):
        assert (ROOT / rel).is_file(), rel


def test_robustness_catalogue_names_real_tests():
    """docs/robustness.md: each `test/…py::name` it cites exists, and it lists 30+ kinds."""
    text = (REPO / "docs" / "robustness.md").read_text()
    cited = re.findall(r"(test/[\w/]+\.py)(?:::(\w+))?", text)
    assert cited
    for path, name in cited:
        assert (ROOT / path).is_file(), path
        if name:
            assert f"def {name}(" in (ROOT / path).read_text(), f"{path}::{name}"
    for path, extra in re.findall(r"(test/[\w/]+\.py)::\w+, ::(\w+)", text):
        assert f"def {extra}(" in (ROOT / path).read_text(), f"{path}::{extra}"
    rows = re.findall(r"^\| (\d+) \|", text, re.M)
    assert len(rows) >= 30 and rows == [str(i) for i in range(1, len(rows) + 1)]


def test_every_relative_link_in_the_docs_resolves():
    """Markdown links to files of the repository (README, docs/, model cards) lead somewhere."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((ROOT / "config").rglob("*.md"))]
    broken, checked = [], 0
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"^[a-z]+:|^#", target):
                continue  # a web address or an anchor on the same page
            checked += 1
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert checked >= 10 and broken == []
