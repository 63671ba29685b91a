"""The evaluation report of patient histories: sequence fidelity and patient-level privacy, gated.

The same :class:`synthgen.evaluation.report.Report` as for tables (HTML, JSON, summary, gates and
exit codes), with three sections: "sequences" (``sequence_fidelity``: lengths, inter-visit gaps,
static consistency, lag-1 autocorrelation and transition tables, per-patient aggregates, each next
to what the training patients score against the same holdout), "fidelity" (``patient_fidelity``:
Column Shapes, Pair Trends and detection on one summary row per patient) and "privacy"
(``patient_privacy``: DCR, membership inference and the risks on the same rows). The default
privacy gates judge the last.

``evaluate_synthesizer`` scores a model's long-table sample against the table fit was given (its
holdout patients split off again); ``evaluate_two_tables`` does the same for a model fitted on a
parent and a child table, joining each pair into that long table first; ``evaluate_long_tables``
scores long tables without a model (any generator's), given the entity column and held-out patients.
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from synthgen.dp.accounting import statement as dp_statement
from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.evaluation.gates import DEFAULT_GATES, Gate
from synthgen.evaluation.report import Report
from synthgen.evaluation.scores import Score, SectionResult
from synthgen.io import read_table
from synthgen.metadata import Metadata
from synthgen.sequences.evaluate import patient_fidelity, patient_privacy, sequence_fidelity
from synthgen.sequences.frames import static_columns as find_static_columns
from synthgen.sequences.tables import join_long

if TYPE_CHECKING:  # the synthesizer brings torch; scoring a sample needs only its schema and split
    from synthgen.sequences.synthesizer import SequenceSynthesizer

#: A parent and a child table, each a DataFrame or a table file (named in errors about it).
TablePair = tuple["pd.DataFrame | str | Path", "pd.DataFrame | str | Path"]

#: (measure key, metric name, ideal value) of the sequence section's headline scores.
_MEASURES = (
    ("length_ks", "Sequence length KS statistic", "0"),
    ("gap_ks", "Inter-visit gap KS statistic", "0"),
    ("static_consistency", "Static consistency", "1"),
    ("lag1_max_gap", "Lag-1 autocorrelation, largest gap", "0"),
    ("transition_similarity", "Transition tables (lag-1 contingency similarity)", "1"),
    ("aggregate_shapes", "Per-patient aggregates (Column Shapes)", "1"),
)


def evaluate_histories(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, *, entity_column: str,
                       sequence_index: str | None, static_columns: list[str], gates: list[Gate] | None = None,
                       seed: int = 0, sensitive: list[str] | None = None,
                       context: dict[str, Any] | None = None) -> Report:
    """Score ``synthetic`` patients against the ``holdout`` patients, with ``train`` as the reference."""
    for name, frame in (("training", train), ("synthetic", synthetic), ("holdout", holdout)):
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            raise InvalidDataError(f"the {name} table is empty or not a DataFrame")
    measured = sequence_fidelity(synthetic, holdout, entity_column, sequence_index, static_columns, reference=train)
    scores = [Score("sequences", metric, float(measured["synthetic"][key]),
                    reference=float(measured["reference"][key]), ideal=ideal, method="synthgen.sequences.evaluate")
              for key, metric, ideal in _MEASURES]
    lag = pd.DataFrame({"holdout": measured["holdout"]["lag1"], "synthetic": measured["synthetic"]["lag1"],
                        "training patients": measured["reference"]["lag1"]})
    transitions = pd.DataFrame({"synthetic": measured["synthetic"]["transitions"],
                                "training patients": measured["reference"]["transitions"]})
    aggregates = pd.DataFrame({"synthetic": measured["synthetic"]["aggregate_scores"],
                               "training patients": measured["reference"]["aggregate_scores"]})
    sections = {
        "sequences": SectionResult(scores, tables={"lag-1 autocorrelation": lag.rename_axis("column").reset_index(),
                                                   "transition tables": transitions.rename_axis("column").reset_index(),
                                                   "per-patient aggregates": aggregates.rename_axis("aggregate").reset_index()}),
        "fidelity": patient_fidelity(train, synthetic, holdout, entity_column, sequence_index, static_columns,
                                     rng=np.random.default_rng(seed)),
        "privacy": patient_privacy(train, synthetic, holdout, entity_column, sequence_index, static_columns,
                                   rng=np.random.default_rng(seed), sensitive=sensitive),
    }
    about = {
        "patients": {"real (training)": int(train[entity_column].nunique()), "holdout": int(holdout[entity_column].nunique()),
                     "synthetic": int(synthetic[entity_column].nunique())},
        "privacy unit": f"one patient = one value of {entity_column!r} (all of a patient's rows, summarised in one row)",
        "evaluation seed": seed,
        "versions": {name: version(name) for name in ("synthgen", "sdmetrics", "scikit-learn", "pandas")},
        **(context or {}),
    }
    return Report(sections=sections, context=about, gates=list(DEFAULT_GATES if gates is None else gates))


def evaluate_long_tables(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, *, entity_column: str,
                         sequence_index: str | None = None, metadata: Metadata | None = None,
                         gates: list[Gate] | None = None, seed: int = 0, sensitive: list[str] | None = None,
                         context: dict[str, Any] | None = None) -> Report:
    """The report of a synthetic long table made by any generator: ``real`` holds the patients it was
    made from, ``holdout`` real patients it never saw. The static columns are those declared
    ``"static"`` in ``metadata``, the others those constant within every real patient."""
    for role, frame in (("real", real), ("synthetic", synthetic), ("holdout", holdout)):
        for option, column in (("entity column", entity_column), ("sequence index", sequence_index)):
            if column is not None and column not in frame.columns:
                raise InvalidDataError(f"the {role} table has no {option} {column!r}")
    statics = find_static_columns(real, entity_column, sequence_index, metadata)
    return evaluate_histories(real, synthetic, holdout, entity_column=entity_column, sequence_index=sequence_index,
                              static_columns=statics, gates=gates, seed=seed, sensitive=sensitive,
                              context={**(context or {}), "static columns": statics or "none"})


def evaluate_synthesizer(synthesizer: SequenceSynthesizer, real: pd.DataFrame, synthetic: pd.DataFrame,
                         holdout: pd.DataFrame | None = None, *, gates: list[Gate] | None = None, seed: int = 0,
                         sensitive: list[str] | None = None, context: dict[str, Any] | None = None) -> Report:
    """The report of ``synthetic`` (a long table ``synthesizer`` sampled) against ``real``, the table
    fit was given: its held-out patients are found again by ``synthesizer.split``, unless
    ``holdout`` gives held-out patients (then all of ``real`` is the training reference)."""
    if getattr(synthesizer, "kind", None) != "sequence":
        raise InvalidArgumentError("evaluate_synthesizer scores patient-history models (SequenceSynthesizer)")
    train, held_out = (real, holdout) if holdout is not None else synthesizer.split(real)
    if held_out is None:
        raise InvalidArgumentError("patient-level privacy needs held-out patients: fit with --holdout, or pass --holdout")
    schema, details = synthesizer.schema_, synthesizer.describe()
    generator = {key: details[key] for key in ("kind", "synthgen_version", "seed", "config", "training")}
    privacy = details["training"].get("privacy")  # a DP fit: the report states its guarantee, as for tables
    return evaluate_histories(train, synthetic, held_out, entity_column=schema.entity_column,
                              sequence_index=schema.sequence_index, static_columns=list(schema.static_columns),
                              gates=gates, seed=seed, sensitive=sensitive,
                              context={**(context or {}), "generator": generator,
                                       **({"dp statement": dp_statement(privacy)} if privacy else {})})


def evaluate_two_tables(synthesizer: SequenceSynthesizer, real: TablePair, synthetic: TablePair,
                        holdout: TablePair | None = None, *, gates: list[Gate] | None = None, seed: int = 0,
                        sensitive: list[str] | None = None, context: dict[str, Any] | None = None) -> Report:
    """:func:`evaluate_synthesizer` for a model fitted on two tables: each (parent, child) pair is
    joined by the model's stored layout into the long table it learned, then scored as one.

    ``real`` is the pair fit was given (extra columns are ignored, as fit ignored them); ``synthetic``
    must hold exactly the layout's columns, as sampling writes them. Orphan child rows, childless
    parents, repeated keys and missing columns are errors naming the file (or the table).
    """
    layout = synthesizer.tables_ if getattr(synthesizer, "kind", None) == "sequence" else None
    if layout is None:
        raise InvalidArgumentError("evaluate_two_tables scores a model fitted on a parent and a child table "
                                   "(SequenceSynthesizer.fit_tables); for a long-table model use evaluate_synthesizer")

    def joined(pair: TablePair, role: str, exact: bool = False) -> pd.DataFrame:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InvalidArgumentError(f"the {role} tables must be a ({layout.parent!r}, {layout.child!r}) pair")
        frames, sources = [], []
        for item, table in zip(pair, (layout.parent, layout.child)):
            frames.append(item if isinstance(item, pd.DataFrame) else read_table(item))
            sources.append(f"the {role} tables" if isinstance(item, pd.DataFrame) else repr(str(item)))
        return join_long(frames[0], frames[1], layout, sources=(sources[0], sources[1]), exact=exact)

    return evaluate_synthesizer(synthesizer, joined(real, "real"), joined(synthetic, "synthetic", exact=True),
                                None if holdout is None else joined(holdout, "holdout"), gates=gates, seed=seed,
                                sensitive=sensitive, context=context)
