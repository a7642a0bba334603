"""What each cell is, defined once: the channels and classes its models see.

Every default that names a cell's classes or channels (the model types' default configs,
the simulator, the node parameter schema, the overlay's false colour) reads them here.

Sorting line (seed 000): 11-channel frames, channel order of Table 5.1 (and CONTRACT.md);
9 scrap classes in the order of its contingency tables (class id = index + 1); the mean
and standard deviation of each channel over the thesis's learning set (Table 6.1), the
normalisation of a model trained on the real line.

Bin picking (seed 001): RGB frames and one class, the product in the bin.
"""
from __future__ import annotations

SORTING_LINE_CHANNELS: tuple[str, ...] = (
    "height_mm", "xray_low", "xray_high",
    "vnir_433", "vnir_497", "vnir_561", "vnir_626", "vnir_691", "vnir_778", "vnir_866", "vnir_955",
)
SORTING_LINE_CLASSES: tuple[str, ...] = (
    "copper", "laminated_zinc", "paint", "brass", "aluminium", "pcb", "nickel", "rubber", "zamak",
)
#: seed 000 Table 6.1, per channel of SORTING_LINE_CHANNELS
TABLE_6_1_MEAN: tuple[float, ...] = (0.16, 64593, 64404, 2014, 1911, 2502, 2479, 2318, 2281, 2200, 2187.0)
TABLE_6_1_STD: tuple[float, ...] = (1.73, 3390, 3003, 1335, 858, 474, 417, 404, 414, 453, 554.0)

BIN_PICKING_CHANNELS: tuple[str, ...] = ("red", "green", "blue")
BIN_PICKING_CLASSES: tuple[str, ...] = ("object",)

CLASSES: dict[str, tuple[str, ...]] = {"sorting_line": SORTING_LINE_CLASSES, "bin_picking": BIN_PICKING_CLASSES}
CHANNELS: dict[str, tuple[str, ...]] = {"sorting_line": SORTING_LINE_CHANNELS, "bin_picking": BIN_PICKING_CHANNELS}
