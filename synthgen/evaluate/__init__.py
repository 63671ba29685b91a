"""Scoring synthetic data against real data: fidelity now; privacy lands with issue #3."""
