"""Camera frame sources, chosen by name from a registry.

Every source gives RGB uint8 frames ``(H, W, 3)`` and, when it knows them, intrinsics:

* ``images``: a folder or a glob of image files, sorted; ``loop`` restarts at the end.
* ``video``: a video file (OpenCV); ``loop`` rewinds.
* ``device``: an OpenCV capture index ("0") or URL (RTSP/HTTP).
* ``sim``: the bin-pile world (scene ``scene`` of seed ``seed``); ``apply_pick(u, v)``
  replays a finished pick on its own copy of the pile (the physics is deterministic, so
  it matches the simulator's pile without sharing state). It is an RGB-D camera: its
  ``depth()`` is the registered depth of the frame last read, with sensor noise.
"""
from __future__ import annotations

import glob as globlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from msseg_ros.core.errors import MssegError
from msseg_ros.core.geometry.camera import CameraModel
from msseg_ros.core.registry import Registry


class SourceError(MssegError, RuntimeError):
    """A source cannot be opened or read; the message names it."""


class FrameSource:
    """Interface of all sources."""

    def read(self) -> np.ndarray | None:
        """The next RGB frame, or None at the end (a non-looping file source)."""
        raise NotImplementedError

    def camera_model(self) -> CameraModel | None:
        return None

    def depth(self) -> np.ndarray | None:
        """The depth image registered to the frame last read ((H, W) float32, m along the
        optical axis, NaN = no value; REP 118), or None for a source without depth."""
        return None

    def close(self) -> None:
        pass


FRAME_SOURCES: Registry[Callable[..., FrameSource]] = Registry("frame source", required=("read",))

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


@FRAME_SOURCES.register("images")
class ImagesSource(FrameSource):
    def __init__(self, uri: str, loop: bool = True, **_: object) -> None:
        p = Path(uri)
        files = sorted(str(f) for f in p.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES) if p.is_dir() \
            else sorted(globlib.glob(uri))
        if not files:
            raise SourceError(f"images source {uri!r}: no image files found")
        self.files, self.loop, self.index = files, loop, 0

    def read(self) -> np.ndarray | None:
        if self.index >= len(self.files):
            if not self.loop:
                return None
            self.index = 0
        path = self.files[self.index]
        self.index += 1
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"images source: {path!r} cannot be decoded")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class _CaptureSource(FrameSource):
    def __init__(self, target: str | int, what: str, loop: bool) -> None:
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise SourceError(f"{what} {target!r} cannot be opened")
        self.what, self.target, self.loop = what, target, loop

    def read(self) -> np.ndarray | None:
        ok, img = self.cap.read()
        if not ok and self.loop and self.what == "video":
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self.cap.read()
        if not ok:
            if self.what == "device":
                raise SourceError(f"device {self.target!r} gave no frame")
            return None
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()


@FRAME_SOURCES.register("video")
class VideoSource(_CaptureSource):
    def __init__(self, uri: str, loop: bool = True, **_: object) -> None:
        if not Path(uri).is_file():
            raise SourceError(f"video {uri!r} does not exist")
        super().__init__(uri, "video", loop)


@FRAME_SOURCES.register("device")
class DeviceSource(_CaptureSource):
    def __init__(self, uri: str, **_: object) -> None:
        target = int(uri) if uri.strip().isdigit() else uri
        super().__init__(target, "device", False)


@FRAME_SOURCES.register("sim")
class SimSource(FrameSource):
    def __init__(self, uri: str = "", seed: int = 0, scene: int = 0, **_: object) -> None:
        from msseg_ros.core.sim.bin_pile import BinPileConfig, BinPileWorld

        self.config = BinPileConfig(seed=seed)
        self.world = BinPileWorld(self.config)
        self.scene_index = scene
        self.pile = self.world.scene(scene)
        self._depth: np.ndarray | None = None
        self._depth_rng = np.random.default_rng([seed, scene, 1])  # not the pile's: RGB stays as it was

    def read(self) -> np.ndarray:
        if not self.pile.instances:  # emptied: the next bin arrives
            self.scene_index += 1
            self.pile = self.world.scene(self.scene_index)
        view = self.pile.render()
        noise = self._depth_rng.normal(0.0, self.config.depth_noise, view["depth"].shape)
        self._depth = (view["depth"] + noise).astype(np.float32)
        return view["rgb"]

    def depth(self) -> np.ndarray | None:
        return self._depth

    def apply_pick(self, u: float, v: float) -> bool:
        return self.pile.pick(u, v).success

    def apply_world_pick(self, x: float, y: float, z: float) -> bool:
        """A pick done at world (x, y, z), m (robot/pick_results): the pile loses what
        the suction cup lifted there, as cell_sim scored it."""
        if not self.pile.instances:
            self.scene_index += 1
            self.pile = self.world.scene(self.scene_index)
        return self.apply_pick(*self.config.world_to_pixel(x, y, z))

    def camera_model(self) -> CameraModel:
        fx, fy, cx, cy = self.config.intrinsics
        return CameraModel.from_values(fx, fy, cx, cy, self.config.width, self.config.height)


def open_source(name: str, uri: str = "", **options: Any) -> FrameSource:
    """Open source ``name`` (see the registry) on ``uri``."""
    return FRAME_SOURCES.get(name)(uri, **options)
