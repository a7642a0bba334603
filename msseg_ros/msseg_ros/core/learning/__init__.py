"""Datasets (COCO), training, evaluation, export."""
