"""mypy over the package (mypy.ini): strict on msseg_ros/core, default elsewhere."""
import subprocess
import sys

from conftest import REPO


def test_mypy_is_clean():
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "mypy.ini")],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    assert "Success: no issues found" in out.stdout


def test_core_is_checked_strictly():
    """The strict section covers all of core (a typo in its name would silently relax it)."""
    text = (REPO / "mypy.ini").read_text()
    assert "[mypy-msseg_ros.core.*]" in text and "disallow_untyped_defs = True" in text
    assert "ignore_errors" not in text
