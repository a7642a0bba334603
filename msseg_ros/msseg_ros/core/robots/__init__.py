"""Robots: kinematics, conveyor tracking, scheduling, the pick lifecycle, controller
protocols (Modbus TCP for deltas, FANUC RMI) and their emulated controllers.

Nothing here imports ROS; ``msseg_ros.ros.nodes.robot_bridge`` and ``cell_sim`` wrap it.
"""
