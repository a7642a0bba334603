"""What the scripts in benchmarks/ share: a result record that `msseg bench` collects.

A benchmark prints its figures for people and, with ``--json PATH``, writes
``{"name", "ratios": {...}, "figures": {...}}``. Ratios are measured within one run, so
they compare like with like on whatever machine runs them; absolute times are figures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the result as JSON")


def emit(name: str, ratios: dict[str, float], figures: dict[str, Any], json_path: str | None) -> None:
    """Print the ratios, and write the record when ``json_path`` is given."""
    for key, value in ratios.items():
        print(f"RATIO {key}: {value:.3f}")
    if json_path:
        Path(json_path).write_text(json.dumps({"name": name, "ratios": ratios, "figures": figures}, indent=1) + "\n")


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_for_eval(name: str) -> Any:
    """Shipped model ``name`` as ``msseg eval`` measures it: Mask R-CNN keeps every
    detection down to 0.05 inside the network (its shipped ``score_threshold`` would cut
    the precision-recall curve short, and mask AP with it); the others as shipped."""
    from msseg_ros.core.segmentation.loading import load_segmenter

    return load_segmenter(name, overrides={"score_threshold": 0.05} if "maskrcnn" in name else None)

