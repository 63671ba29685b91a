"""Image evaluation: evaluate.py runs the sections (sections.py) on features of a small CNN (features.py),
with the measures in metrics.py, grids for the report (grids.py) and the optional Inception FID (inception.py)."""
