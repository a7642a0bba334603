"""The plots of ``msseg run --report DIR``: KPIs over time, the contingency heatmap, the
latency histogram (frame stamp to candidates), beside report.json and an overlay snapshot."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def kpis_over_time(history: list[dict[str, Any]], path: Path) -> bool:
    if not history:
        return False
    plt = _plt()
    t = [h["t"] for h in history]
    keys = [k for k in ("recovery", "purity", "success_rate", "centred_rate", "unoccluded_rate")
            if any(h.get(k) is not None for h in history)]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for k in keys:
        a1.plot(t, [h.get(k) if h.get(k) is not None else np.nan for h in history], label=k)
    a1.set_ylim(0, 1.05)
    a1.set_ylabel("ratio")
    a1.legend(loc="lower right")
    a1.grid(alpha=0.3)
    by_robot = sorted({r for h in history for r in h.get("picks_per_min_by_robot", {})})
    for r in by_robot:
        a2.plot(t, [h.get("picks_per_min_by_robot", {}).get(r, np.nan) for h in history], label=f"robot {r}")
    if "picks_per_min" in history[-1]:
        a2.plot(t, [h.get("picks_per_min", np.nan) for h in history], label="picks/min")
    a2.set_ylabel("picks / min")
    a2.set_xlabel("time since start (s)")
    if by_robot or "picks_per_min" in history[-1]:
        a2.legend(loc="lower right", ncol=4)
    a2.grid(alpha=0.3)
    fig.suptitle(f"{history[-1].get('cell', '')}: KPIs over time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def contingency_heatmap(contingency: dict[str, dict[str, int]], path: Path) -> bool:
    if not contingency:
        return False
    plt = _plt()
    true = sorted(contingency)
    pred = sorted({p for row in contingency.values() for p in row} | set(true))
    m = np.array([[contingency.get(t, {}).get(p, 0) for p in pred] for t in true], dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(pred), 1 + 0.6 * len(true)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(true)):
        for j in range(len(pred)):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(pred)), pred, rotation=45, ha="right")
    ax.set_yticks(range(len(true)), true)
    ax.set_xlabel("detected as")
    ax.set_ylabel("true class")
    ax.set_title("contingency of detections (counts; colour: row share)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def latency_histogram(latencies_s: list[float], path: Path) -> bool:
    if not latencies_s:
        return False
    plt = _plt()
    ms = np.asarray(latencies_s) * 1e3
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(ms, bins=min(40, max(5, len(ms) // 3)), color="tab:blue", alpha=0.8)
    p50, p90 = np.percentile(ms, [50, 90])
    for v, name, h in ((p50, "p50", 0.92), (p90, "p90", 0.8)):
        ax.axvline(v, color="k", ls="--", lw=1)
        ax.text(v, ax.get_ylim()[1] * h, f" {name} {v:.0f} ms", fontsize=8)
    ax.set_xlabel("frame stamp (row 0 / exposure) -> grasps/candidates received (ms); "
                  "line frames include their acquisition", fontsize=8)
    ax.set_ylabel("frames")
    ax.set_title(f"pipeline latency, {len(ms)} frames")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
