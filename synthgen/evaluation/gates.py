"""Pass/fail rules on report scores, so a release decision is explicit, reviewable and scripted.

A gate names a score by its key: the metric name in lowercase with every run of other characters
turned into ``_`` ("MIA AUC (distance)" -> ``mia_auc_distance``). The suffix ``_lower`` or
``_upper`` targets the confidence interval's bound instead of the value, and the threshold
``holdout`` compares against the score's holdout reference (what fresh real patients score).
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from synthgen.errors import InvalidArgumentError

HOLDOUT = "holdout"
_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_BOUNDS = {"_lower": ("low", "lower bound"), "_upper": ("high", "upper bound")}
_GATE_TEXT = re.compile(r"^\s*(?P<metric>.*?)\s*(?P<op><=|>=|<|>)\s*(?P<threshold>\S+)\s*$")


def metric_key(name: str) -> str:
    """The snake_case alias of a metric name, used to address it in gates and on the command line."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def format_number(value: float | None, other: float | None = None) -> str:
    """A short rendering of ``value``, with enough digits to tell it apart from ``other``.

    Without this, 0.5504 failing ``<= 0.55`` would read "0.55 <= 0.55: FAIL".
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    for digits in range(3, 18):
        text = f"{value:.{digits}g}"
        if other is None or value == other or text != f"{other:.{digits}g}":
            return text
    return repr(value)


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate: ``passed`` is None when the gate could not be evaluated."""

    gate: Gate
    value: float | None
    passed: bool | None
    text: str
    threshold: float | None = None


@dataclass(frozen=True)
class Gate:
    """A pass/fail rule on one score, e.g. ``Gate("dcr_share_lower", "<=", 0.55)``.

    ``metric`` may be given as a display name; it is stored as its key. ``threshold`` is a number
    or ``"holdout"`` (the score's holdout reference).
    """

    metric: str
    op: str
    threshold: float | str

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", metric_key(self.metric))
        if not self.metric:
            raise InvalidArgumentError("a gate needs a metric name")
        if self.op not in _OPS:
            raise InvalidArgumentError(f"gate operator {self.op!r} is not one of {', '.join(_OPS)}")
        if isinstance(self.threshold, str):
            if self.threshold != HOLDOUT:
                raise InvalidArgumentError(f"gate threshold must be a number or {HOLDOUT!r}, not {self.threshold!r}")
        elif not math.isfinite(self.threshold):
            raise InvalidArgumentError(f"gate threshold must be finite, not {self.threshold!r}")

    @classmethod
    def parse(cls, text: str) -> Gate:
        """A gate from text such as ``"dcr_share<=0.52"``, ``"mia_auc_distance <= 0.6"`` or ``"exact_copies<=holdout"``."""
        match = _GATE_TEXT.match(text)
        if match is None or not metric_key(match["metric"]):
            raise InvalidArgumentError(
                f"cannot read gate {text!r}: expected METRIC OP THRESHOLD, e.g. 'dcr_share_lower<=0.55' (OP one of {', '.join(_OPS)})"
            )
        threshold: float | str = match["threshold"].lower()
        if threshold != HOLDOUT:
            try:
                threshold = float(threshold)
            except ValueError:
                raise InvalidArgumentError(
                    f"cannot read gate {text!r}: threshold {match['threshold']!r} is neither a number nor {HOLDOUT!r}"
                ) from None
        return cls(match["metric"], match["op"], threshold)

    def __str__(self) -> str:
        threshold = self.threshold if isinstance(self.threshold, str) else format_number(self.threshold)
        return f"{self.metric}{self.op}{threshold}"

    @property
    def targets(self) -> list[tuple[str, str, str]]:
        """The (score key, score column, label) this gate may read, most specific first."""
        targets = [(self.metric, "value", "")]
        for suffix, (column, label) in _BOUNDS.items():
            if self.metric.endswith(suffix):
                targets.append((self.metric.removesuffix(suffix), column, label))
        return targets

    def find(self, scores: pd.DataFrame) -> tuple[pd.Series, str, str] | None:
        """The score row this gate reads (first match), the column read from it and its label."""
        for key, column, label in self.targets:
            rows = scores[scores["key"] == key]
            if len(rows):
                return rows.iloc[0], column, label
        return None

    def check(self, scores: pd.DataFrame) -> GateResult:
        """Evaluate the gate on a tidy scores frame (columns key, metric, value, low, high, reference)."""
        found = self.find(scores)
        if found is None:
            return GateResult(self, None, None, f"{self}: not evaluated (no {self.metric} score)")
        row, column, label = found
        name = f"{row['metric']} {label}".strip()
        value = _number(row[column])
        if value is None:
            return GateResult(self, None, None, f"{name}: not evaluated (no {label or 'value'} computed)")
        if self.threshold == HOLDOUT:
            threshold = _number(row["reference"])
            if threshold is None:
                return GateResult(self, value, None, f"{name}: not evaluated (no holdout reference)")
            shown = f"holdout {format_number(threshold, value)}"
        else:
            threshold = float(self.threshold)
            shown = format_number(threshold, value)
        passed = _OPS[self.op](value, threshold)
        text = f"{name} {format_number(value, threshold)} {self.op} {shown}: {'pass' if passed else 'FAIL'}"
        return GateResult(self, value, passed, text, threshold)


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing."""
    return None if value is None or pd.isna(value) else float(value)


def check_known(gates: list[Gate], scores: pd.DataFrame) -> None:
    """Reject gates naming a metric that is neither computed nor a default gate's (a typo, most likely).

    A default gate's metric may be legitimately absent (e.g. no holdout, so no DCR share); it is
    then reported as not evaluated.
    """
    known = {gate.metric for gate in DEFAULT_GATES}
    unknown = [str(gate) for gate in gates if gate.metric not in known and gate.find(scores) is None]
    if unknown:
        keys = ", ".join(dict.fromkeys(scores["key"])) or "none"
        raise InvalidArgumentError(
            f"gate {', '.join(unknown)} names no computed metric; available keys (add _lower/_upper for a CI bound): {keys}"
        )


DEFAULT_GATES: list[Gate] = [
    Gate.parse(text)
    for text in (
        "exact_copies<=holdout",
        "dcr_share_lower<=0.55",
        "mia_auc_distance<=0.6",
        "mia_auc_domias<=0.6",
        "singling_out_risk<=0.1",
        "linkability_risk<=0.1",
        "attribute_inference_risk<=0.1",
    )
]
