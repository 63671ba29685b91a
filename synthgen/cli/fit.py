"""``synthgen fit``: train a tabular (optionally DP) or image synthesizer and save it."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from synthgen._files import check_output
from synthgen.choices import DEFAULT_CHUNK_ROWS, MIN_CATEGORY_COUNT
from synthgen.cli.common import (
    PATH, friendly_errors, image_options, is_image_input, read_image_folder, refuse, refuse_image_options,
)
from synthgen.dp.accounting import DPSettings, statement as dp_statement
from synthgen.errors import InvalidArgumentError

if TYPE_CHECKING:  # the command imports the API when it runs, so --help loads no torch
    from synthgen.synthesizers.tabular import TabularSynthesizer


@click.command()
@click.argument("paths", metavar="DATA...", type=PATH, nargs=-1, required=True)
@click.option("-o", "--output", type=PATH, required=True, help="Model file to write (conventionally .sgz).")
@click.option("--metadata", "metadata_path", type=PATH, help="SDV single-table metadata JSON; overrides detection.")
@click.option("--seed", type=int, help="Random seed; the same seed on the same CPU gives identical results.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Optimiser steps. [default: CTGAN's 300 epochs at batch 500, 1,500-10,000; DP: 3,000-10,000]")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Rows per optimiser step. [default: 128 below 2,500 rows, else 500; DP: 500]")
@click.option("--no-calibrate", is_flag=True,
              help="Keep the generator's raw numeric marginals (default: mapped onto the training quantiles).")
@click.option("--no-copula", is_flag=True,
              help="Keep the joint ranks the generator learned (default: the numeric columns' rank correlations "
              "moved onto the training rows' before the marginals are calibrated).")
@click.option("--no-rounding", is_flag=True,
              help="Tables: sample numbers at full float precision (default: rounded to the decimals and significant "
              "digits the training values were recorded with, unless that makes sampled rows equal training rows).")
@click.option("--no-derive-categories", is_flag=True,
              help="Tables: learn every category column, even one that is a step function of numbers on every "
              "training row (an age band; default: derived from those numbers when sampling, so the two agree).")
@click.option(
    "--min-category-count", type=click.IntRange(min=1), default=MIN_CATEGORY_COUNT, show_default=True,
    help="Categories seen fewer times are pooled into 'Other', so a rare value cannot single out a patient.",
)
@click.option(
    "--holdout", type=click.FloatRange(0, 0.5), default=0.0, show_default=True,
    help="Share of rows kept out of training and recorded in the model, for `synthgen evaluate`.",
)
@click.option("--device", help="cuda, cuda:1, mps or cpu. [default: best available]")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tables: train with N processes on this machine (runs this command under torchrun; needs --seed).")
@click.option("--dp-epsilon", type=float,
              help="Train with differential privacy at this total epsilon (covers the column statistics and training).")
@click.option("--dp-delta", type=float, help="DP delta; must be below 1/n. [default: 1e-5]")
@click.option("--dp-clip", type=float, default=1.0, show_default=True, help="DP per-row gradient clipping norm.")
@click.option("--dp-noise", type=float,
              help="Fix the DP noise multiplier instead of deriving it; training then stops when epsilon is spent.")
@click.option("--dp-statistics-share", type=float,
              help="Share of epsilon for the column statistics and two-way tables; the rest trains a DP-SGD critic. "
              "[default: all of it and no critic: the generator is fitted to the released tables]")
@click.option("--dp-unit-column", help="Column identifying a patient when a patient can have several rows.")
@click.option("--dp-no-pairs", is_flag=True,
              help="Do not release the dependent column pairs' two-way tables (their share of epsilon then goes to the rest).")
@click.option("--entity-column", help="Patient histories: the column naming each patient (many rows per patient); "
              "patients are learned and sampled whole.")
@click.option("--sequence-index", help="Patient histories: the column ordering a patient's rows (visit number, day or date).")
@click.option("--max-length", type=click.IntRange(min=1),
              help="Patient histories: most rows kept per patient (longer ones are cut, with a warning). [default: 32]")
@click.option("--checkpoint-every", type=click.IntRange(min=1),
              help="Tables: write the training state to OUTPUT.ckpt every K steps (removed once OUTPUT is saved).")
@click.option("--resume", "resume", type=PATH,
              help="Tables: continue from a checkpoint, with the same DATA and options (--seed included).")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=DEFAULT_CHUNK_ROWS, show_default=True,
              help="Tables: rows read from DATA at a time (the file is never held whole; DP fits and histories read it whole).")
@image_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def fit(paths: tuple[Path, ...], output: Path, metadata_path: Path | None, seed: int | None, steps: int | None,
        batch_size: int | None, min_category_count: int, holdout: float, device: str | None,
        dp_epsilon: float | None, dp_delta: float | None, dp_clip: float, dp_noise: float | None,
        dp_statistics_share: float | None, dp_unit_column: str | None, dp_no_pairs: bool, quiet: bool,
        no_calibrate: bool, no_copula: bool, no_rounding: bool, no_derive_categories: bool, nproc: int, entity_column: str | None, sequence_index: str | None, max_length: int | None,
        checkpoint_every: int | None, resume: Path | None, chunk_rows: int, **image_options: Any) -> None:
    """Train a synthesizer on DATA and save it to OUTPUT.

    DATA is one file or folder, or two tables: `synthgen fit patients.csv visits.csv --metadata
    multi.json` learns patient histories from a parent table (one row per patient) and a child
    table (many rows per patient) linked as SDV multi-table metadata says (one relationship; the
    child's optional sequence_index orders its rows); `synthgen sample` then writes both tables.
    Under --dp-epsilon the unit is one parent row with all its child rows.

    DATA is a table (CSV, TSV or Parquet) or images: a folder of DICOM files, a folder of PNG/JPEG
    files (one sub-folder per class) or a MedMNIST-style .npz file.

    Tables: column kinds are detected unless --metadata is given; run `synthgen metadata` to get
    an editable file. With --dp-epsilon the whole fit is (epsilon, delta)-differentially private
    for adding or removing one patient (the row count is private too); it needs --metadata (nothing
    about the schema is detected from the rows), and its noise comes from OS entropy, so a DP fit is
    not byte-reproducible even with --seed. Declare public ranges/categories in the metadata
    ("public_bounds", "public_values") to spend nothing on them.

    Patient histories (one row per visit, lab result, ...): --entity-column names the patient,
    --sequence-index orders each patient's rows; columns constant within every patient are the
    patient's static attributes (or say "static": true/false in --metadata). `synthgen sample -n`
    then counts patients, each with a consistent set of static values and a whole history.

    Images: labels come from --labels CSV + --label-column, or from a DICOM tag (--label-tag);
    CT is windowed with --window (a preset or CENTRE,WIDTH) and resized to --image-size.
    """
    from synthgen.io import read_table
    from synthgen.metadata import Metadata
    from synthgen.synthesizers.images import ImageSynthesizer
    from synthgen.synthesizers.tabular import TabularSynthesizer
    from synthgen.training.distributed import launched
    check_output(output, inputs=[*paths, metadata_path, image_options.get("labels_path"), resume])  # before any training
    if nproc > 1:
        _relaunch(nproc, seed)
        return
    if len(paths) > 2:
        raise InvalidArgumentError(f"fit takes one table (or image folder) or two tables (parent, child); got {len(paths)}")
    if len(paths) == 2:
        refuse(("--entity-column", "--sequence-index"), bool(entity_column or sequence_index),
               "one long table; with two tables the metadata's relationship names the key and sequence_index")
        if metadata_path is None:
            raise InvalidArgumentError("two tables need --metadata: SDV multi-table metadata with the relationship "
                                       "that links the child table to the parent table")
        _fit_two_tables(paths, output, metadata_path, max_length, holdout, seed=seed, steps=steps, batch_size=batch_size,
                        min_category_count=min_category_count, device=device, quiet=quiet,
                        dp=_history_dp(dp_epsilon, dp_delta, dp_clip, dp_noise, dp_statistics_share),
                        unsupported=bool(dp_unit_column or dp_no_pairs or no_calibrate or no_copula or no_rounding or no_derive_categories
                                         or checkpoint_every or resume
                                         or any(value is not None for value in image_options.values())))
        return
    data = paths[0]
    if is_image_input(data) and launched().distributed:
        raise InvalidArgumentError("image models train in one process; run this fit without torchrun")
    if is_image_input(data):
        refuse(("--metadata", "--min-category-count", "--no-calibrate", "--no-copula", "--no-rounding", "--no-derive-categories", "--dp-*",
                "--checkpoint-every", "--resume"),
               bool(metadata_path or dp_epsilon is not None or min_category_count != MIN_CATEGORY_COUNT or no_calibrate
                    or no_copula or no_rounding
                    or no_derive_categories
                    or checkpoint_every or resume),
               "tables, not images")
        images, reading = read_image_folder(data, image_options)
        synthesizer = ImageSynthesizer(seed=seed, steps=steps, batch_size=batch_size, device=device,
                                       progress=not quiet).fit(images, holdout=holdout, reading=reading)
        synthesizer.save(output)
        summary = synthesizer.training_
        classes = ", ".join(f"{name or '(unlabelled)'}: {count}" for name, count in
                            zip(synthesizer.classes_, synthesizer.class_counts_))
        click.echo(
            f"Trained on {summary['images']} images of {synthesizer.image_size_} px ({classes}; "
            f"{len(synthesizer.holdout_indices_)} held out): {summary['steps']} steps in {summary['seconds']:.1f} s "
            f"on {summary['device']} (seed {synthesizer.seed_}). Saved {output}"
        )
        return
    refuse_image_options(image_options)
    sequence_options = ("--sequence-index", "--max-length")
    refuse(sequence_options, entity_column is None and (sequence_index is not None or max_length is not None),
           "patient histories, with --entity-column")
    if entity_column is not None:
        _fit_histories(data, output, metadata_path, entity_column, sequence_index, max_length, holdout, seed=seed,
                       steps=steps, batch_size=batch_size, min_category_count=min_category_count, device=device,
                       quiet=quiet, dp=_history_dp(dp_epsilon, dp_delta, dp_clip, dp_noise, dp_statistics_share),
                       unsupported=bool(dp_unit_column or dp_no_pairs or no_calibrate or no_copula or no_rounding or no_derive_categories
                                        or checkpoint_every or resume))
        return
    dp_given = (dp_delta is not None or dp_noise is not None or dp_unit_column or dp_no_pairs
                or dp_statistics_share is not None)
    if dp_epsilon is None and dp_given:
        raise InvalidArgumentError("--dp-delta, --dp-noise, --dp-statistics-share, --dp-unit-column and --dp-no-pairs "
                                   "need --dp-epsilon")
    dp = None
    if dp_epsilon is not None:
        share = {"preprocessing_share": dp_statistics_share} if dp_statistics_share is not None else {}
        dp = DPSettings(epsilon=dp_epsilon, delta=dp_delta, max_grad_norm=dp_clip, noise_multiplier=dp_noise,
                        unit_column=dp_unit_column, pairs=not dp_no_pairs, **share)
    metadata = Metadata.load(metadata_path) if metadata_path else None
    checkpoint = output.with_name(output.name + ".ckpt") if checkpoint_every else None
    synthesizer = TabularSynthesizer(
        metadata, seed=seed, steps=steps, batch_size=batch_size,
        min_category_count=min_category_count, device=device, progress=not quiet, dp=dp, calibrate=not no_calibrate,
        copula=not no_copula, round_values=not no_rounding, derive_categories=not no_derive_categories,
        checkpoint_every=checkpoint_every, checkpoint_path=checkpoint,
    ).fit(read_table(data) if dp is not None else data, holdout=holdout, resume=resume, chunk_rows=chunk_rows)
    if synthesizer.training_.get("world_size", 1) > 1 and launched().rank != 0:
        return  # under torchrun every rank holds the same weights; rank 0 alone writes and reports
    synthesizer.save(output)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # the model now holds everything the checkpoint did
    summary = synthesizer.training_
    click.echo(
        f"Trained on {'about ' if 'privacy' in summary else ''}{summary['rows']} rows x {summary['columns']} columns "
        f"({_held_out(synthesizer)}): {summary['steps']} steps in "
        f"{summary['seconds']:.1f} s on {summary['device']}{_processes(summary)} (seed {synthesizer.seed_}). Saved {output}"
    )
    if synthesizer.privacy_ is not None:
        statement = dp_statement(synthesizer.privacy_)
        click.echo(statement[0].upper() + statement[1:])


def _fit_histories(data: Path, output: Path, metadata_path: Path | None, entity_column: str, sequence_index: str | None,
                   max_length: int | None, holdout: float, *, unsupported: bool, quiet: bool, **options: Any) -> None:
    """Fit a SequenceSynthesizer on a long table (many rows per patient) and save it."""
    from synthgen.io import read_table
    from synthgen.metadata import Metadata
    from synthgen.sequences.synthesizer import DEFAULT_MAX_LENGTH, SequenceSynthesizer
    refuse(("--dp-unit-column", "--dp-no-pairs", "--no-calibrate", "--no-copula", "--no-rounding", "--checkpoint-every", "--resume"),
           unsupported,
           "one-row-per-patient tables; patient histories (--entity-column) do not have them (under DP the unit is "
           "the entity column's patient already)")
    table = read_table(data)
    metadata = Metadata.load(metadata_path) if metadata_path else None
    synthesizer = SequenceSynthesizer(metadata, max_length=max_length or DEFAULT_MAX_LENGTH, progress=not quiet,
                                      **options).fit(table, entity_column, sequence_index, holdout=holdout)
    synthesizer.save(output)
    summary = synthesizer.training_
    held_out = f" ({summary['table_entities'] - summary['entities']} held out)" if "table_entities" in summary else ""
    about = "about " if "privacy" in summary else ""  # under DP only released counts are known
    click.echo(f"Trained on {about}{summary['entities']} patients{held_out} ({about}{summary['rows']} rows) x "
               f"{table.shape[1]} columns, static: {', '.join(synthesizer.schema_.static_columns) or 'none'}: "
               f"{summary['steps']} steps in {summary['seconds']:.1f} s on {summary['device']} (seed {synthesizer.seed_}). "
               f"Saved {output}")
    if "privacy" in summary:
        statement = dp_statement(summary["privacy"])
        click.echo(statement[0].upper() + statement[1:])


def _relaunch(nproc: int, seed: int | None) -> None:
    """Run this very command again under ``torchrun --standalone`` with ``nproc`` processes, and exit as it does."""
    import subprocess
    import sys

    from synthgen.training.distributed import launched
    if launched().distributed:
        raise InvalidArgumentError("--nproc starts torchrun itself; under torchrun, leave it out")
    if seed is None:
        raise InvalidArgumentError("--nproc needs --seed: every process must draw the same holdout and fit the same "
                                   "transformers")
    arguments, tokens = [], iter(sys.argv[1:])  # this command's own arguments, less --nproc
    for token in tokens:
        if token == "--nproc":
            next(tokens, None)  # and its value
        elif not token.startswith("--nproc="):
            arguments.append(token)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "synthgen", *arguments]
    raise SystemExit(subprocess.run(command).returncode)


def _fit_two_tables(paths: tuple[Path, ...], output: Path, metadata_path: Path, max_length: int | None, holdout: float, *,
                    unsupported: bool, quiet: bool, **options: Any) -> None:
    """Fit patient histories from a parent and a child table (in that order) and save the model."""
    from synthgen.io import read_table
    from synthgen.sequences.synthesizer import DEFAULT_MAX_LENGTH, SequenceSynthesizer
    from synthgen.sequences.tables import read_two_table_metadata
    refuse(("--dp-unit-column", "--dp-no-pairs", "--no-calibrate", "--no-copula", "--no-rounding", "--no-derive-categories", "--checkpoint-every",
            "--resume", "image options"), unsupported,
           "one table; two tables (a parent and a child) do not have them (under DP the unit is one parent row with "
           "its child rows already)")
    layout, specs = read_two_table_metadata(metadata_path)
    parents, children = (read_table(path) for path in paths)
    synthesizer = SequenceSynthesizer(max_length=max_length or DEFAULT_MAX_LENGTH, progress=not quiet, **options)
    synthesizer.fit_tables(parents, children, layout, specs, holdout=holdout)
    synthesizer.save(output)
    summary = synthesizer.training_
    about = "about " if "privacy" in summary else ""  # under DP only released counts are known
    click.echo(f"Trained on {about}{summary['entities']} {layout.parent!r} rows with {about}{summary['rows']} "
               f"{layout.child!r} rows ({summary['steps']} steps in {summary['seconds']:.1f} s on {summary['device']}, "
               f"seed {synthesizer.seed_}). Saved {output}")
    if "privacy" in summary:
        statement = dp_statement(summary["privacy"])
        click.echo(statement[0].upper() + statement[1:])


def _history_dp(epsilon: float | None, delta: float | None, clip: float, noise: float | None,
                statistics_share: float | None) -> DPSettings | None:
    """The DP settings of a patient-history fit (the unit is the patient already), or None without --dp-epsilon."""
    if epsilon is None:
        if delta is not None or noise is not None or statistics_share is not None:
            raise InvalidArgumentError("--dp-delta, --dp-noise and --dp-statistics-share need --dp-epsilon")
        return None
    share = {"preprocessing_share": statistics_share} if statistics_share is not None else {}
    return DPSettings(epsilon=epsilon, delta=delta, max_grad_norm=clip, noise_multiplier=noise, **share)


def _processes(summary: dict[str, Any]) -> str:
    processes = summary.get("world_size", 1)
    return f" x {processes} processes, batches of {summary['batch_size']} rows each" if processes > 1 else ""


def _held_out(synthesizer: TabularSynthesizer) -> str:
    """How many rows were held out; a DP model records only the fraction (a count would reveal n)."""
    if "holdout_fraction" in synthesizer.training_:
        return f"{synthesizer.training_['holdout_fraction']:.0%} held out"
    return f"{len(synthesizer.holdout_rows_)} held out"
