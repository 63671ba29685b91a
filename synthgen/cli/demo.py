"""``synthgen demo``: the whole job on a table that ships with scikit-learn."""
from __future__ import annotations

from pathlib import Path

import click

from synthgen.choices import EXAMPLE_TABLES
from synthgen.cli.common import PATH, friendly_errors


@click.command()
@click.option("--dataset", type=click.Choice(EXAMPLE_TABLES), default="breast-cancer", show_default=True,
              help="A table that ships with scikit-learn (nothing is downloaded).")
@click.option("-o", "--output-dir", type=PATH, default=Path("synthgen-demo"), show_default=True)
@click.option("-n", "--num-rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), help="Optimiser steps. [default: from table size]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def demo(dataset: str, output_dir: Path, num_rows: int, steps: int | None, seed: int, quiet: bool) -> None:
    """The whole job on an embedded table: split 80/20, fit, save, sample, score fidelity."""
    from synthgen.datasets import load_example
    from synthgen.evaluation.fidelity import quality_scores
    from synthgen.io import TableWriter
    from synthgen.synthesizers.tabular import TabularSynthesizer
    train, holdout = load_example(dataset, seed=seed)
    synthesizer = TabularSynthesizer(seed=seed, steps=steps, progress=not quiet).fit(train)
    output_dir.mkdir(parents=True, exist_ok=True)
    synthesizer.save(output_dir / "model.sgz")
    synthetic = synthesizer.sample(num_rows, seed=seed)
    with TableWriter(output_dir / "synthetic.csv") as writer:
        writer.write(synthetic)
    summary = synthesizer.training_
    click.echo(f"{dataset}: {len(train)} training rows, {len(holdout)} held out; {summary['steps']} steps "
               f"in {summary['seconds']:.1f} s on {summary['device']}")
    click.echo(f"Wrote {output_dir / 'model.sgz'} and {num_rows} rows to {output_dir / 'synthetic.csv'}")
    # The holdout is what fresh real patients score: the attainable ceiling for each property.
    attainable = quality_scores(train, holdout, synthesizer.metadata_)
    click.echo("sdmetrics QualityReport against the training split (1.0 = identical):")
    click.echo(f"  {'property':<32} {'synthetic':>9} {'holdout':>9}")
    for name, score in quality_scores(train, synthetic, synthesizer.metadata_).items():
        click.echo(f"  {name:<32} {score:>9.3f} {attainable[name]:>9.3f}")
