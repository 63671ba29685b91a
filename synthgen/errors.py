"""Every error synthgen raises on purpose derives from :class:`SynthgenError`.

The CLI turns these into a one-line message and a non-zero exit code; anything else is a bug.
"""


class SynthgenError(Exception):
    """Base class for errors caused by the user's input, files or requests."""


class InvalidDataError(SynthgenError, ValueError):
    """The input table cannot be learned as given (empty, all-missing or mixed-type column, ...)."""


class MetadataError(SynthgenError, ValueError):
    """The metadata is malformed or does not match the table."""


class NotFittedError(SynthgenError, RuntimeError):
    """A transformer or synthesizer was used before ``fit``."""


class UnknownCategoryError(SynthgenError, ValueError):
    """A requested value was never seen in training (or was pooled as rare)."""


class ConditionError(SynthgenError, ValueError):
    """A sampling condition names an unknown column or cannot be met."""


class ModelFileError(SynthgenError, OSError):
    """A model file is missing, truncated, corrupt, foreign or of an unsupported version."""


class PluginError(SynthgenError, ImportError):
    """A registered plugin failed to load or clashes with another plugin."""


class InvalidArgumentError(SynthgenError, ValueError):
    """A parameter is out of range (e.g. a non-positive number of rows)."""


class OutputError(SynthgenError, OSError):
    """An output cannot be written where asked: it is an input, a directory, or its folder refuses it."""
