"""synthgen: synthetic patient data with measured fidelity and privacy.

Public API::

    from synthgen import TabularSynthesizer, Metadata, DPSettings, load, augment, evaluate
    from synthgen import ImageSynthesizer, read_images, write_images, augment_images, evaluate_images
"""
from typing import Any

__version__ = "0.1.0"

from synthgen.augmentation import augment  # noqa: E402
from synthgen.data.images import ImageSet, read_images  # noqa: E402
from synthgen.dp.accounting import DPSettings  # noqa: E402
from synthgen.image_augmentation import augment_images  # noqa: E402
from synthgen.image_io import write_images  # noqa: E402
from synthgen.image_synthesizer import ImageSynthesizer  # noqa: E402
from synthgen.loading import load  # noqa: E402
from synthgen.metadata import Metadata  # noqa: E402
from synthgen.synthesizer import TabularSynthesizer  # noqa: E402

__all__ = [
    "DPSettings", "ImageSet", "ImageSynthesizer", "Metadata", "TabularSynthesizer", "augment", "augment_images",
    "evaluate", "evaluate_images", "load", "read_images", "write_images", "__version__",
]


def __getattr__(name: str) -> Any:
    # The evaluations pull in sdmetrics and plotly (seconds to import): load them only when asked for.
    if name == "evaluate":
        from synthgen.evaluation import evaluate

        return evaluate
    if name == "evaluate_images":
        from synthgen.evaluation.images import evaluate_images

        return evaluate_images
    raise AttributeError(f"module 'synthgen' has no attribute {name!r}")
