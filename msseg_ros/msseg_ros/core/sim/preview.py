"""PNG previews of simulated frames: false colour for the 11 channels, label overlays."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from msseg_ros.core.segmentation.overlay import false_colour
from msseg_ros.core.sim.materials import CHANNELS


def save_channel_sheet(image: np.ndarray, path: str | Path, labels: np.ndarray | None = None,
                       title: str = "") -> Path:
    """All 11 channels (each with its own colour scale), the false-colour RGB and,
    when given, the instance labels, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 12 + (labels is not None)
    cols = 5
    rows = int(np.ceil(panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows))
    axes = axes.ravel()
    axes[0].imshow(false_colour(image))
    axes[0].set_title("false colour (691/561/433 nm)")
    for k, name in enumerate(CHANNELS):
        ax = axes[k + 1]
        im = ax.imshow(image[..., k], cmap="viridis" if k == 0 else ("gray" if k < 3 else "magma"))
        ax.set_title(name)
        fig.colorbar(im, ax=ax, fraction=0.046)
    if labels is not None:
        axes[12].imshow(labels, cmap="tab20", interpolation="nearest")
        axes[12].set_title(f"instances ({labels.max()})")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[panels:]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
