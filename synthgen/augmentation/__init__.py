"""Augmentation: synthetic rows or images added to a real training set (tables.py, images.py),
and the check of whether they help (check.py)."""
