"""Where the package's installed files are (config/, launch/, benchmarks/)."""
from __future__ import annotations

import os
from pathlib import Path


def share_dir() -> Path:
    """The package's share folder: the source tree (editable or colcon --symlink-install
    from source), the ament index (colcon), or ``<prefix>/share/msseg_ros`` (pip)."""
    source = Path(__file__).resolve().parents[2]
    if (source / "package.xml").is_file() and (source / "config").is_dir():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("msseg_ros"))
    except Exception:  # noqa: BLE001 - ament index absent or package not indexed
        pass
    import sys

    return Path(sys.prefix) / "share" / "msseg_ros"


def packaged(path: str | os.PathLike[str]) -> Path:
    """``path`` as given when it exists (relative to the working directory); otherwise the
    same relative path inside :func:`share_dir` when the package has it there, so
    ``config/training/sorting_line_maskrcnn.yaml`` names the shipped file from any folder;
    otherwise ``path`` unchanged (the caller reports it missing)."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    inside = share_dir() / p
    return inside if inside.exists() else p
