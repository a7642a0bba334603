"""Bin picking (seed 001): top camera -> segmenter (Mask R-CNN; seed 001's bicameral network with
segmenter:=bicameral) -> grasp selector -> FANUC arm.

    ros2 launch msseg_ros bin_picking.launch.py mode:=sim segmenter:=maskrcnn robot:=fanuc
    ros2 launch msseg_ros bin_picking.launch.py mode:=replay bag:=/path/to/bag

The nodes come from msseg_ros.graph, the same description `msseg run` uses.
"""
from msseg_ros.ros.launch_support import cell_launch_description


def generate_launch_description():
    return cell_launch_description("bin_picking")
