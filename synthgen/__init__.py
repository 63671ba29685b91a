"""synthgen: synthetic patient data with measured fidelity and privacy.

Public API::

    from synthgen import TabularSynthesizer, Metadata, load, augment
"""
__version__ = "0.1.0"

from synthgen.augment import augment  # noqa: E402
from synthgen.loading import load  # noqa: E402
from synthgen.metadata import Metadata  # noqa: E402
from synthgen.synthesizer import TabularSynthesizer  # noqa: E402

__all__ = ["Metadata", "TabularSynthesizer", "augment", "load", "__version__"]
