"""Training: the shared adversarial loop (loop.py) and each model kind's steps (tabular, private, images)."""
