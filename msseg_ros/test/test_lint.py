import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    out = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
