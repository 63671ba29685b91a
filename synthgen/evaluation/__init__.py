"""Scoring synthetic data against real data: fidelity and privacy, with a holdout as the yardstick.

``evaluate`` works on any pair of tables, including synthetic data made by other tools.
"""
from __future__ import annotations

from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from synthgen.errors import InvalidDataError
from synthgen.evaluation.fidelity import fidelity_section
from synthgen.evaluation.gates import DEFAULT_GATES, Gate
from synthgen.evaluation.privacy import privacy_section
from synthgen.evaluation.report import Report
from synthgen.metadata import Metadata

__all__ = ["Gate", "Report", "evaluate"]


def evaluate(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    holdout: pd.DataFrame | None = None,
    metadata: Metadata | None = None,
    target: str | None = None,
    gates: list[Gate] | None = None,
    seed: int = 0,
    rare_k: int = 5,
    sensitive: list[str] | None = None,
    context: dict[str, Any] | None = None,
    progress: bool = True,
) -> Report:
    """Score ``synthetic`` against the ``real`` rows it was trained on.

    ``holdout`` (real rows the generator never saw) calibrates every score and is required for
    the DCR share, membership inference and anonymeter-style risks; it should be about the size
    of ``real``. ``gates`` default to :data:`DEFAULT_GATES`: each a one-sided test against the
    null of fresh real rows (see :mod:`synthgen.evaluation.gates`). Attribute inference tries every
    non-id column as the secret, or only the ``sensitive`` ones.
    """
    for name, frame in (("real", real), ("synthetic", synthetic), ("holdout", holdout)):
        if frame is not None and (not isinstance(frame, pd.DataFrame) or frame.empty):
            raise InvalidDataError(f"the {name} table is empty or not a DataFrame")
    metadata = metadata if metadata is not None else Metadata.detect(real)
    for frame in (real, synthetic, holdout):
        if frame is not None:
            metadata.validate(frame)
    rng = np.random.default_rng(seed)
    sections = {}
    with tqdm(total=2, desc="evaluating", unit="section", disable=not progress, leave=False) as bar:
        sections["fidelity"] = fidelity_section(real, synthetic, holdout, metadata, rng=rng, target=target)
        bar.update()
        sections["privacy"] = privacy_section(real, synthetic, holdout, metadata, rng=rng, rare_k=rare_k, sensitive=sensitive)
        bar.update()
    about = {
        "rows": {"real (training)": len(real), "holdout": None if holdout is None else len(holdout), "synthetic": len(synthetic)},
        "columns": len(metadata.columns),
        "privacy unit": "one row = one patient (assumed; the risks are per row)",
        "evaluation seed": seed,
        "rare category threshold": rare_k,
        **({"sensitive columns": list(sensitive)} if sensitive else {}),
        "versions": {name: version(name) for name in ("synthgen", "sdmetrics", "scikit-learn", "pandas")},
        **(context or {}),
    }
    return Report(sections=sections, context=about, gates=list(DEFAULT_GATES if gates is None else gates))
