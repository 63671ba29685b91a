"""``synthgen augment``: synthetic rows (or images) added to a real training set, and the ``--check`` of whether they help."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from synthgen._files import check_output
from synthgen.choices import CLASSIFIERS, IMAGE_FORMATS, SYNTHETIC_FLAG
from synthgen.cli.common import (
    PATH, friendly_errors, image_options, is_image_input, read_image_folder, refuse, refuse_image_options,
)
from synthgen.errors import InvalidArgumentError


@click.command("augment")
@click.argument("data", type=PATH)
@click.option("--target",
              help="Column to predict: its classes get the synthetic rows (numerical: regression). "
                   "Images: the label (optional; it must name the label column).")
@click.option("-o", "--output", type=PATH,
              help="Augmented table to write (.csv, .tsv or .parquet): DATA's rows, then the synthetic rows.")
@click.option("--balance", is_flag=True, help="Top every class up to the majority class's count.")
@click.option("--ratio", type=float, metavar="R",
              help="Grow the table to R times its rows (R > 1), keeping the class mix.")
@click.option("--model", "model_path", type=PATH,
              help="A model fitted on a table with DATA's columns. [default: fit one on DATA]")
@click.option("--check", "check_path", type=PATH, metavar="TEST",
              help="Real rows kept out of DATA: train a classifier with and without the synthetic rows, "
                   "score both on TEST.")
@click.option("--classifier", type=click.Choice(CLASSIFIERS), default=CLASSIFIERS[0], show_default=True,
              help="Model trained by --check (for a numerical target: the regressor of that family, "
                   "ridge for the linear one).")
@click.option("--check-seeds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Repeats of --check, each with fresh synthetic rows; intervals are over these.")
@click.option("--seed", type=int, help="Random seed for fitting and sampling.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Optimiser steps when fitting. [default: from table size, 3,000-10,000]")
@click.option("--min-category-count", type=click.IntRange(min=1),
              help="Categories seen fewer times are pooled and not generated. [default: 5, lowered to the "
                   "smallest class count (at least 2) with a warning, so every class can be generated]")
@click.option("--flag-column", default=SYNTHETIC_FLAG, show_default=True,
              help="Boolean column marking synthetic rows (True); '' for none.")
@click.option("--format", "image_format", type=click.Choice(IMAGE_FORMATS),
              help="Images: write the augmented set as DICOM, PNG or .npz. [default: png]")
@image_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def augment_command(data: Path, target: str | None, output: Path | None, balance: bool, ratio: float | None,
                    model_path: Path | None, check_path: Path | None, classifier: str, check_seeds: int,
                    seed: int | None, steps: int | None, min_category_count: int | None, flag_column: str,
                    image_format: str | None, quiet: bool, **image_options: Any) -> None:
    """Add synthetic rows for TARGET to DATA: balance its classes or grow it by a ratio.

    Rows are generated through the model's conditioning on TARGET, and any synthetic row identical
    to a real row is replaced. With --check TEST (real rows not in DATA) it measures whether the
    synthetic rows help a classifier on TEST; without -o it only measures.

    Images (a folder or .npz as DATA, labels as for `fit`): the output folder holds the real and
    the synthetic images, with a `synthetic` column in its labels.csv; --check TEST is a folder of
    real test images, scored with a small CNN.

    \b
    synthgen augment train.csv --target diagnosis --balance -o augmented.csv --seed 1
    synthgen augment train.csv --target diagnosis --ratio 2 --check test.csv
    synthgen augment ./images/ --labels labels.csv --label-column finding --balance -o ./augmented/
    """
    from synthgen.augmentation.check import check_augmentation
    from synthgen.augmentation.tables import augment, check_request, fit_for_augmentation
    from synthgen.io import TableWriter, read_table
    from synthgen.loading import load
    if output is None and check_path is None:
        raise InvalidArgumentError(
            "nothing to do: give -o OUT to write the augmented data, --check TEST to measure, or both"
        )
    if output is not None:  # before any fitting
        check_output(output, inputs=[data, model_path, check_path, image_options.get("labels_path")],
                     directory=is_image_input(data))
    if is_image_input(data):
        refuse(("--min-category-count", "--classifier"), min_category_count is not None or classifier != CLASSIFIERS[0],
               "tables, not images")
        _augment_images(data, target, output, balance, ratio, model_path, check_path, check_seeds, seed, steps,
                        image_format or "png", image_options, quiet)
        return
    if target is None:
        raise InvalidArgumentError("--target is required for a table: the column whose classes get synthetic rows")
    refuse_image_options(image_options, ("--format", image_format is not None))
    table = read_table(data)
    test = read_table(check_path) if check_path else None
    flag = flag_column or None
    synthesizer = None
    if model_path is not None:
        if steps is not None or min_category_count is not None:
            raise InvalidArgumentError(
                "--steps and --min-category-count apply when fitting; leave them out with --model"
            )
        synthesizer = load(model_path)
    check_request(table, target, balance=balance, ratio=ratio, model=synthesizer, flag_column=flag,
                  steps=steps, min_category_count=min_category_count)
    if synthesizer is None:
        synthesizer = fit_for_augmentation(table, target, seed=seed, steps=steps,
                                           min_category_count=min_category_count, progress=not quiet)
    reported: list[Any] = []  # the first augmented table: its attrs say what was added

    def augmented(repeat: int | None, flag_name: str | None) -> Any:
        rows_seed = seed if repeat is None or seed is None else seed + 1 + repeat
        rows = augment(table, target, balance=balance, ratio=ratio, model=synthesizer, seed=rows_seed,
                       flag_column=flag_name, progress=not quiet)
        if not reported:
            reported.append(rows)
        return rows

    result = augmented(None, flag) if output is not None else None
    check = None
    if test is not None:  # before writing: a failed check leaves no output file behind
        check = check_augmentation(
            table, test, target, augmented_factory=lambda repeat: augmented(repeat, None),
            classifier=classifier, seeds=check_seeds, metadata=synthesizer.metadata_,
        )
    if result is not None:
        with TableWriter(output) as writer:
            writer.write(result)
    added = reported[0].attrs["synthgen_augment"]
    mode = "balance" if balance else f"ratio {ratio:g}"
    per_class = added["task"] == "classification"
    click.echo(f"{'Added' if output is not None else 'Each --check repeat adds'} {added['synthetic_rows']} synthetic "
               f"rows to {added['real_rows']} real rows ({mode}, target {target!r})" + (":" if per_class else ""))
    if per_class:
        real_counts = table[target].value_counts()
        for label, count in added["added"].items():
            click.echo(f"  {label}: {int(real_counts[label])} real + {count} synthetic")
    click.echo(f"{added['exact_copies']} synthetic rows identical to a real row "
               f"({added['exact_copies_dropped']} generated copies dropped and resampled)")
    if added["shortfall"]:
        click.echo(f"{added['shortfall']} requested rows could not be generated without copying a real row")
    if output is not None:
        marker = f"; synthetic rows have {flag}=True" if flag else ""
        click.echo(f"Wrote {output}: {writer.rows} rows{marker}")
    if check is not None:
        task = "regressor" if check.task == "regression" else "classifier"
        click.echo(f"\nCheck on {check_path} ({check.test_rows} real rows; synthetic rows are never scored): "
                   f"{check.classifier} {task} trained on the {check.train_rows} real rows alone vs with synthetic "
                   f"rows, {check.seeds} seeds, mean [95% interval]")
        click.echo(check.table())


def _test_reading(check_path: Path, reading: dict[str, Any]) -> dict[str, Any]:
    """How to read --check images: as the training images, with a labels CSV of the same name inside TEST."""
    if reading["labels"] is None:
        return reading
    own = check_path / Path(reading["labels"]).name
    if not own.is_file():
        raise InvalidArgumentError(f"--check {str(check_path)!r}: its labels go in {str(own)!r}, with the columns of --labels")
    return {**reading, "labels": str(own)}


def _augment_images(data: Path, target: str | None, output: Path | None, balance: bool, ratio: float | None,
                    model_path: Path | None, check_path: Path | None, check_seeds: int, seed: int | None,
                    steps: int | None, image_format: str, image_options: dict[str, Any], quiet: bool) -> None:
    from synthgen.augmentation.images import augment_images, check_image_augmentation, plan as plan_images
    from synthgen.images.io import write_images
    from synthgen.images.reading import read_images
    from synthgen.synthesizers.images import ImageSynthesizer
    from synthgen.loading import load
    images, reading = read_image_folder(data, image_options)
    if target is not None and target != images.label_name:
        raise InvalidArgumentError(f"--target {target!r}: these images' label is {images.label_name!r}")
    plan_images(images.labels, balance=balance, ratio=ratio)  # refuse a bad request before any fitting
    if model_path is not None:
        if steps is not None:
            raise InvalidArgumentError("--steps applies when fitting; leave it out with --model")
        model = load(model_path)
        if not isinstance(model, ImageSynthesizer):
            raise InvalidArgumentError(f"{str(model_path)!r} is a {model.kind} model; image augmentation needs an image model")
    else:
        model = ImageSynthesizer(seed=seed, steps=steps, progress=not quiet).fit(images, reading=reading)
    result = augment_images(images, balance=balance, ratio=ratio, model=model, seed=seed)
    check = None
    if check_path is not None:  # before writing: a failed check leaves no output behind
        test = read_images(check_path, **_test_reading(check_path, reading))
        check = check_image_augmentation(
            images, test, seeds=check_seeds,
            augmented_factory=lambda repeat: augment_images(
                images, balance=balance, ratio=ratio, model=model,
                seed=None if seed is None else seed + 1 + repeat).images,
        )
    if output is not None:
        write_images(result.images, output, image_format, synthetic=result.synthetic)
    mode = "balance" if balance else f"ratio {ratio:g}"
    click.echo(f"{'Added' if output is not None else 'Each --check repeat adds'} {int(result.synthetic.sum())} "
               f"synthetic images to {len(images)} real images ({mode}):")
    real_counts = dict(zip(*np.unique(np.asarray(images.labels, dtype=str), return_counts=True)))
    for label, count in result.added.items():
        click.echo(f"  {label or '(unlabelled)'}: {int(real_counts.get(label, 0))} real + {count} synthetic")
    click.echo(f"0 synthetic images identical to a real one ({result.exact_copies_dropped} generated copies "
               "dropped and resampled)")
    if result.shortfall:
        click.echo(f"{result.shortfall} requested images could not be generated without copying a real one")
    if output is not None:
        click.echo(f"Wrote {output} ({image_format}); labels.csv marks synthetic images with synthetic=True")
    if check is None:
        # Measured on scikit-learn's digits (10 or 3 images per class, 16 px, CPU budget): synthetic
        # images did not help and, for the imbalanced set, hurt. So say so whenever nothing was measured.
        click.echo("Not measured: run again with --check TEST (real images kept out of DATA) before training on this "
                   "set; on small image sets synthetic images have hurt a classifier (benchmarks/README.md).", err=True)
    if check is not None:
        click.echo(f"\nCheck on {check_path} ({check.test_rows} real images; synthetic images are never scored): "
                   f"small CNN trained on the {check.train_rows} real images alone vs with synthetic images, "
                   f"{check.seeds} seeds, mean [95% interval]")
        click.echo(check.table())
