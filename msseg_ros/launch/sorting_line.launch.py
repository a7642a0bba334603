"""Sorting line (seed 000): line scanner -> segmenter -> grasp selector -> delta robots.

    ros2 launch msseg_ros sorting_line.launch.py mode:=sim segmenter:=maskrcnn robot:=delta
    ros2 launch msseg_ros sorting_line.launch.py mode:=replay bag:=/path/to/bag

The nodes come from msseg_ros.graph, the same description `msseg run` uses.
"""
from msseg_ros.ros.launch_support import cell_launch_description


def generate_launch_description():
    return cell_launch_description("sorting_line")
