"""Core algorithms: plain Python, numpy and torch. Nothing here imports ROS."""
