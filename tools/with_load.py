"""Run a command while background processes keep CPU cores busy: `make test-under-load`.

    python tools/with_load.py [--cores N] -- COMMAND ...

Starts N busy-looping processes (default 1: one of this machine's two cores), runs the
command, stops them whatever happens, and exits with the command's exit code. The suite
must pass like this: no assertion may depend on machine speed.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import time


def _spin(stop: mp.synchronize.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=1, help="busy processes (default 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    stop = mp.Event()
    workers = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(max(args.cores, 0))]
    for w in workers:
        w.start()
    print(f"with_load: {len(workers)} busy process(es) running", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        return subprocess.call(command)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.kill()
        print(f"with_load: stopped the load after {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
