"""``synthgen info``: what a model file holds (schema, training summary, DP statement, versions, seed)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from synthgen.cli.common import PATH, friendly_errors
from synthgen.dp.accounting import statement as dp_statement


@click.command()
@click.argument("model", type=PATH)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@friendly_errors
def info(model: Path, as_json: bool) -> None:
    """Show MODEL's schema, training summary, versions and seed."""
    from synthgen.loading import load
    synthesizer = load(model, device="cpu")
    details = synthesizer.describe()
    table = getattr(synthesizer, "table_", None)
    if table is not None and table.missing_groups_:
        details["missing_together"] = table.missing_groups_
    if table is not None and table.category_rules_:
        details["derived_categories"] = {rule.column: list(rule.sources) for rule in table.category_rules_}
    if table is not None and table.gap_rules_:
        details["gaps_decided_by"] = {rule.missing: rule.when for rule in table.gap_rules_}
    details["training"].setdefault("world_size", 1)  # files from before multi-process training: one process
    if as_json:
        click.echo(json.dumps(details, indent=2))
        return
    training = details["training"]
    # A model file holds no clock readings (same seed, same bytes); a model fitted in this process has them.
    created = f" on {details['created']}" if details.get("created") else ""
    duration = f"{training['seconds']:.1f} s " if "seconds" in training else ""
    click.echo(f"synthgen {details['kind']} model, written by synthgen {details['synthgen_version']} "
               f"(torch {details['torch_version']}){created}")
    if details["kind"] == "image":
        mapping = details["mapping"]
        click.echo(f"trained on {training['images']} images, {training['steps']} steps of {training['batch_size']}, "
                   f"{duration}on {training['device']}, seed {details['seed']}")
        click.echo(f"images: {details['image_size']} x {details['image_size']} px, {details['channels']} channel(s), "
                   f"{mapping['modality']}, values {mapping['low']:g} to {mapping['high']:g} {mapping['unit']}")
        counts = ", ".join(f"{name or '(unlabelled)'}: {count}" for name, count in zip(details["classes"], details["class_counts"]))
        click.echo(f"label {details['label_name'] or '(none)'}: {counts}")
        click.echo("no differential privacy (DP training is available for tables)")
        return
    if details["kind"] == "sequence":
        schema = details["sequence"]
        about = "about " if training.get("privacy") else ""  # under DP only released counts are known
        click.echo(f"trained on {about}{training['entities']} patients ({about}{training['rows']} rows), {training['steps']} steps "
                   f"of {training['batch_size']} patients, {duration}on {training['device']}, seed {details['seed']}")
        click.echo(f"patients: {schema['entity_column']!r}, ordered by {schema['sequence_index']!r}, at most "
                   f"{schema['max_length']} rows each; static: {', '.join(schema['static_columns']) or 'none'}")
        if schema.get("derived"):
            click.echo("filled from a rule, not learned: " + ", ".join(
                f"{name} ({rule['rule'].replace('_', ' ')})" for name, rule in schema["derived"].items()))
        click.echo(dp_statement(training["privacy"]) if training.get("privacy")
                   else "no differential privacy (trained without --dp-epsilon)")
        return
    processes = training["world_size"]
    per_process = f" per process x {processes} processes (torchrun)" if processes > 1 else ""
    click.echo(f"trained on {training['rows']} rows, {training['steps']} steps of {training['batch_size']} rows"
               f"{per_process}, {duration}on {training['device']}, seed {details['seed']}")
    if training.get("privacy"):
        click.echo(dp_statement(training["privacy"]))
    else:
        click.echo("no differential privacy (trained without --dp-epsilon)")
    click.echo(f"conditional columns: {', '.join(details['conditional_columns']) or 'none'}")
    if details.get("calibrated_columns"):
        click.echo(f"marginals calibrated onto the training quantiles: {', '.join(details['calibrated_columns'])}")
    if details.get("calibrated_by_level"):
        click.echo("calibrated per level of a category: "
                   + ", ".join(f"{name} by {by}" for name, by in details["calibrated_by_level"].items()))
    if details.get("copula_columns"):
        click.echo(f"joint ranks of {len(details['copula_columns'])} numeric columns moved onto the training rows' "
                   f"rank correlations before calibration (Gaussian copula): {', '.join(details['copula_columns'])}")
    if details.get("rounded_columns"):
        click.echo("numbers sampled as the training values were recorded: "
                   + ", ".join(f"{name} ({precision})" for name, precision in details["rounded_columns"].items()))
    if details.get("missing_together"):
        click.echo("sampled missing together (missing on the same training rows): "
                   + "; ".join(", ".join(names) for names in details["missing_together"]))
    if details.get("derived_categories"):
        click.echo("derived from numbers when sampling (a step function of them on every training row): " + "; ".join(
            f"{name} from {' + '.join(sources)}" for name, sources in details["derived_categories"].items()))
    if details.get("gaps_decided_by"):
        click.echo("missing exactly for some levels of another column, as in every training row: " + "; ".join(
            f"{name} by {when}" for name, when in details["gaps_decided_by"].items()))
    click.echo("columns:")
    for name, spec in details["metadata"]["columns"].items():
        extras = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "sdtype")
        click.echo(f"  {name}: {spec['sdtype']}" + (f" ({extras})" if extras else ""))
