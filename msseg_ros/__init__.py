"""msseg_ros: from multi-sensor frames to robot picks.

Layers:
    msseg_ros.core   plain Python, numpy and torch; never imports ROS.
    msseg_ros.ros    thin rclpy adapters: nodes, message codecs, parameters, QoS.
    msseg_ros.cli    the ``msseg`` command.
    msseg_ros.graph  the node graph of each cell, shared by the launch files and ``msseg run``.
"""

__version__ = "0.1.0"
