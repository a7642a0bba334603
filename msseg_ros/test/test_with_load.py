"""tools/with_load.py (`make test-under-load`): the load runs while the command runs, and
stops with it; the command's exit code is passed on."""
import subprocess
import sys

from conftest import REPO


def test_load_runs_during_the_command_and_stops_after():
    probe = "import os, sys\n" + (
        "ppid = os.getppid()\n"
        "kids = [p for p in os.listdir('/proc') if p.isdigit() and "
        "open(f'/proc/{p}/stat').read().split(')')[1].split()[1] == str(ppid)]\n"
        "sys.exit(10 + len(kids))\n")
    out = subprocess.run([sys.executable, str(REPO / "tools" / "with_load.py"), "--cores", "2", "--",
                          sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    # the runner's children while the probe ran: 2 busy processes + the probe itself
    assert out.returncode == 13, out.stderr
    assert "2 busy process(es) running" in out.stderr and "stopped the load" in out.stderr


def test_no_command_is_a_usage_error():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "with_load.py")], capture_output=True, text=True)
    assert out.returncode == 2 and "no command given" in out.stderr
