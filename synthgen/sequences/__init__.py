"""Longitudinal records (many rows per patient), learned and sampled as whole patients."""
from synthgen.sequences.synthesizer import SequenceSynthesizer

__all__ = ["SequenceSynthesizer"]
