"""Image evaluation: evaluate.py runs the sections (sections.py) on features of a small CNN
(features.py), with the measures in metrics.py, report grids (grids.py) and the optional Inception FID."""
