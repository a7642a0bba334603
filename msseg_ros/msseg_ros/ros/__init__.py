"""Thin rclpy adapters: message codecs, parameters, QoS, the node base and the nodes.

A node callback decodes a message, calls core, and encodes the result.
"""
