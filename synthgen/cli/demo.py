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
    """The whole job on an embedded table: split 80/20, fit, save, sample, score fidelity and privacy.

    Writes model.sgz, synthetic.csv (NUM_ROWS rows) and report.html (the fidelity and privacy
    report) into OUTPUT_DIR. Scores are judged at one sample size: the first synthetic rows, as many
    as the holdout has, next to the holdout (a score of 10,000 rows beside one of a hundred would
    read as "better than real" from the sample size alone).
    """
    from synthgen.datasets import load_example
    from synthgen.evaluation import evaluate
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
    # Rows are drawn in independent blocks, so the first rows are a random sample of the written ones;
    # the holdout split is shuffled, so its first rows are too.
    size = min(len(holdout), len(synthetic))
    scored, reference = synthetic.iloc[:size], holdout.iloc[:size]
    report = evaluate(train, scored, holdout=reference, metadata=synthesizer.metadata_, seed=seed,
                      context={"data source": f"scikit-learn's {dataset} table", "synthetic source": (
                          f"the first {size} of the {num_rows} rows in synthetic.csv")},
                      progress=not quiet)
    report.to_html(output_dir / "report.html")
    # The holdout is what fresh real patients score: the attainable ceiling for each property.
    attainable = quality_scores(train, reference, synthesizer.metadata_)
    click.echo(f"sdmetrics QualityReport against the training split (1.0 = identical), {size} synthetic rows "
               f"next to {len(reference)} holdout rows:")
    click.echo(f"  {'property':<32} {'synthetic':>9} {'holdout':>9}")
    for name, score in quality_scores(train, scored, synthesizer.metadata_).items():
        click.echo(f"  {name:<32} {score:>9.3f} {attainable[name]:>9.3f}")
    click.echo(f"Wrote {output_dir / 'report.html'}: fidelity and privacy of those rows, gates {report.verdict}")
