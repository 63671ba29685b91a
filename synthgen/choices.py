"""Choices and defaults that ``--help`` shows and the API uses, in a module that imports nothing.

The CLI builds its options from these, so ``synthgen --help`` need not load torch, pydicom or
scikit-learn just to print a default.
"""
#: Rows generated and written per chunk when sampling (memory stays bounded whatever the count).
DEFAULT_CHUNK_ROWS = 100_000
#: Tables with more rows fit their numerical and datetime transformers on a seeded sample of this
#: many rows (the mixture fits are the slow step), then encode every row.
TRANSFORMER_SAMPLE_ROWS = 1_000_000
#: Rows per Parquet part when sampling into a folder (``synthgen.shards``).
DEFAULT_SHARD_ROWS = 1_000_000
#: Formats image sets are written in.
IMAGE_FORMATS = ("dicom", "png", "npz")
#: Column that marks augmented (synthetic) rows.
SYNTHETIC_FLAG = "synthetic"
#: Classifiers the augmentation check trains (the first is the default).
CLASSIFIERS = ("hist_gradient_boosting", "logistic_regression")
#: Example tables that ship inside scikit-learn (``synthgen.datasets``), for the demo.
EXAMPLE_TABLES = ("breast-cancer", "diabetes")

#: Categories seen fewer times are pooled into 'Other' and never generated (a rare value can single
#: out a patient); the default of the API, the CLI and the augmentation.
MIN_CATEGORY_COUNT = 5
