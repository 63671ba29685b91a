"""The report layer: gates, verdict, JSON and a self-contained, escaped HTML file (rendered by Chromium when present)."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synthgen.errors import InvalidArgumentError
from synthgen.evaluation.gates import DEFAULT_GATES, Gate, metric_key
from synthgen.evaluation.report import Report
from synthgen.evaluation.scores import Score, SectionResult

EVIL = "<script>alert(1)</script>"
HEADLINE = ["Column Shapes", "Column Pair Trends", "Detection AUC", "DCR share", "MIA AUC (distance)", "Singling-out risk"]
SDMETRICS = "sdmetrics 0.32.0 QualityReport"
ANONYMETER = "anonymeter 1.0.0"


def fidelity(evil: bool = False) -> SectionResult:
    """A fidelity section as the fidelity module returns it: scores, per-column table, marginals, correlations."""
    rng = np.random.default_rng(1)
    columns = ["age", "bilirubin", "stage"] + ([EVIL] if evil else [])
    real = pd.DataFrame(np.eye(len(columns)) * 0.5 + 0.5, index=columns, columns=columns)
    synthetic = real - 0.1 + np.diag(np.full(len(columns), 0.1))
    edges = np.linspace(18, 95, 21)
    marginals = {
        "age": {"kind": "numeric", "bins": edges.tolist(),
                "real": rng.dirichlet(np.ones(20)) / np.diff(edges), "synthetic": rng.dirichlet(np.ones(20)) / np.diff(edges)},
        "sex": {"kind": "categorical", "categories": ["F", "M"], "real": [0.52, 0.48], "synthetic": [0.55, 0.45]},
        "visit": {"kind": "numeric", "bins": ["2020-01-01T00:00:00", "2020-07-01T00:00:00", "2021-01-01T00:00:00"], "real": [0.003, 0.0025],
                  "synthetic": [0.0028, 0.0027], "missing": {"real": 0.05, "synthetic": 0.04}},
    }
    if evil:
        marginals[EVIL] = {"kind": "categorical", "categories": [EVIL, "b"], "real": [0.5, 0.5], "synthetic": [0.4, 0.6]}
    scores = [
        Score("fidelity", "Column Shapes", 0.91, ideal="1", method=SDMETRICS),
        Score("fidelity", "Column Pair Trends", 0.86, ideal="1", method=SDMETRICS),
        Score("fidelity", "Column Pair Trends (all pairs)", float("nan"), ideal="1", method=SDMETRICS, note="no pair scored"),
        Score("fidelity", "Detection AUC", 0.64, 0.61, 0.67, reference=0.51, ideal="0.5", method="scikit-learn 1.5 logistic regression, 5-fold"),
    ]
    if evil:
        scores.append(Score("fidelity", EVIL, 0.5, method=EVIL))
    extra = 1 if evil else 0
    table = pd.DataFrame({"metric": ["KSComplement", "TVComplement"] + ["TVComplement"] * extra, "score": [0.93, 0.95] + [0.9] * extra},
                         index=pd.Index(["age", "sex"] + [EVIL] * extra, name="column"))
    figures = {"marginals": marginals, "correlation_real": real, "correlation_synthetic": synthetic}
    return SectionResult(scores, tables={"column_shapes": table}, figures=figures,
                         notes=["Rows sampled: 5,000 of 120,000 real records."] + ([EVIL] if evil else []))


TEST = "one-sided test"


def privacy(dcr_low: float = 0.49, omit: tuple[str, ...] = (), dcr_figures: bool = True, big: bool = False,
            dcr_p: float = 0.3, singling_evidence: str = "") -> SectionResult:
    """A privacy section: attack scores with CIs, holdout references and tests against a null, DCR distances, a risk table."""
    rng = np.random.default_rng(2)
    scores = [
        Score("privacy", "Exact copies", 0.0, reference=0.0017, ideal="0", method="synthgen 0.1 exact match",
              observed=0.0, null=0.0, p_value=1.0, test=TEST),
        Score("privacy", "DCR share", dcr_low + 0.02, dcr_low, dcr_low + 0.04, reference=0.5, ideal="0.5",
              method="synthgen 0.1 Gower DCR, bootstrap CI", observed=dcr_low + 0.02, null=0.5, p_value=dcr_p, test=TEST),
        Score("privacy", "MIA AUC (distance)", 0.53, 0.50, 0.56, reference=0.5, ideal="0.5", method="synthgen 0.1 distance attack",
              observed=0.53, null=0.5, p_value=0.04, test=TEST),
        Score("privacy", "MIA AUC (DOMIAS)", 0.55, 0.52, 0.58, reference=0.5, ideal="0.5", method="synthgen 0.1 DOMIAS (KDE)",
              observed=0.55, null=0.5, p_value=0.001, test=TEST),  # significant, but within the tolerance
        Score("privacy", "Singling-out risk", 0.02, 0.0, 0.05, ideal="0", method=ANONYMETER,
              observed=0.12, null=0.1, p_value=0.2, test=TEST, evidence=singling_evidence),
        Score("privacy", "Linkability risk", 0.01, 0.0, 0.03, ideal="0", method=ANONYMETER,
              observed=0.02, null=0.01, p_value=0.3, test=TEST),
        Score("privacy", "Attribute inference risk", 0.04, 0.01, 0.07, ideal="0", method=ANONYMETER,
              observed=0.3, null=0.27, p_value=0.1, test=TEST),
    ]
    scores = [score for score in scores if metric_key(score.metric) not in omit]
    figures = {}
    if dcr_figures:
        n = 20_000 if big else 400
        figures = {"dcr_synthetic_to_train": rng.exponential(1.0, n), "dcr_synthetic_to_holdout": rng.exponential(1.05, n),
                   "dcr_holdout_to_train": rng.exponential(1.0, 300)}
    risks = pd.DataFrame({"secret": ["diagnosis", "stage"], "risk": [0.04, np.nan], "ci_high": [0.07, np.nan]})
    return SectionResult(scores, tables={"attribute_inference": risks}, figures=figures, notes=["Attacks used 300 holdout records as controls."])


CONTEXT = {
    "data_source": "pbc.csv (sha256 3f2a…)",
    "split": {"train": 1200, "holdout": 300, "synthetic": 1500},
    "privacy_unit": "patient (one row per patient)",
    "generator_version": "synthgen 0.1.0",
    "seed": 7,
    "settings": {"steps": 3000, "batch_size": 500},
    "dp_statement": None,
}


def report(**privacy_options) -> Report:
    return Report({"fidelity": fidelity(), "privacy": privacy(**privacy_options)}, dict(CONTEXT))


def test_within_thresholds_passes() -> None:
    passing = report()
    assert passing.passed and passing.verdict == "PASS"
    assert all(result.passed for result in passing.gate_results)
    assert passing.summary().startswith("PASS: all 7 evaluated gates hold")


def test_dcr_share_significantly_beyond_its_null_fails_and_is_named() -> None:
    failing = report(dcr_low=0.60, dcr_p=0.001)
    assert not failing.passed and failing.verdict == "FAIL"
    [failed] = [result for result in failing.gate_results if result.passed is False]
    assert failed.gate == Gate("dcr_share", "<=", "null", 0.05, 0.002) and failed.value == pytest.approx(0.62)
    assert failed.null == 0.5 and failed.p_value == 0.001 and failed.test == TEST
    assert failed.text == "DCR share 0.62 vs null 0.5 (excess 0.12, tolerance 0.05), p = 0.001 < alpha 0.002: FAIL"
    verdict_line = failing.summary().splitlines()[0]
    assert verdict_line.startswith("FAIL:") and "dcr_share<=null+0.05@0.002" in verdict_line
    verdict_block = re.search(r"<div class='verdict fail' id='verdict'>.*?</div>", failing.to_html(), re.S)
    assert verdict_block and "FAIL" in verdict_block[0] and "dcr_share&lt;=null+0.05@0.002" in verdict_block[0]
    # The same excess without significance, or significance within the tolerance, passes.
    assert report(dcr_low=0.60, dcr_p=0.003).verdict == "PASS"
    assert report(dcr_low=0.52, dcr_p=0.0001).verdict == "PASS"


def test_null_gate_parse_and_decision_rule() -> None:
    gate = Gate.parse("mia_auc_distance <= null+0.1@0.05")
    assert gate == Gate("mia_auc_distance", "<=", "null", 0.1, 0.05) and Gate.parse(str(gate)) == gate
    assert Gate.parse("linkability_risk<=null") == Gate("linkability_risk", "<=", "null", 0.0, 0.002)
    for malformed in ["dcr_share>=null+0.05", "dcr_share<=null+x", "dcr_share<=null@2", "dcr_share<=null+-0.1", "dcr_share<=nul"]:
        with pytest.raises(InvalidArgumentError):
            Gate.parse(malformed)
    sections = report().sections
    base = sections["privacy"].scores[2]  # MIA AUC (distance): observed 0.53, null 0.5
    for p_value, observed, expected in [(0.01, 0.7, False), (0.06, 0.7, True), (0.01, 0.59, True), (float("nan"), 0.7, None)]:
        sections["privacy"].scores[2] = dataclasses.replace(base, p_value=p_value, observed=observed)
        [result] = Report(sections, CONTEXT, [gate]).gate_results
        assert result.passed is expected, (p_value, observed)
    assert result.status == "inconclusive" and "inconclusive" in result.text


def test_gate_parse() -> None:
    assert Gate.parse("dcr_share<=0.52") == Gate("dcr_share", "<=", 0.52)
    assert Gate.parse("  mia_auc_distance <= 0.6 ") == Gate("mia_auc_distance", "<=", 0.6)
    assert Gate.parse("MIA AUC (distance)>0.5") == Gate("mia_auc_distance", ">", 0.5)
    assert Gate.parse("exact_copies<=HOLDOUT").threshold == "holdout"
    assert [Gate.parse(str(gate)) for gate in DEFAULT_GATES] == DEFAULT_GATES
    assert metric_key("Attribute-inference risk (95%)") == "attribute_inference_risk_95"
    for malformed in ["dcr_share", "dcr_share=0.5", "dcr_share==0.5", "<=0.5", "dcr_share<=abc", "dcr_share<=nan", "dcr_share<=", "a<b<c", ""]:
        with pytest.raises(InvalidArgumentError):
            Gate.parse(malformed)
    with pytest.raises(InvalidArgumentError):
        Gate("dcr_share", "=<", 0.5)


def test_user_gates_on_values_and_bounds() -> None:
    gates = [Gate.parse(rule) for rule in ("dcr_share<=0.52", "dcr_share_upper<=0.52", "column_shapes>=0.9")]
    results = Report(report().sections, CONTEXT, gates).gate_results
    assert [result.passed for result in results] == [True, False, True]
    assert results[1].value == pytest.approx(0.53) and results[1].text == "DCR share upper bound 0.53 <= 0.52: FAIL"


def test_user_gate_on_unknown_metric_lists_keys() -> None:
    with pytest.raises(InvalidArgumentError, match="dcr_shar<=0.5") as error:
        Report(report().sections, CONTEXT, [Gate.parse("dcr_shar<=0.5")])
    for key in ["dcr_share", "column_shapes", "mia_auc_distance", "singling_out_risk"]:
        assert key in str(error.value)


def test_exact_copies_compared_with_holdout_reference() -> None:
    gate = Gate.parse("exact_copies<=holdout")
    sections = report().sections
    copies = sections["privacy"].scores[0]
    for value, reference, expected in [(0.0, 0.0017, True), (0.003, 0.0017, False), (0.003, None, None)]:
        sections["privacy"].scores[0] = dataclasses.replace(copies, value=value, reference=reference)
        [result] = Report(sections, CONTEXT, [gate]).gate_results
        assert result.passed is expected
    assert result.text == "Exact copies: inconclusive (no holdout reference)"
    sections["privacy"].scores[0] = dataclasses.replace(copies, value=0.003, reference=0.0017)
    assert Report(sections, CONTEXT, [gate]).gate_results[0].text == "Exact copies 0.003 <= holdout 0.0017: FAIL"


def test_missing_metric_or_too_little_evidence_is_inconclusive_never_a_pass() -> None:
    partial = report(omit=("mia_auc_domias", "linkability_risk"))
    by_rule = {str(result.gate): result for result in partial.gate_results}
    assert by_rule["mia_auc_domias<=null+0.05@0.002"].passed is None
    assert "inconclusive" in by_rule["mia_auc_domias<=null+0.05@0.002"].text
    assert not partial.passed and partial.verdict == "INCONCLUSIVE"
    assert "inconclusive (never a pass): mia_auc_domias<=null+0.05@0.002, linkability_risk<=null+0.05@0.002" in partial.summary()
    html = partial.to_html()
    assert "<div class='verdict inconclusive' id='verdict'>" in html and "class='inconclusive'" in html
    # One singling-out predicate: the score exists, but the test says it has too little data.
    thin = report(singling_evidence="1 predicates single out a synthetic row, fewer than 20")
    [result] = [r for r in thin.gate_results if r.gate.metric == "singling_out_risk"]
    assert result.passed is None and "fewer than 20" in result.text and thin.verdict == "INCONCLUSIVE"
    # A failure still dominates.
    assert report(dcr_low=0.6, dcr_p=0.001, omit=("linkability_risk",)).verdict == "FAIL"
    fidelity_only = Report({"fidelity": fidelity()}, CONTEXT)
    assert not fidelity_only.passed and fidelity_only.verdict == "NOT EVALUATED"
    assert "NOT EVALUATED" in fidelity_only.to_html()


def test_to_json_round_trips(tmp_path: Path) -> None:
    full = Report({"fidelity": fidelity(), "privacy": privacy(big=True)}, dict(CONTEXT))
    assert full.verdict == "PASS"
    text = full.to_json(tmp_path / "report.json")
    assert (tmp_path / "report.json").read_text(encoding="utf-8") == text
    assert "NaN" not in text and "Infinity" not in text
    document = json.loads(text)
    assert document["verdict"] == "PASS" and document["passed"] is True and document["context"]["seed"] == 7
    scores = {score["key"]: score for score in document["scores"]}
    assert scores["dcr_share"]["low"] == pytest.approx(0.49) and scores["column_pair_trends_all_pairs"]["value"] is None
    assert {gate["rule"] for gate in document["gates"]} == {str(gate) for gate in DEFAULT_GATES}
    dcr = next(gate for gate in document["gates"] if gate["metric"] == "dcr_share")
    assert dcr["status"] == "pass" and dcr["null"] == 0.5 and dcr["synthetic"] == pytest.approx(0.51)
    assert dcr["alpha"] == 0.002 and dcr["tolerance"] == 0.05 and dcr["p_value"] == 0.3 and dcr["test"] == TEST
    assert scores["dcr_share"]["null"] == 0.5 and scores["dcr_share"]["p_value"] == 0.3
    figures = document["sections"]["privacy"]["figures"]
    assert sum(figures["dcr_synthetic_to_train"]["histogram"]["counts"]) == 20_000
    assert len(figures["dcr_holdout_to_train"]) == 300
    assert document["sections"]["fidelity"]["tables"]["column_shapes"][0] == {"column": "age", "metric": "KSComplement", "score": 0.93}
    assert document["sections"]["privacy"]["tables"]["attribute_inference"][1]["risk"] is None


@pytest.fixture(scope="module")
def html_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A failing report with a hostile column and metric name, written once for the HTML checks."""
    context = {**CONTEXT, "data_source": EVIL, "sampling": ["Columns sampled: 40 of 60."]}
    path = tmp_path_factory.mktemp("html") / "report.html"
    text = Report({"fidelity": fidelity(evil=True), "privacy": privacy(dcr_low=0.60, dcr_p=0.001)}, context).to_html(path)
    return path, text


