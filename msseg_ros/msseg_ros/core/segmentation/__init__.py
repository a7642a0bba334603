"""Segmenters: the interface, the registry and the models (maskrcnn, bicameral, classic)."""
