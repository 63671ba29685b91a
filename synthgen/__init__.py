"""synthgen: synthetic patient data with measured fidelity and privacy.

Public API::

    from synthgen import TabularSynthesizer, Metadata, load, augment, evaluate
"""
from typing import Any

__version__ = "0.1.0"

from synthgen.augmentation import augment  # noqa: E402
from synthgen.loading import load  # noqa: E402
from synthgen.metadata import Metadata  # noqa: E402
from synthgen.synthesizer import TabularSynthesizer  # noqa: E402

__all__ = ["Metadata", "TabularSynthesizer", "augment", "evaluate", "load", "__version__"]


def __getattr__(name: str) -> Any:
    # evaluate pulls in sdmetrics and plotly (seconds to import): load it only when asked for.
    if name == "evaluate":
        from synthgen.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'synthgen' has no attribute {name!r}")