def test_to_html_content(html_report: tuple[Path, str]) -> None:
    path, text = html_report
    assert path.read_text(encoding="utf-8") == text
    assert "<h1>FAIL</h1>" in text
    for metric in HEADLINE:
        assert f"<td>{metric}</td>" in text
    assert "holdout reference" in text and "dcr_share&lt;=null+0.05@0.002 FAIL" in text
    assert "<th>null (fresh real rows)</th><th>p-value</th><th>alpha</th><th>tolerance</th><th>test</th>" in text
    assert "an attacker who holds the whole synthetic data set" in text and "some real records" in text and "holdout" in text
    assert "not a guarantee" in text and "no formal differential-privacy guarantee" in text
    assert "Columns sampled: 40 of 60." in text and "synthgen 0.1 DOMIAS (KDE)" in text
    assert text.count("* plotly.js v") == 1
    assert not re.search(r"<script[^>]*\ssrc\s*=\s*[\"']?(https?:)?//", text, re.I)
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_to_html_renders_what_is_there() -> None:
    bare = Report({"privacy": privacy(dcr_figures=False)}, {})
    text = bare.to_html()
    assert "<h1>PASS</h1>" in text and "Distance to closest record" not in text and "plotly.js v" not in text
    assert "not computed in this run" in text and "<dt>Privacy unit</dt><dd><em>not recorded</em></dd>" in text


def test_about_block_reads_context_keys_spelled_with_spaces() -> None:
    context = {"data source": "real.csv", "rows": {"real (training)": 1200, "holdout": 300}, "privacy unit": "one row = one patient",
               "generator": {"synthgen_version": "0.1.0", "seed": 7}, "evaluation seed": 0, "versions": {"sdmetrics": "0.32.0"}}
    text = Report({"fidelity": fidelity()}, context).to_html()
    assert "<dt>Data source</dt><dd>real.csv</dd>" in text and "<li>real (training): 1200</li>" in text
    assert "<dt>Privacy unit</dt><dd>one row = one patient</dd>" in text and "<li>synthgen_version: 0.1.0</li>" in text
    assert "<dt>Seed</dt><dd>0</dd>" in text and "<dt>versions</dt>" in text and "not recorded" not in text
    assert "(missing: real 5.0%, synthetic 4.0%)" in text


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_html_renders_in_headless_chromium(html_report: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = html_report
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=5000", "--dump-dom", path.as_uri(),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "<h1>FAIL</h1>" in run.stdout
    assert "main-svg" in run.stdout and "plot-container" in run.stdout
    assert "Uncaught" not in run.stderr, run.stderr[-2000:]
    assert EVIL not in run.stdout
