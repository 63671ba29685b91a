"""The evaluation report: scores, gate verdict and drill-down as JSON, console text or one HTML file.

The HTML is written for a data-protection officer: verdict first, then the few numbers that
matter next to what real holdout patients score, then the plots and tables behind them, then what
the report is and is not. It only shows the aggregates the sections provide, never records (except
real images in an image grid a section marks as such, which the report then says), and it embeds
plotly.js so it opens with no network.

A section figure of the shape ``{"kind": "image_grid", "title": str, "png_base64": str (a PNG),
"caption": str, "real_images": bool}`` is drawn as an image under its title and caption; the JSON
keeps everything but the PNG. ``real_images`` says whether the grid shows real (training) images;
a grid that does not say counts as showing them.
"""
from __future__ import annotations

import dataclasses
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from synthgen._files import write_atomic
from synthgen.evaluation.gates import DEFAULT_GATES, NULL, Gate, GateResult, check_known, format_number, metric_key
from synthgen.evaluation.scores import SectionResult

SCORE_COLUMNS = ["section", "metric", "key", "value", "low", "high", "reference", "ideal", "method", "note",
                 "observed", "null", "p_value", "test", "evidence"]
MAX_FIGURE_VALUES = 10_000
HISTOGRAM_BINS = 40

# The headline: (key prefix, label). Every score whose key starts with a prefix is shown.
HEADLINE = [
    ("column_shapes", "Column Shapes"),
    ("column_pair_trends", "Column Pair Trends"),
    ("detection", "Detection AUC"),
    ("dcr_share", "DCR share"),
    ("mia_auc", "MIA AUC"),
    ("singling_out", "Singling-out risk"),
]
NOT_RECORDED = "not recorded"
NO_DP = "None: no formal differential-privacy guarantee is claimed for this generator."
# "What this report is": (label, context keys it shows, compared as snake_case; text when none
# is given, None to leave the item out). Other context keys follow, as given.
ABOUT = [
    ("Data source", ("data_source", "synthetic_source"), NOT_RECORDED),
    ("Split sizes", ("split", "rows"), NOT_RECORDED),
    ("Privacy unit", ("privacy_unit",), NOT_RECORDED),
    ("Generator version and settings", ("generator_version", "generator"), NOT_RECORDED),
    ("Seed", ("seed", "evaluation_seed"), None),
    ("Settings", ("settings",), None),
    ("Differential privacy", ("dp_statement",), NO_DP),
    ("Sampling", ("sampling",), None),
]
ATTACKER_MODEL = (
    "The privacy metrics assume an attacker who holds the whole synthetic data set and, for the "
    "membership-inference, linkability and attribute-inference attacks, also some real records "
    "(for example a clinic's own patients), and who wants to tell whether a patient was in the "
    "training data, link records to a patient or infer a patient's hidden attribute. The holdout "
    "(real patients never shown to the generator) plays the control: a risk only counts when the "
    "synthetic data give the attacker more than the holdout does."
)
KNOWN_LIMITS = [
    "These results are evidence for an expert determination, not a guarantee: they measure the "
    "attacks listed here on this data, not every conceivable attack.",
    "Without a differential-privacy statement there is no formal bound on what the synthetic data "
    "reveal about any one patient.",
    "Every score is an estimate from finite samples; confidence intervals, where given, show how "
    "uncertain it is.",
    "Fidelity scores compare single columns and pairs of columns; relations between three or more "
    "columns are only covered indirectly, by the detection score.",
]
CORRELATION_CAPTION = (
    "Pairwise correlation (numeric) or association (categorical) in the real and synthetic data, and "
    "their difference; pale cells in the difference mean the relation is preserved."
)
DCR_CAPTION = (
    "Share of records by distance to their closest training record. Synthetic records sitting closer "
    "to the training data than the holdout does point to copying; the holdout → train curve is what "
    "fresh real patients look like. The last bin also counts larger distances."
)
DCR_FIGURES = {
    "dcr_synthetic_to_train": "synthetic → train",
    "dcr_synthetic_to_holdout": "synthetic → holdout",
    "dcr_holdout_to_train": "holdout → train",
}
SUMMARY = (
    "An evaluation of synthetic patient data against the real data it was generated from. "
    "It contains aggregates only (scores, per-column summaries, distance histograms), never real records."
)
REAL_IMAGES_WARNING = (
    "Exception: the image grids marked as such show real training images. Share this report only with "
    "people allowed to see the training data."
)
IMAGE_GRID = "image_grid"
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 2rem;color:#1f2933;line-height:1.45}
h1{margin:.2rem 0}h2{border-bottom:1px solid #cbd2d9;padding-bottom:.2rem;margin-top:2.2rem}
.verdict{padding:1rem 1.5rem;border-radius:6px;border:2px solid}
.verdict.pass{background:#e3f9e5;border-color:#31a24c}.verdict.fail{background:#ffe3e3;border-color:#d64545}
.verdict.none{background:#fff3c4;border-color:#cb6e17}.verdict.inconclusive{background:#ede9fe;border-color:#6d28d9}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #e4e7eb;padding:.25rem .6rem;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#207227}.fail{color:#b42318;font-weight:600}.none{color:#8d5a00}.inconclusive{color:#6d28d9;font-weight:600}
img.grid-image{max-width:100%;image-rendering:pixelated;border:1px solid #cbd2d9}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:.5rem}
.scroll{max-height:26rem;overflow:auto}.caption{color:#52606d;font-size:.9rem}
dt{font-weight:600;margin-top:.4rem}dd{margin-left:1.5rem}
"""


@dataclass(frozen=True)
class Wording:
    """The text that depends on the kind of data: headline metrics, opening summary, attacker model, known limits.

    ``headline`` holds (key prefix, label) pairs: every score whose key starts with a prefix is
    shown, and a placeholder row stands in for a prefix with none.
    """

    headline: tuple[tuple[str, str], ...] = tuple(HEADLINE)
    summary: str = SUMMARY
    attacker_model: str = ATTACKER_MODEL
    known_limits: tuple[str, ...] = tuple(KNOWN_LIMITS)


@dataclass
class Report:
    """Sections' scores, tables and figures, the run's context and the gates they are judged by.

    ``context`` describes the run; "What this report is" explains these keys by name (spaces or
    underscores alike): data_source, split or rows (e.g. {"train": 800, "holdout": 200}),
    privacy_unit, generator_version or generator, seed, settings, dp_statement (None when there
    is none) and sampling (notes on sampled rows or columns). Other keys are listed as given.
    Gates naming a metric that is neither computed nor a default gate's raise
    :class:`InvalidArgumentError` here, at construction. ``wording`` defaults to the tabular text.
    """

    sections: dict[str, SectionResult]
    context: dict[str, Any]
    gates: list[Gate] = field(default_factory=lambda: list(DEFAULT_GATES))
    wording: Wording = field(default_factory=Wording)

    def __post_init__(self) -> None:
        check_known(self.gates, self.scores)

    @property
    def scores(self) -> pd.DataFrame:
        """Every score, one row each, with its gate key."""
        rows = [
            {**dataclasses.asdict(score), "key": metric_key(score.metric)}
            for section in self.sections.values()
            for score in section.scores
        ]
        return pd.DataFrame(rows, columns=SCORE_COLUMNS)

    @property
    def gate_results(self) -> list[GateResult]:
        """Each gate checked against the scores, in the order given."""
        scores = self.scores
        return [gate.check(scores) for gate in self.gates]

    @property
    def passed(self) -> bool:
        """True only when every gate passed: a failed or inconclusive gate is not a pass."""
        return self.verdict == "PASS"

    @property
    def verdict(self) -> str:
        """FAIL when a gate fails; else INCONCLUSIVE when one lacked evidence (NOT EVALUATED when
        all did, or there is no gate); else PASS."""
        results = self.gate_results
        if any(result.passed is False for result in results):
            return "FAIL"
        if all(result.passed is None for result in results):
            return "NOT EVALUATED"
        return "INCONCLUSIVE" if any(result.passed is None for result in results) else "PASS"

    def verdict_detail(self) -> str:
        """One line naming the failed gates and the inconclusive ones."""
        results = self.gate_results
        failed = [result for result in results if result.passed is False]
        skipped = [str(result.gate) for result in results if result.passed is None]
        evaluated = len(results) - len(skipped)
        if failed:
            detail = f"{len(failed)} of {evaluated} evaluated gates failed: " + "; ".join(f"{r.text} [{r.gate}]" for r in failed)
        elif evaluated:
            detail = f"all {evaluated} evaluated gates hold"
        else:
            detail = "no gate could be evaluated"
        if skipped:
            detail += f"; inconclusive (never a pass): {', '.join(skipped)}"
        return detail

    def to_json(self, path: str | Path | None = None) -> str:
        """Everything in the report as strict JSON (missing numbers are null); written to ``path`` if given.

        Figure arrays longer than 10,000 values are replaced by histogram counts, so the file stays
        small and holds distributions rather than per-record values.
        """
        document = {
            "verdict": self.verdict,
            "passed": self.passed,
            "verdict_detail": self.verdict_detail(),
            "context": self.context,
            "scores": self.scores.to_dict(orient="records"),
            "gates": [
                {"rule": str(r.gate), "metric": r.gate.metric, "op": r.gate.op,
                 "threshold": r.gate.threshold if r.threshold is None else r.threshold,
                 "value": r.value, "passed": r.passed, "status": r.status, "text": r.text,
                 **({"synthetic": r.value, "null": r.null, "test": r.test, "alpha": r.gate.alpha,
                     "tolerance": r.gate.tolerance, "p_value": r.p_value} if r.gate.threshold == NULL else {})}
                for r in self.gate_results
            ],
            "sections": {
                name: {
                    "notes": section.notes,
                    "tables": {key: _records(table) for key, table in section.tables.items()},
                    "figures": {key: _compact(figure) for key, figure in section.figures.items()},
                }
                for name, section in self.sections.items()
            },
        }
        text = json.dumps(_jsonable(document), indent=2, allow_nan=False, ensure_ascii=False)
        if path is not None:
            write_atomic(path, text)
        return text

    def to_html(self, path: str | Path | None = None) -> str:
        """The report as one self-contained HTML file (plotly.js inline); written to ``path`` if given."""
        scores = self.scores
        results = self.gate_results
        gates_by_key = _gates_by_key(results, scores)
        plots = _Plots()
        verdict = self.verdict
        css_class = {"PASS": "pass", "FAIL": "fail", "INCONCLUSIVE": "inconclusive"}.get(verdict, "none")
        parts = [
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width,initial-scale=1'>",
            f"<title>synthgen evaluation: {verdict}</title><style>{CSS}</style></head><body>",
            f"<div class='verdict {css_class}' id='verdict'><h1>{verdict}</h1><p>{_e(self.verdict_detail())}</p></div>",
            "<h2>The numbers that matter</h2>",
            "<p class='caption'>Each score next to what real holdout patients score (the reference) and the rule it is held to.</p>",
            _score_table(_headline(scores, self.wording.headline), gates_by_key),
            "<h2>Gates</h2>",
            _gate_table(results),
        ]
        for name, section in self.sections.items():
            parts.append(f"<h2>{_e(name.capitalize())}: drill-down</h2>")
            parts.extend(_figures_html(section.figures, plots))
            for key, table in section.tables.items():
                parts.append(f"<h3>{_e(key)}</h3><div class='scroll'>{_table_html(table)}</div>")
            if section.notes:
                parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{_e(note)}</li>" for note in section.notes) + "</ul>")
        parts += ["<h2>All scores</h2>", _score_table(scores, gates_by_key), self._about_html(scores), "</body></html>"]
        text = "\n".join(parts)
        if path is not None:
            write_atomic(path, text)
        return text

    def summary(self) -> str:
        """A console table: the verdict line, then metric / value / CI / holdout reference / gate."""
        scores = self.scores
        gates_by_key = _gates_by_key(self.gate_results, scores)
        rows = [("metric", "value", "95% CI", "holdout", "gate")]
        for row in scores.itertuples():
            gates = "; ".join(_gate_cell(r) for r in gates_by_key.get(row.key, []))
            rows.append((row.metric, format_number(_float(row.value)), _ci(row.low, row.high), _reference(row.reference), gates))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [f"{self.verdict}: {self.verdict_detail()}", ""]
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines)

    def _about_html(self, scores: pd.DataFrame) -> str:
        """The "What this report is" block: provenance, methods, attacker model and known limits."""
        remaining = {metric_key(str(key)): (key, value) for key, value in self.context.items()}
        items = []
        for label, keys, missing in ABOUT:
            found = {remaining[k][0]: remaining.pop(k)[1] for k in keys if k in remaining}
            found = {key: value for key, value in found.items() if value is not None}
            if found:
                items.append(f"<dt>{_e(label)}</dt><dd>{_value_html(found.popitem()[1] if len(found) == 1 else found)}</dd>")
            elif missing is not None:
                items.append(f"<dt>{_e(label)}</dt><dd><em>{_e(missing)}</em></dd>")
        items += [f"<dt>{_e(str(key))}</dt><dd>{_value_html(value)}</dd>" for key, value in remaining.values()]
        methods = scores[["section", "metric", "method"]].rename(columns={"method": "implementation and version"})
        real_images = any(
            _is_image_grid(figure) and figure.get("real_images", True)
            for section in self.sections.values() for figure in section.figures.values()
        )
        summary = self.wording.summary + (f" <strong>{_e(REAL_IMAGES_WARNING)}</strong>" if real_images else "")
        return "\n".join([
            "<h2 id='about'>What this report is</h2>",
            f"<p>{summary}</p>",
            f"<dl>{''.join(items)}</dl>",
            "<h3>Metric implementations</h3>",
            _table_html(methods),
            f"<h3>Attacker model</h3><p>{_e(self.wording.attacker_model)}</p>",
            "<h3>Known limits</h3><ul>" + "".join(f"<li>{_e(limit)}</li>" for limit in self.wording.known_limits) + "</ul>",
        ])


class _Plots:
    """Renders plotly figures as HTML fragments, embedding plotly.js inline in the first one only."""

    def __init__(self) -> None:
        self.embedded = False

    def __call__(self, figure: go.Figure) -> str:
        figure.update_layout(template="plotly_white", margin={"l": 50, "r": 20, "t": 50, "b": 50})
        fragment = figure.to_html(full_html=False, include_plotlyjs=not self.embedded, config={"displaylogo": False, "responsive": True})
        self.embedded = True
        return fragment


def _figures_html(figures: dict[str, Any], plots: _Plots) -> list[str]:
    """The section's figures that the report knows how to draw; any key may be missing."""
    parts = []
    figures = dict(figures)
    if marginals := figures.pop("marginals", None):
        parts.append("<h3>Real vs synthetic distributions per column</h3><div class='grid'>")
        parts += [plots(_marginal_figure(column, marginal)) for column, marginal in marginals.items()]
        parts.append("</div>")
    real, synthetic = figures.pop("correlation_real", None), figures.pop("correlation_synthetic", None)
    if real is not None or synthetic is not None:
        parts.append("<h3>Correlations and associations</h3>")
        parts.append(f"<p class='caption'>{_e(CORRELATION_CAPTION)}</p>")
        parts.append(f"<div class='grid'>{''.join(plots(figure) for figure in _correlation_figures(real, synthetic))}</div>")
    distances = {key: figures.pop(key) for key in DCR_FIGURES if key in figures}
    if distances:
        parts.append("<h3>Distance to closest record</h3>")
        parts.append(f"<p class='caption'>{_e(DCR_CAPTION)}</p>")
        series = {DCR_FIGURES[key]: values for key, values in distances.items()}
        parts.append(plots(_histogram_figure(series, "distance to closest record")))
    for key, figure in figures.items():
        if _is_image_grid(figure):
            parts.append(_image_grid_html(key, figure))
        elif isinstance(figure, pd.DataFrame):
            parts.append(f"<h3>{_e(key)}</h3>" + plots(_heatmap_figure(figure, key)))
        elif _is_numeric_vector(figure):
            parts.append(f"<h3>{_e(key)}</h3>" + plots(_histogram_figure({key: figure}, key)))
    return parts


def _is_image_grid(figure: Any) -> bool:
    return isinstance(figure, dict) and figure.get("kind") == IMAGE_GRID


def _image_grid_html(key: str, grid: dict[str, Any]) -> str:
    """An image grid as its title, caption and an inline PNG (a data URI, so the file stays self-contained)."""
    title = _e(str(grid.get("title") or key))
    caption = f"<p class='caption'>{_e(str(grid['caption']))}</p>" if grid.get("caption") else ""
    source = _e(f"data:image/png;base64,{grid['png_base64']}")
    return f"<h3>{title}</h3>{caption}<img class='grid-image' src=\"{source}\" alt=\"{title}\">"


def _marginal_figure(column: str, marginal: dict[str, Any]) -> go.Figure:
    """Real and synthetic bars for one column: densities over bins (numbers or ISO dates), or category shares.

    The title carries each side's share of missing values when the section gives it.
    """
    figure = go.Figure()
    if marginal["kind"] == "numeric":
        x, width, y_title = _bars(marginal["bins"])
        figure.update_layout(barmode="overlay")
    else:
        x, width, y_title = [_e(str(c)) for c in marginal["categories"]], None, "share"
        figure.update_layout(barmode="group", xaxis_type="category")  # "1", "2", "10" are categories, not positions
    for name, color in (("real", "#3e4c59"), ("synthetic", "#e8590c")):
        figure.add_trace(go.Bar(x=x, y=marginal[name], width=width, name=name, marker_color=color, opacity=0.6 if width is not None else 1.0))
    title = _e(str(column))
    if missing := marginal.get("missing"):
        title += f" <span style='font-size:12px'>(missing: real {missing['real']:.1%}, synthetic {missing['synthetic']:.1%})</span>"
    figure.update_layout(title=title, height=280, yaxis_title=y_title, legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"})
    return figure


def _bars(bins: list[Any]) -> tuple[Any, np.ndarray, str]:
    """Bar centres, widths and the density unit for histogram edges; dates are ISO strings, widths then in ms."""
    if bins and isinstance(bins[0], str):
        edges = pd.DatetimeIndex(pd.to_datetime(bins))
        widths = np.diff(edges.asi8) / 1e6
        return edges[:-1] + pd.to_timedelta(widths / 2, unit="ms"), widths, "density per day"
    edges = np.asarray(bins, dtype=float)
    return (edges[:-1] + edges[1:]) / 2, np.diff(edges), "density"


def _correlation_figures(real: pd.DataFrame | None, synthetic: pd.DataFrame | None) -> list[go.Figure]:
    """Real and synthetic heat maps on one scale, plus their difference when both exist."""
    present = {name: frame for name, frame in (("real", real), ("synthetic", synthetic)) if frame is not None}
    columns = list(dict.fromkeys(c for frame in present.values() for c in frame.columns))
    aligned = {name: frame.reindex(index=columns, columns=columns) for name, frame in present.items()}
    labels = [_e(str(c)) for c in columns]
    side = make_subplots(rows=1, cols=len(aligned), subplot_titles=list(aligned), horizontal_spacing=0.08)
    for i, frame in enumerate(aligned.values(), start=1):
        side.add_trace(go.Heatmap(z=frame.to_numpy(dtype=float), x=labels, y=labels, coloraxis="coloraxis"), row=1, col=i)
        side.update_yaxes(autorange="reversed", showticklabels=i == 1, row=1, col=i)
    side.update_layout(coloraxis={"colorscale": "RdBu", "cmin": -1, "cmax": 1}, height=420)
    figures = [side]
    if len(aligned) == 2:
        figures.append(_heatmap_figure(aligned["synthetic"] - aligned["real"], "synthetic − real", labels))
    return figures


def _heatmap_figure(frame: pd.DataFrame, title: str, labels: list[str] | None = None) -> go.Figure:
    """One heat map on a scale symmetric around zero."""
    z = frame.to_numpy(dtype=float)
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    figure = go.Figure(go.Heatmap(
        z=z, x=labels or [_e(str(c)) for c in frame.columns], y=labels or [_e(str(i)) for i in frame.index],
        colorscale="RdBu", zmin=-max(bound, 1e-9), zmax=max(bound, 1e-9),
    ))
    figure.update_layout(title=_e(title), height=420, yaxis_autorange="reversed")
    return figure


def _histogram_figure(series: dict[str, Any], x_title: str) -> go.Figure:
    """Step curves of the share of values per bin, all on the same bins, from binned counts only."""
    arrays = {name: _finite(values) for name, values in series.items()}
    edges = _edges(np.concatenate(list(arrays.values())))
    figure = go.Figure()
    for name, values in arrays.items():
        counts = _counts(values, edges)
        share = counts / max(counts.sum(), 1)
        figure.add_trace(go.Scatter(
            x=(edges[:-1] + edges[1:]) / 2, y=share, customdata=counts, mode="lines", line_shape="hvh", name=_e(name),
            hovertemplate="%{x:.3g}: %{y:.1%} (%{customdata} records)<extra></extra>",
        ))
    figure.update_layout(height=340, xaxis_title=_e(x_title), yaxis_title="share of records", yaxis_tickformat=".0%")
    return figure


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def _edges(values: np.ndarray) -> np.ndarray:
    """Bins from the minimum to the 99th percentile, so one far outlier does not flatten the plot."""
    if values.size == 0:
        return np.array([0.0, 1.0])
    return np.histogram_bin_edges(values, bins=HISTOGRAM_BINS, range=(float(values.min()), float(np.quantile(values, 0.99))))


def _counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin, values beyond the last edge counted in the last bin."""
    return np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]


def _is_numeric_vector(value: Any) -> bool:
    if not isinstance(value, (np.ndarray, pd.Series, list, tuple)):
        return False
    try:
        return np.asarray(value, dtype=float).ndim == 1
    except (TypeError, ValueError):
        return False


def _headline(scores: pd.DataFrame, headline: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    """The headline scores in ``headline`` order, with a placeholder row for each one not computed."""
    rows = []
    for prefix, label in headline:
        matched = scores[scores["key"].str.startswith(prefix)]
        if len(matched):
            rows += matched.to_dict(orient="records")
        else:
            rows.append({"section": "", "metric": label, "key": prefix, "note": "not computed in this run"})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _gates_by_key(results: list[GateResult], scores: pd.DataFrame) -> dict[str, list[GateResult]]:
    """The gate results grouped by the key of the score each reads (unevaluable ones are left out)."""
    by_key: dict[str, list[GateResult]] = {}
    for result in results:
        if (found := result.gate.find(scores)) is not None:
            by_key.setdefault(found[0]["key"], []).append(result)
    return by_key


def _outcome(result: GateResult) -> tuple[str, str]:
    """(word, CSS class) for a gate result."""
    return {True: ("pass", "pass"), False: ("FAIL", "fail"), None: ("inconclusive", "inconclusive")}[result.passed]


def _gate_cell(result: GateResult) -> str:
    return f"{result.gate} {_outcome(result)[0]}"


def _score_table(rows: pd.DataFrame, gates_by_key: dict[str, list[GateResult]]) -> str:
    """An HTML table of scores with CI, holdout reference, ideal value, gates and notes."""
    head = "<tr><th>metric</th><th>value</th><th>95% CI</th><th>holdout reference</th><th>ideal</th><th>gate</th><th>note</th></tr>"
    body = []
    for row in rows.itertuples():
        gates = "<br>".join(f"<span class='{_outcome(r)[1]}'>{_e(_gate_cell(r))}</span>" for r in gates_by_key.get(row.key, []))
        numbers = (format_number(_float(row.value)), _ci(row.low, row.high), _reference(row.reference))
        body.append(
            f"<tr><td>{_e(row.metric)}</td>" + "".join(f"<td class='num'>{_e(number)}</td>" for number in numbers)
            + f"<td>{_e(_text(row.ideal))}</td><td>{gates}</td><td>{_e(_text(row.note))}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _gate_table(results: list[GateResult]) -> str:
    """Per gate: rule, synthetic value, null value, test, alpha, tolerance and verdict (with its reasoning)."""
    head = ("<tr><th>rule</th><th>synthetic</th><th>null (fresh real rows)</th><th>p-value</th><th>alpha</th>"
            "<th>tolerance</th><th>test</th><th>verdict</th></tr>")
    rows = []
    for r in results:
        null_gate = r.gate.threshold == NULL
        numbers = (format_number(r.value), format_number(r.null if null_gate else r.threshold),
                   format_number(r.p_value) if null_gate else "", format_number(r.gate.alpha) if null_gate else "",
                   format_number(r.gate.tolerance) if null_gate else "")
        word, css = _outcome(r)
        rows.append(f"<tr><td><code>{_e(str(r.gate))}</code></td>" + "".join(f"<td class='num'>{_e(n)}</td>" for n in numbers)
                    + f"<td class='caption'>{_e(r.test)}</td><td class='{css}' title='{_e(r.text)}'>{_e(word)}<br>"
                    f"<span class='caption'>{_e(r.text)}</span></td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _table_html(table: pd.DataFrame) -> str:
    """A table, escaped; its index shown only when it carries information (e.g. column names)."""
    index = not isinstance(table.index, pd.RangeIndex)
    return table.to_html(index=index, escape=True, na_rep="–", border=0, float_format=format_number)


def _value_html(value: Any) -> str:
    """A context value: mappings as nested lists, sequences as lists, everything else as text."""
    if isinstance(value, dict):
        return "<ul>" + "".join(f"<li>{_e(str(k))}: {_value_html(v)}</li>" for k, v in value.items()) + "</ul>"
    if isinstance(value, (list, tuple)):
        return "<ul>" + "".join(f"<li>{_value_html(v)}</li>" for v in value) + "</ul>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _value_html(dataclasses.asdict(value))
    return _e(str(value))


def _ci(low: Any, high: Any) -> str:
    low, high = _float(low), _float(high)
    if low is None and high is None:
        return ""
    return f"[{format_number(low)}, {format_number(high)}]"


def _reference(value: Any) -> str:
    """The holdout reference as text; empty when the metric has none."""
    reference = _float(value)
    return "" if reference is None else format_number(reference)


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as records, its index kept as a column when it carries information (e.g. column names)."""
    if not isinstance(table.index, pd.RangeIndex):
        table = table.reset_index()
    return table.to_dict(orient="records")


def _compact(figure: Any) -> Any:
    """A figure for JSON: frames split into index/columns/data, long vectors reduced to histogram counts, image grids without pixels."""
    if _is_image_grid(figure):
        return {**{key: value for key, value in figure.items() if key != "png_base64"}, "png": "omitted; shown in the HTML report only"}
    if isinstance(figure, dict):
        return {key: _compact(value) for key, value in figure.items()}
    if isinstance(figure, pd.DataFrame):
        if figure.size > MAX_FIGURE_VALUES:
            return {"omitted": f"{figure.shape[0]}x{figure.shape[1]} table over {MAX_FIGURE_VALUES} values; see the HTML report"}
        return {"index": list(figure.index), "columns": list(figure.columns), "data": figure.to_numpy().tolist()}
    if isinstance(figure, (np.ndarray, pd.Series, list, tuple)) and np.size(figure) > MAX_FIGURE_VALUES:
        if not _is_numeric_vector(figure):
            return {"omitted": f"{np.size(figure)} values over {MAX_FIGURE_VALUES}"}
        values = _finite(figure)
        edges = _edges(values)
        return {"histogram": {"edges": edges.tolist(), "counts": _counts(values, edges).tolist(), "n": int(values.size)}}
    return figure


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: NaN and infinities become None, unknown objects their text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, pd.Series, np.ndarray)):
        return [_jsonable(v) for v in (value.tolist() if isinstance(value, (pd.Series, np.ndarray)) else value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    return value if isinstance(value, str) else str(value)
