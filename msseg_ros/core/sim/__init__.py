"""Deterministic simulated cells: the belt, the sorting-line world, the bin pile."""
