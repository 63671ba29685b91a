"""synthgen: synthetic patient data with measured fidelity and privacy.

Public API::

    from synthgen import TabularSynthesizer, Metadata, DPSettings, load, augment, evaluate, sample_shards
    from synthgen import ImageSynthesizer, read_images, write_images, augment_images, evaluate_images

Every name is imported on first use, so ``import synthgen.errors`` (and the CLI's ``--help``)
need not load torch, pydicom or scikit-learn. Our own modules never import from here.
"""
from importlib import import_module
from typing import Any

from synthgen._version import __version__

#: Public name -> the module that defines it.
_PUBLIC = {
    "DPSettings": "synthgen.dp.accounting",
    "ImageSet": "synthgen.images.types",
    "ImageSynthesizer": "synthgen.synthesizers.images",
    "Metadata": "synthgen.metadata",
    "TabularSynthesizer": "synthgen.synthesizers.tabular",
    "augment": "synthgen.augmentation.tables",
    "augment_images": "synthgen.augmentation.images",
    "evaluate": "synthgen.evaluation",
    "evaluate_images": "synthgen.evaluation.images.evaluate",
    "load": "synthgen.loading",
    "read_images": "synthgen.images.reading",
    "sample_shards": "synthgen.shards",
    "write_images": "synthgen.images.io",
}

__all__ = [*sorted(_PUBLIC), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'synthgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
