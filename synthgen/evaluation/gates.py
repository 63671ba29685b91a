"""Pass/fail rules on report scores, so a release decision is explicit, reviewable and scripted.

A gate names a score by its key: the metric name in lowercase with every run of other characters
turned into ``_`` ("MIA AUC (distance)" -> ``mia_auc_distance``). The suffix ``_lower`` or
``_upper`` targets the confidence interval's bound instead of the value, and the threshold
``holdout`` compares against the score's holdout reference (what fresh real patients score).

The threshold ``null+TOL@ALPHA`` (e.g. ``dcr_share<=null+0.05@0.01``) makes the gate a
statistical decision on a score that carries a test against a null computed from fresh real
rows (see :class:`~synthgen.evaluation.scores.Score`): it fails only when the one-sided p-value
is below ALPHA **and** the synthetic statistic exceeds the null by more than TOL (the effect
size that matters). A gate without enough evidence (no score, no null, NaN, or a test that
reports too little data) is *inconclusive*: never a pass. The default gates are all of this kind,
each at alpha 0.002, so over the seven of them the chance that fresh real rows fail any gate is at
most 1.4% (Bonferroni), whatever the data (measured: tests/evaluation/test_gates.py, benchmarks/privacy_gates.py).
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
NULL = "null"
DEFAULT_ALPHA = 0.002
_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_BOUNDS = {"_lower": ("low", "lower bound"), "_upper": ("high", "upper bound")}
_GATE_TEXT = re.compile(r"^\s*(?P<metric>.*?)\s*(?P<op><=|>=|<|>)\s*(?P<threshold>\S+)\s*$")
_NULL_TEXT = re.compile(r"^null(?:\+(?P<tolerance>[^@]+))?(?:@(?P<alpha>.+))?$")


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
    """The outcome of one gate: ``passed`` is None when it is inconclusive (too little evidence).

    A null gate also records the null value, p-value, test, alpha and tolerance it decided on.
    """

    gate: Gate
    value: float | None
    passed: bool | None
    text: str
    threshold: float | None = None
    null: float | None = None
    p_value: float | None = None
    test: str = ""

    @property
    def status(self) -> str:
        """"pass", "fail" or "inconclusive"."""
        return {True: "pass", False: "fail", None: "inconclusive"}[self.passed]


@dataclass(frozen=True)
class Gate:
    """A pass/fail rule on one score, e.g. ``Gate("dcr_share_lower", "<=", 0.55)``.

    ``metric`` may be given as a display name; it is stored as its key. ``threshold`` is a number,
    ``"holdout"`` (the score's holdout reference) or ``"null"`` (a test against the score's null,
    failing when p < ``alpha`` and the synthetic statistic exceeds the null by more than
    ``tolerance``; only ``<=`` and ``<`` apply, the tests being one-sided).
    """

    metric: str
    op: str
    threshold: float | str
    tolerance: float = 0.0
    alpha: float = DEFAULT_ALPHA

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", metric_key(self.metric))
        if not self.metric:
            raise InvalidArgumentError("a gate needs a metric name")
        if self.op not in _OPS:
            raise InvalidArgumentError(f"gate operator {self.op!r} is not one of {', '.join(_OPS)}")
        if isinstance(self.threshold, str):
            if self.threshold not in (HOLDOUT, NULL):
                raise InvalidArgumentError(f"gate threshold must be a number, {HOLDOUT!r} or {NULL!r}, not {self.threshold!r}")
            if self.threshold == NULL and self.op not in ("<=", "<"):
                raise InvalidArgumentError(f"a null gate's tests are one-sided (synthetic worse = larger): use <= or <, not {self.op!r}")
            if not (0.0 < self.alpha < 1.0 and math.isfinite(self.tolerance) and self.tolerance >= 0.0):
                raise InvalidArgumentError(f"gate alpha must be in (0, 1) and tolerance >= 0; got alpha={self.alpha!r}, tolerance={self.tolerance!r}")
        elif not math.isfinite(self.threshold):
            raise InvalidArgumentError(f"gate threshold must be finite, not {self.threshold!r}")

    @classmethod
    def parse(cls, text: str) -> Gate:
        """A gate from text such as ``"dcr_share<=0.52"``, ``"exact_copies<=holdout"`` or ``"dcr_share<=null+0.05@0.01"``."""
        match = _GATE_TEXT.match(text)
        if match is None or not metric_key(match["metric"]):
            raise InvalidArgumentError(
                f"cannot read gate {text!r}: expected METRIC OP THRESHOLD, e.g. 'dcr_share_lower<=0.55' or "
                f"'dcr_share<=null+0.05@0.01' (OP one of {', '.join(_OPS)})"
            )
        threshold: float | str = match["threshold"].lower()
        if (null := _NULL_TEXT.match(threshold)) is not None:
            try:
                tolerance = float(null["tolerance"] or 0.0)
                alpha = float(null["alpha"] or DEFAULT_ALPHA)
            except ValueError:
                raise InvalidArgumentError(f"cannot read gate {text!r}: expected null+TOLERANCE@ALPHA, e.g. null+0.05@0.01") from None
            return cls(match["metric"], match["op"], NULL, tolerance, alpha)
        if threshold != HOLDOUT:
            try:
                threshold = float(threshold)
            except ValueError:
                raise InvalidArgumentError(
                    f"cannot read gate {text!r}: threshold {match['threshold']!r} is neither a number nor {HOLDOUT!r}"
                ) from None
        return cls(match["metric"], match["op"], threshold)

    def __str__(self) -> str:
        if self.threshold == NULL:
            return f"{self.metric}{self.op}null+{format_number(self.tolerance)}@{format_number(self.alpha)}"
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
            return GateResult(self, None, None, f"{self}: inconclusive (no {self.metric} score)")
        if self.threshold == NULL:
            return self._test(found[0])
        row, column, label = found
        name = f"{row['metric']} {label}".strip()
        value = _number(row[column])
        if value is None:
            return GateResult(self, None, None, f"{name}: inconclusive (no {label or 'value'} computed)")
        if self.threshold == HOLDOUT:
            threshold = _number(row["reference"])
            if threshold is None:
                return GateResult(self, value, None, f"{name}: inconclusive (no holdout reference)")
            shown = f"holdout {format_number(threshold, value)}"
        else:
            threshold = float(self.threshold)
            shown = format_number(threshold, value)
        passed = _OPS[self.op](value, threshold)
        text = f"{name} {format_number(value, threshold)} {self.op} {shown}: {'pass' if passed else 'FAIL'}"
        return GateResult(self, value, passed, text, threshold)

    def _test(self, row: pd.Series) -> GateResult:
        """The null gate's decision: fail when p < alpha and observed - null > tolerance."""
        name = row["metric"]
        observed = _number(row.get("observed"))
        observed = _number(row["value"]) if observed is None else observed
        null, p_value, test = _number(row.get("null")), _number(row.get("p_value")), str(row.get("test") or "")
        evidence = row.get("evidence")
        if isinstance(evidence, str) and evidence:
            return GateResult(self, observed, None, f"{name}: inconclusive ({evidence})", null=null, p_value=p_value, test=test)
        if observed is None or null is None or p_value is None:
            return GateResult(self, observed, None, f"{name}: inconclusive (no test against a null of fresh real rows: "
                              "a holdout is needed)", null=null, p_value=p_value, test=test)
        excess = observed - null
        significant = p_value < self.alpha if self.op == "<" else p_value <= self.alpha
        passed = not (significant and excess > self.tolerance + 1e-12)  # 0.55 - 0.5 is 0.05000000000000004
        text = (f"{name} {format_number(observed, null)} vs null {format_number(null, observed)} (excess "
                f"{format_number(excess)}, tolerance {format_number(self.tolerance)}), p = {format_number(p_value)} "
                f"{'<' if significant else '>='} alpha {format_number(self.alpha)}: {'pass' if passed else 'FAIL'}")
        return GateResult(self, observed, passed, text, null + self.tolerance, null=null, p_value=p_value, test=test)


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing."""
    return None if value is None or pd.isna(value) else float(value)


def check_known(gates: list[Gate], scores: pd.DataFrame) -> None:
    """Reject gates naming a metric that is neither computed nor a default gate's (a typo, most likely).

    A default gate's metric may be legitimately absent (e.g. no holdout, so no DCR share); it is
    then reported as inconclusive.
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
        "exact_copies<=null+0.01@0.002",
        "dcr_share<=null+0.05@0.002",
        "mia_auc_distance<=null+0.05@0.002",
        "mia_auc_domias<=null+0.05@0.002",
        "singling_out_risk<=null+0.05@0.002",
        "linkability_risk<=null+0.05@0.002",
        "attribute_inference_risk<=null+0.05@0.002",
    )
]
